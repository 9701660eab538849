/*
** memprobe_parse_vmallocinfo and memprobe_parse_allocinfo (the first
** input byte picks one): the parsers behind vmallocinfo() and allocinfo().
** Seeds: proc/vmallocinfo proc/allocinfo
*/
#include "fuzz.h"

static void in_input (fz_bounds *b, const char *p, size_t n) {
  if (n > 0) {
    FZ_CHECK(p >= b->begin && p + n <= b->end);
    FZ_CHECK(p[n - 1] == p[n - 1]);
  }
}

static void on_area (void *ud, const mp_vmarea *a) {
  fz_bounds *b = (fz_bounds *)ud;
  in_input(b, a->addr, a->alen);
  in_input(b, a->caller, a->clen);
  in_input(b, a->module, a->mlen);
  in_input(b, a->phys, a->plen);
  FZ_CHECK(a->flen <= a->clen);
  b->calls++;
}

static void on_site (void *ud, const mp_allocsite *c) {
  fz_bounds *b = (fz_bounds *)ud;
  in_input(b, c->file, c->flen);
  in_input(b, c->module, c->mlen);
  in_input(b, c->func, c->fnlen);
  b->calls++;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  fz_bounds b;
  int skipped = 0;
  fz_init(&b, s, size);
  if (size > 0 && (data[0] & 1))
    memprobe_parse_allocinfo(s, size, &skipped, on_site, &b);
  else
    memprobe_parse_vmallocinfo(s, size, &skipped, on_area, &b);
  FZ_CHECK(skipped >= 0);
  free(s);
  return 0;
}
