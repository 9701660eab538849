/*
** /proc/self/mountinfo: memprobe_parse_mountinfo picks the cgroup mounts
** for the paths memprobe_parse_proc_cgroup finds, and
** memprobe_cgroup_reldir puts each path under its mount's root. The input
** is /proc/self/cgroup, a NUL, then mountinfo; without a NUL it is both.
** Seeds: proc/self/cgroup+proc/self/mountinfo
*/
#include "fuzz.h"

/* A /proc/self/cgroup path as cgroup() copies it: NUL-terminated. */
static void copy_path (char *out, const char *p, size_t n) {
  out[0] = '\0';
  if (p != NULL && n < MP_PATHMAX) {
    memcpy(out, p, n);
    out[n] = '\0';
  }
}

/* A picked mount: absolute, terminated within its arrays; the cgroup's
** directory under it is "" or "/..." and the end of the path. */
static void check (const mp_cgmount *m, const char *path) {
  char rel[MP_PATHMAX];
  size_t plen = strlen(path), rlen;
  if (m->point[0] == '\0') {
    FZ_CHECK(m->score == -1);
    return;
  }
  FZ_CHECK(m->score >= 0 && m->score <= 3);
  FZ_CHECK(memchr(m->root, '\0', sizeof(m->root)) != NULL);
  FZ_CHECK(memchr(m->point, '\0', sizeof(m->point)) != NULL);
  FZ_CHECK(m->root[0] == '/' && m->point[0] == '/');
  memprobe_cgroup_reldir(path, m->root, rel);
  rlen = strlen(rel);
  FZ_CHECK(rlen <= plen);
  FZ_CHECK(rlen == 0 || (rel[0] == '/' &&
                         memcmp(rel, path + plen - rlen, rlen) == 0));
  if (m->score >= 2) {  /* the path is at or below the root */
    size_t n = strlen(m->root);
    while (n > 0 && m->root[n - 1] == '/')
      n--;
    FZ_CHECK(plen >= n && memcmp(path, m->root, n) == 0);
    FZ_CHECK(path[n] == '\0' || path[n] == '/');
    FZ_CHECK(strcmp(rel, path + n) == 0);
  }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  const char *nul = memchr(s, '\0', size);
  size_t alen = nul ? (size_t)(nul - s) : size;
  const char *mi = nul ? nul + 1 : s;
  size_t milen = nul ? size - alen - 1 : size;
  static char v1[MP_PATHMAX], v2[MP_PATHMAX];
  static mp_cgmounts m;
  mp_cgpaths paths;
  memprobe_parse_proc_cgroup(s, alen, &paths);
  copy_path(v1, paths.v1, paths.v1len);
  copy_path(v2, paths.v2, paths.v2len);
  memprobe_parse_mountinfo(mi, milen, v1, v2, &m);
  check(&m.v1, v1);
  check(&m.v2, v2);
  /* the picker takes paths it was not given (NULL) as well */
  memprobe_parse_mountinfo(mi, milen, NULL, NULL, &m);
  FZ_CHECK(m.v1.score <= 1 && m.v2.score <= 1);
  free(s);
  return 0;
}
