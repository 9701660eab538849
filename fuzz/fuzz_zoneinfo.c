/*
** memprobe_parse_zoneinfo and memprobe_parse_buddyinfo (the first input
** byte picks one): the event parsers behind zoneinfo() and buddyinfo().
** Seeds: proc/zoneinfo proc/buddyinfo
*/
#include "fuzz.h"

static void on_event (void *ud, int kind, const char *key, size_t klen,
                      int64_t v) {
  fz_bounds *b = (fz_bounds *)ud;
  size_t i;
  unsigned sum = 0;
  (void)v;
  FZ_CHECK(kind >= MP_ZI_ZONE && kind <= MP_BI_ORDER);
  /* Keys point into the input or at a literal ("protection", "free"):
  ** read every byte so that ASan checks the span either way. */
  for (i = 0; i < klen; i++)
    sum += (unsigned char)key[i];
  FZ_CHECK(klen <= (size_t)(b->end - b->begin) + 16 || sum == 0);
  b->calls++;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  fz_bounds b;
  fz_init(&b, s, size);
  if (size > 0 && (data[0] & 1))
    memprobe_parse_buddyinfo(s, size, on_event, &b);
  else
    memprobe_parse_zoneinfo(s, size, on_event, &b);
  free(s);
  return 0;
}
