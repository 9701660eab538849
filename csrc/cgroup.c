/*
** cgroup.c: the memory cgroup this process is in, on cgroup v1, v2 and
** hybrid hosts (memory on v1, cgroup2 at fs/cgroup/unified without it).
** The path comes from /proc/self/cgroup; where the hierarchies are
** mounted, and which part of each, from /proc/self/mountinfo, or, without
** it, from the usual places under <sys>/fs/cgroup. Every file but
** /proc/self/cgroup is read once in a while and takes no kept fd.
*/
/***
@submodule memprobe
*/
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>


/* cgroup v1 says "unlimited" with LONG_MAX rounded down to a page. */
#define MP_V1_UNLIMITED  INT64_C(9223372036854771712)


/*
** {======================================================
** Pure parsers (fuzzed on their own)
** =======================================================
*/

/* Whether the comma-separated list [s, end) holds the word "memory". */
static int has_memory (const char *s, const char *end) {
  while (s < end) {
    const char *comma = memchr(s, ',', (size_t)(end - s));
    const char *we = comma ? comma : end;
    if (we - s == 6 && memcmp(s, "memory", 6) == 0)
      return 1;
    if (comma == NULL)
      break;
    s = comma + 1;
  }
  return 0;
}

/*
** /proc/<pid>/cgroup: "id:controllers:path" lines. Finds the path of the
** v1 hierarchy whose controller list holds "memory" and the path of the
** v2 line ("0::path"). A path that is absent has length 0 and NULL.
*/
void memprobe_parse_proc_cgroup (const char *s, size_t len,
                                 mp_cgpaths *out) {
  const char *end = s + len;
  memset(out, 0, sizeof(*out));
  while (s < end) {
    const char *line = s, *c1, *c2, *eol;
    s = memprobe_line(line, end, &eol);
    if ((c1 = memchr(line, ':', (size_t)(eol - line))) == NULL)
      continue;
    if ((c2 = memchr(c1 + 1, ':', (size_t)(eol - c1 - 1))) == NULL)
      continue;
    if (c2 + 1 == eol || c2[1] != '/')  /* paths are absolute */
      continue;
    if (c2 == c1 + 1) {  /* "0::/path": the unified hierarchy */
      if (out->v2 == NULL) {
        out->v2 = c2 + 1;
        out->v2len = (size_t)(eol - c2 - 1);
      }
    }
    /* "4:memory:/path", "3:cpu,memory:/" */
    else if (out->v1 == NULL && has_memory(c1 + 1, c2)) {
      out->v1 = c2 + 1;
      out->v1len = (size_t)(eol - c2 - 1);
    }
  }
}

/*
** A limit or counter file: a number, "max" (v2) or the v1 unlimited value
** and anything above it. Returns 1 with *v set, 0 for unlimited, -1 when
** the content is neither (no such file holds a negative number).
*/
int memprobe_parse_limit (const char *s, size_t len, int64_t *v) {
  const char *end = s + len, *p;
  s = memprobe_skipspace(s, end);
  if (end - s >= 3 && memcmp(s, "max", 3) == 0)
    p = s + 3;
  else if ((p = memprobe_int64(s, end, v)) == NULL || *v < 0)
    return -1;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n'))
    p++;
  if (p != end)
    return -1;
  if (*s == 'm' || *v >= MP_V1_UNLIMITED)
    return 0;
  return 1;
}

/*
** The rest of cgroup 'path' below the directory 'root' of its hierarchy
** ("/" is the whole hierarchy): "" or "/..." inside path, or NULL when
** path is not at or below root, or climbs out of it with a ".."
** component (a cgroup outside the reader's cgroup namespace).
*/
static const char *below (const char *root, const char *path) {
  size_t n = strlen(root);
  const char *p;
  while (n > 0 && root[n - 1] == '/')
    n--;
  if (path[0] != '/' || strncmp(path, root, n) != 0 ||
      (path[n] != '\0' && path[n] != '/'))
    return NULL;
  for (p = path + n; (p = strstr(p, "/..")) != NULL; p += 3)
    if (p[3] == '\0' || p[3] == '/')
      return NULL;
  return path + n;
}

