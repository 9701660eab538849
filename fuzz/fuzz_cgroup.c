/*
** The cgroup files: memprobe_parse_proc_cgroup (/proc/self/cgroup) and
** memprobe_parse_limit (memory.max, memory.limit_in_bytes).
** Seeds: proc/self/cgroup sys/fs/cgroup/unified/memory.pressure
*/
#include "fuzz.h"

static void in_input (const char *p, size_t n, const char *b, size_t size) {
  if (p != NULL && n > 0) {
    FZ_CHECK(p >= b && p + n <= b + size);
    FZ_CHECK(p[n - 1] == p[n - 1]);
  }
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  mp_cgpaths paths;
  int64_t v;
  memset(&paths, 0, sizeof(paths));
  memprobe_parse_proc_cgroup(s, size, &paths);
  in_input(paths.v1, paths.v1len, s, size);
  in_input(paths.v2, paths.v2len, s, size);
  (void)memprobe_parse_limit(s, size, &v);
  free(s);
  return 0;
}
