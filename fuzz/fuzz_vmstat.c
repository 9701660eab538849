/*
** memprobe_parse_pairs, the "key value" parser behind vmstat() and the
** zoneinfo counters. Seeds: proc/vmstat proc/zoneinfo
*/
#include "fuzz.h"

static void on_pair (void *ud, const char *key, size_t klen, int64_t v,
                     int kb) {
  size_t i;
  fz_key((fz_bounds *)ud, key, klen);
  for (i = 0; i < klen; i++)
    FZ_CHECK(key[i] != ' ' && key[i] != '\t');
  FZ_CHECK(kb == 0);
  (void)v;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  fz_bounds b;
  fz_init(&b, s, size);
  FZ_CHECK(memprobe_parse_pairs(s, size, on_pair, &b) == b.calls);
  free(s);
  return 0;
}