/*
** The directory of cgroup 'path' under a mount of its hierarchy's 'root':
** the path less the root, "" for the mount point itself, which is also
** what a path that is not below the root gets. out has room for path.
*/
void memprobe_cgroup_reldir (const char *path, const char *root,
                             char *out) {
  const char *rest = below(root, path);
  size_t n = rest != NULL ? strlen(rest) : 0;
  if (n > 0)
    memcpy(out, rest, n);
  out[n] = '\0';
}

/* The next blank-separated word of [*p, eol): its start, with its length
** in *n, or NULL when none is left. */
static const char *next_word (const char **p, const char *eol, size_t *n) {
  const char *w = memprobe_skipspace(*p, eol), *e = w;
  while (e < eol && *e != ' ' && *e != '\t')
    e++;
  *p = e;
  *n = (size_t)(e - w);
  return e > w ? w : NULL;
}

/* A path field, \ooo escapes decoded, into out (MP_PATHMAX): 0 when it
** is absolute, fits and holds no NUL. */
static int mount_path (const char *s, size_t n, char *out) {
  size_t o;
  if (n == 0 || n >= MP_PATHMAX || s[0] != '/')
    return -1;
  o = memprobe_unescape(s, n, out);
  if (memchr(out, '\0', o) != NULL)
    return -1;
  out[o] = '\0';
  return 0;
}

/* 2 when the cgroup's path is at or below the mount's root, plus 1 when
** the mount is at the usual place, /sys/fs/cgroup or below. */
static int fit (const mp_cgmount *m, const char *path) {
  int score = 0;
  if (path != NULL && path[0] != '\0' && below(m->root, path) != NULL)
    score += 2;
  if (strncmp(m->point, "/sys/fs/cgroup", 14) == 0 &&
      (m->point[14] == '\0' || m->point[14] == '/'))
    score += 1;
  return score;
}

/*
** /proc/<pid>/mountinfo: "id parent major:minor root point options
** [optional fields...] - fstype source superoptions", with blanks,
** newlines and backslashes in paths as \ooo. Picks the "cgroup2" mount and
** the "cgroup" mount whose super options name the memory controller.
** Where a hierarchy is mounted more than once (bind mounts, a shared
** subtree repeated elsewhere), the mount whose root holds the cgroup's
** path (v1path, v2path; "" or NULL when there is none) wins, then one at
** or below /sys/fs/cgroup, then the first; a later mount at the same
** point replaces the one it hides.
*/
void memprobe_parse_mountinfo (const char *s, size_t len,
                               const char *v1path, const char *v2path,
                               mp_cgmounts *out) {
  const char *end = s + len;
  mp_cgmount cand;
  memset(out, 0, sizeof(*out));
  out->v1.score = out->v2.score = -1;
  while (s < end) {
    const char *eol, *p = s, *w[6], *dash, *fs, *opts;
    const char *path;
    size_t n[6], dn, fsn, srcn, on;
    mp_cgmount *m;
    int i;
    s = memprobe_line(s, end, &eol);
    for (i = 0; i < 6 && (w[i] = next_word(&p, eol, &n[i])) != NULL; i++)
      ;
    if (i < 6)
      continue;
    do  /* the optional fields end at a lone "-" */
      dash = next_word(&p, eol, &dn);
    while (dash != NULL && !(dn == 1 && *dash == '-'));
    if (dash == NULL || (fs = next_word(&p, eol, &fsn)) == NULL ||
        next_word(&p, eol, &srcn) == NULL ||
        (opts = next_word(&p, eol, &on)) == NULL)
      continue;
    if (fsn == 7 && memcmp(fs, "cgroup2", 7) == 0) {
      m = &out->v2;
      path = v2path;
    }
    else if (fsn == 6 && memcmp(fs, "cgroup", 6) == 0 &&
             has_memory(opts, opts + on)) {
      m = &out->v1;
      path = v1path;
    }
    else
      continue;
    if (mount_path(w[3], n[3], cand.root) != 0 ||
        mount_path(w[4], n[4], cand.point) != 0)
      continue;
    cand.score = fit(&cand, path);
    if (cand.score > m->score || strcmp(cand.point, m->point) == 0)
      *m = cand;
  }
}

