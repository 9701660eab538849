/*
** memprobe_parse_kv, the "Key: value [kB]" parser behind meminfo() and
** free(). Seeds: proc/meminfo proc/self/status proc/self/smaps_rollup
** sys/devices/system/node/node0/meminfo
*/
#include "fuzz.h"

static void on_kv (void *ud, const char *key, size_t klen, int64_t v,
                   int kb) {
  fz_key((fz_bounds *)ud, key, klen);
  FZ_CHECK(memchr(key, ':', klen) == NULL);
  FZ_CHECK(kb == 0 || kb == 1);
  FZ_CHECK(v >= 0);
  (void)memprobe_bytes(v, kb ? 1024 : 1);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  fz_bounds b;
  fz_init(&b, s, size);
  FZ_CHECK(memprobe_parse_kv(s, size, on_kv, &b) == b.calls);
  free(s);
  return 0;
}
