/*
** The process files: memprobe_parse_status (status, smaps_rollup) with
** memprobe_snakecase over every key, and memprobe_parse_statm.
** Seeds: proc/self/status proc/self/smaps_rollup proc/self/statm
*/
#include "fuzz.h"

static void on_status (void *ud, const char *key, size_t klen, int kind,
                       int64_t v, const char *str, size_t slen) {
  fz_bounds *b = (fz_bounds *)ud;
  char out[80];
  size_t n;
  (void)v;
  FZ_CHECK(kind == MP_COUNT || kind == MP_BYTES || kind == MP_STRING);
  FZ_CHECK(key >= b->begin && key + klen <= b->end);
  if (kind == MP_STRING && slen > 0)
    FZ_CHECK(str >= b->begin && str + slen <= b->end);
  n = memprobe_snakecase(key, klen, out, sizeof(out));
  FZ_CHECK(n < sizeof(out));
  b->calls++;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  fz_bounds b;
  int64_t v[8];
  fz_init(&b, s, size);
  memprobe_parse_status(s, size, on_status, &b);
  FZ_CHECK(memprobe_parse_statm(s, size, v, 8) <= 8);
  free(s);
  return 0;
}