/* }====================================================== */


typedef struct cg {
  char base[MP_PATHMAX];     /* a mount of the hierarchy, the whole path */
  char root[MP_PATHMAX];     /* the cgroup at base: "" for the top */
  char dir[MP_PATHMAX];      /* cgroup directory under base, "" for base */
  char path[MP_PATHMAX];     /* scratch: base + dir + file */
  int version;
} cg;

/* Reads base/dir/file into c->buf. */
static int cg_read (mp_ctx *c, cg *g, const char *dir,
                    const char *file, const char **data, size_t *len) {
  int n = snprintf(g->path, sizeof(g->path), "%s%s/%s", g->base, dir,
                   file);
  if (n < 0 || (size_t)n >= sizeof(g->path))
    return ENAMETOOLONG;
  return memprobe_read_path(c, g->path, data, len);
}

/* A limit or counter file: 1 with *v, 0 unlimited, -1 absent or bad. */
static int cg_number (mp_ctx *c, cg *g, const char *dir,
                      const char *file, int64_t *v) {
  const char *data;
  size_t len;
  if (cg_read(c, g, dir, file, &data, &len) != 0)
    return -1;
  return memprobe_parse_limit(data, len, v);
}

/* t[key] = the number in file; nil when unlimited, absent or bad. */
static void set_number (lua_State *L, mp_ctx *c, cg *g, int t,
                        const char *key, const char *file) {
  int64_t v;
  if (cg_number(c, g, g->dir, file, &v) == 1)
    mp_pushint(L, v);
  else
    lua_pushnil(L);
  lua_setfield(L, t, key);
}

typedef struct setter { lua_State *L; int t; } setter;

static void set_pair (void *ud, const char *key, size_t klen, int64_t v,
                      int kb) {
  setter *s = (setter *)ud;
  (void)kb;
  lua_pushlstring(s->L, key, klen);
  mp_pushint(s->L, v);
  lua_rawset(s->L, s->t);
}

/* t[key] = { every "key value" pair of file }, or nil without it. */
static void set_pairs (lua_State *L, mp_ctx *c, cg *g, int t,
                       const char *key, const char *file) {
  const char *data;
  size_t len;
  if (cg_read(c, g, g->dir, file, &data, &len) != 0)
    return;
  lua_newtable(L);
  {
    setter s;
    s.L = L;
    s.t = lua_gettop(L);
    memprobe_parse_pairs(data, len, set_pair, &s);
  }
  lua_setfield(L, t, key);
}

/* The hierarchy at its usual place, sub under <sys>, with no mountinfo. */
static int fixed_base (mp_ctx *c, cg *g, const char *sub) {
  int n = snprintf(g->base, sizeof(g->base), "%s/%s", c->root[MP_SYS], sub);
  g->root[0] = '\0';
  return (n < 0 || (size_t)n >= sizeof(g->base)) ? ENAMETOOLONG : 0;
}

