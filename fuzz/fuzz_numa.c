/*
** The NUMA node files: memprobe_parse_nodememinfo ("Node 0 MemTotal:"),
** memprobe_parse_rangelist ("0-3,5") and memprobe_parse_intlist.
** Seeds: sys/devices/system/node/node0/meminfo
** sys/devices/system/node/online sys/devices/system/node/node0/numastat
*/
#include "fuzz.h"

static void on_kv (void *ud, const char *key, size_t klen, int64_t v,
                   int kb) {
  fz_key((fz_bounds *)ud, key, klen);
  (void)memprobe_bytes(v, kb ? 1024 : 1);
}

static void on_int (void *ud, int64_t v) {
  (void)v;
  ((fz_bounds *)ud)->calls++;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  fz_bounds b;
  fz_init(&b, s, size);
  memprobe_parse_nodememinfo(s, size, on_kv, &b);
  memprobe_parse_rangelist(s, size, on_int, &b);
  memprobe_parse_intlist(s, size, on_int, &b);
  free(s);
  return 0;
}