/*
** The hierarchy at a mount point from mountinfo, a path on the machine
** whose /sys is the sys root: one in /sys is read under the sys root, any
** other under the directory that holds the sys root, which stands for
** "/". For the default /sys that directory is "/" itself, and the mount
** point is read as it is.
*/
static int mount_base (mp_ctx *c, cg *g, const char *point) {
  const char *sys = c->root[MP_SYS], *slash = strrchr(sys, '/');
  int n;
  if (strncmp(point, "/sys", 4) == 0 && (point[4] == '\0' || point[4] == '/'))
    n = snprintf(g->base, sizeof(g->base), "%s%s", sys, point + 4);
  else if (slash == NULL)  /* a relative "sys" */
    n = snprintf(g->base, sizeof(g->base), ".%s", point);
  else
    n = snprintf(g->base, sizeof(g->base), "%.*s%s", (int)(slash - sys), sys,
                 point);
  return (n < 0 || (size_t)n >= sizeof(g->base)) ? ENAMETOOLONG : 0;
}

/* dir = path without its trailing '/'s ("/" becomes ""); 0 when 'probe'
** is there. */
static int try_dir (mp_ctx *c, cg *g, const char *path, const char *probe) {
  const char *data;
  size_t len, plen = strlen(path);
  if (plen >= sizeof(g->dir))
    return ENAMETOOLONG;
  while (plen > 0 && path[plen - 1] == '/')
    plen--;
  memcpy(g->dir, path, plen);
  g->dir[plen] = '\0';
  return cg_read(c, g, g->dir, probe, &data, &len);
}

/*
** Settles where the cgroup's files are: dir = path under base, or, when
** that directory is not there, base itself (a container that sees its
** own cgroup mounted at the root without a cgroup namespace). Returns 0
** when 'probe' is found.
*/
static int locate (mp_ctx *c, cg *g, const char *path, const char *probe) {
  if (strlen(path) >= sizeof(g->dir))
    return ENAMETOOLONG;
  if (try_dir(c, g, path, probe) == 0)
    return 0;
  if (g->dir[0] == '\0')
    return ENOENT;
  return try_dir(c, g, "", probe);
}

/*
** The same under a mount from mountinfo. A container without a cgroup
** namespace has the hierarchy mounted from its own cgroup (the mount's
** root, /docker/<id>): the path less that root is read under the mount
** point, and base is the cgroup at the root. A sys root other than /sys
** may hold the whole hierarchy instead (a host's /sys given to config{}
** in a container), with the path as it is: that is tried first there.
*/
static int locate_mounted (mp_ctx *c, cg *g, const mp_cgmount *m,
                           const char *path, const char *probe) {
  char rel[MP_PATHMAX];
  size_t n = strlen(m->root);
  if (mount_base(c, g, m->point) != 0)
    return ENAMETOOLONG;
  g->root[0] = '\0';
  while (n > 0 && m->root[n - 1] == '/')
    n--;
  if (n > 0 && strcmp(c->root[MP_SYS], "/sys") != 0 &&
      try_dir(c, g, path, probe) == 0)
    return 0;
  memcpy(g->root, m->root, n);
  g->root[n] = '\0';
  memprobe_cgroup_reldir(path, m->root, rel);
  return locate(c, g, rel, probe);
}

/*
** The limits in 'file': t.limit from the cgroup's own, and the smallest
** over dir and its ancestors up to base (the top of the hierarchy, or of
** what is mounted of it) as t.effective_limit, with t.limited_by a cgroup
** path like t.path. Each is nil when unlimited. One read per directory.
*/
static void limits (lua_State *L, mp_ctx *c, cg *g, int t,
                    const char *file) {
  char dir[MP_PATHMAX];
  size_t n = strlen(g->dir);
  int64_t best = 0, v;
  int found = 0, own = 1, r;
  memcpy(dir, g->dir, n + 1);
  for (;; own = 0) {
    r = cg_number(c, g, dir, file, &v);
    if (r == 1 && own) {
      mp_pushint(L, v);
      lua_setfield(L, t, "limit");
    }
    if (r == 1 && (!found || v < best)) {
      best = v;
      found = 1;
      if (g->root[0] == '\0' && dir[0] == '\0')
        lua_pushliteral(L, "/");
      else
        lua_pushfstring(L, "%s%s", g->root, dir);
      lua_setfield(L, t, "limited_by");
    }
    if (n == 0)
      break;
    while (n > 0 && dir[n - 1] != '/')
      n--;
    if (n > 0)
      n--;
    dir[n] = '\0';
  }
  if (found) {
    mp_pushint(L, best);
    lua_setfield(L, t, "effective_limit");
  }
}

/* A figure read back from a result table, as an int64_t without the
** undefined behaviour of casting a double out of range. */
static int64_t held (lua_Number n) {
  if (!(n > -(lua_Number)MP_BYTES_MAX))
    return -MP_BYTES_MAX;
  return n < (lua_Number)MP_BYTES_MAX ? (int64_t)n : MP_BYTES_MAX;
}

/* working_set = usage - inactive file pages, never below 0. */
static void working_set (lua_State *L, int t, const char *key) {
  lua_getfield(L, t, "usage");
  lua_getfield(L, t, "stat");
  if (lua_isnumber(L, -2) && lua_istable(L, -1)) {
    lua_getfield(L, -1, key);
    if (lua_isnumber(L, -1)) {
      int64_t ws = memprobe_add(held(lua_tonumber(L, -3)),
                                -held(lua_tonumber(L, -1)));
      mp_pushint(L, ws < 0 ? 0 : ws);
      lua_setfield(L, t, "working_set");
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

static void fill_v1 (lua_State *L, mp_ctx *c, cg *g, int t) {
  const char *data;
  size_t len;
  set_number(L, c, g, t, "usage", "memory.usage_in_bytes");
  set_number(L, c, g, t, "peak", "memory.max_usage_in_bytes");
  set_number(L, c, g, t, "soft_limit", "memory.soft_limit_in_bytes");
  set_number(L, c, g, t, "memsw_usage", "memory.memsw.usage_in_bytes");
  set_number(L, c, g, t, "memsw_limit", "memory.memsw.limit_in_bytes");
  limits(L, c, g, t, "memory.limit_in_bytes");
  set_pairs(L, c, g, t, "stat", "memory.stat");
  working_set(L, t, "total_inactive_file");
  lua_getfield(L, t, "stat");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "total_swap");
    lua_setfield(L, t, "swap_usage");
  }
  lua_pop(L, 1);
  set_pairs(L, c, g, t, "events", "memory.oom_control");
  lua_getfield(L, t, "events");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, t, "events");
  }
  {
    int64_t v;
    if (cg_read(c, g, g->dir, "memory.failcnt", &data, &len) == 0 &&
        memprobe_parse_limit(data, len, &v) == 1) {
      mp_pushint(L, v);
      lua_setfield(L, -2, "failcnt");
    }
  }
  lua_pop(L, 1);
}

static void fill_v2 (lua_State *L, mp_ctx *c, cg *g, int t) {
  set_number(L, c, g, t, "usage", "memory.current");
  set_number(L, c, g, t, "high", "memory.high");
  set_number(L, c, g, t, "peak", "memory.peak");
  set_number(L, c, g, t, "swap_usage", "memory.swap.current");
  set_number(L, c, g, t, "swap_limit", "memory.swap.max");
  limits(L, c, g, t, "memory.max");
  set_pairs(L, c, g, t, "stat", "memory.stat");
  working_set(L, t, "inactive_file");
  set_pairs(L, c, g, t, "events", "memory.events");
}

/* A path of /proc/self/cgroup, copied out of the read buffer. */
static void copy_path (char *out, const char *p, size_t n) {
  out[0] = '\0';
  if (p != NULL && n < MP_PATHMAX) {
    memcpy(out, p, n);
    out[n] = '\0';
  }
}

/*
** Memory on v1 wins on a hybrid host (that is where the controller is).
** Each hierarchy is looked for where mountinfo mounts it; without such a
** mount, v1 at fs/cgroup/memory and v2 at fs/cgroup, then at
** fs/cgroup/unified.
*/
/***
The memory cgroup of this process, on cgroup v1, v2 or a hybrid host:
`version path usage limit effective_limit limited_by working_set peak
stat events`; on v2 also `high swap_usage swap_limit`, on v1 `soft_limit
memsw_usage memsw_limit swap_usage`. A limit is nil when unlimited
("max", or 9223372036854771712 and above on v1). `effective_limit` is the
smallest limit over the cgroup and its ancestors (those mounted, in a
container), `limited_by` the path of the one that sets it. `working_set`
is usage minus inactive file pages. `stat` holds every memory.stat key;
`events` memory.events (v2), or failcnt and the memory.oom_control
counters (v1). The hierarchies are found through /proc/self/mountinfo
(co-mounted controllers, mounts outside /sys, a container's mount of its
own cgroup), else at /sys/fs/cgroup.
@function cgroup
@treturn table the figures, or nil, message, errno when the process is
in no memory cgroup
*/
MP_READER(l_cgroup) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len;
  char v1[MP_PATHMAX], v2[MP_PATHMAX];
  mp_cgpaths p;
  mp_cgmounts m;
  cg g;
  int err, t;
  memprobe_noargs(L);
  lua_settop(L, 0);
  if ((err = memprobe_read(c, MP_PROC, "self/cgroup", &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, "self/cgroup", err);
  memprobe_parse_proc_cgroup(data, len, &p);
  /* the buffer is reused by every read: copy the paths out first */
  copy_path(v1, p.v1, p.v1len);
  copy_path(v2, p.v2, p.v2len);
  if (memprobe_read_nocache(c, MP_PROC, "self/mountinfo", &data, &len) != 0)
    data = "", len = 0;  /* none: the usual places */
  memprobe_parse_mountinfo(data, len, v1, v2, &m);
  g.version = 0;
  if (v1[0] != '\0') {
    if (m.v1.point[0] != '\0')
      err = locate_mounted(c, &g, &m.v1, v1, "memory.usage_in_bytes");
    else if ((err = fixed_base(c, &g, "fs/cgroup/memory")) == 0)
      err = locate(c, &g, v1, "memory.usage_in_bytes");
    if (err == 0)
      g.version = 1;
  }
  if (g.version == 0 && v2[0] != '\0') {
    if (m.v2.point[0] != '\0')
      err = locate_mounted(c, &g, &m.v2, v2, "memory.current");
    else if ((err = fixed_base(c, &g, "fs/cgroup")) == 0) {
      if (cg_read(c, &g, "", "cgroup.controllers", &data, &len) != 0)
        err = fixed_base(c, &g, "fs/cgroup/unified");
      if (err == 0)
        err = locate(c, &g, v2, "memory.current");
    }
    if (err == 0)
      g.version = 2;
  }
  if (g.version == 0) {
    if (m.v1.point[0] != '\0' || m.v2.point[0] != '\0')
      return memprobe_result(L, ENOENT, "not in a memory cgroup "
                             "(%s/self/cgroup names none with memory files "
                             "under the cgroup mounts of %s/self/mountinfo)",
                             c->root[MP_PROC], c->root[MP_PROC]);
    return memprobe_result(L, ENOENT, "not in a memory cgroup "
                           "(%s/self/cgroup names none with memory files "
                           "under %s/fs/cgroup)", c->root[MP_PROC],
                           c->root[MP_SYS]);
  }
  lua_newtable(L);
  t = lua_gettop(L);
  mp_pushint(L, g.version);
  lua_setfield(L, t, "version");
  lua_pushstring(L, g.version == 1 ? v1 : v2);
  lua_setfield(L, t, "path");
  if (g.version == 1)
    fill_v1(L, c, &g, t);
  else
    fill_v2(L, c, &g, t);
  lua_settop(L, t);
  return 1;
}

void memprobe_open_cgroup (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "cgroup", l_cgroup },
    { NULL, NULL }
  };
  (void)c;
  memprobe_register(L, funcs);
}
