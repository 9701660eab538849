/*
** The free() arithmetic: meminfo, then zoneinfo after the first NUL byte
** of the input. UBSan turns any signed overflow into a crash.
** Seeds: proc/meminfo+proc/zoneinfo proc/meminfo
*/
#include "fuzz.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  const char *nul = memchr(s, '\0', size);
  size_t mlen = nul ? (size_t)(nul - s) : size;
  mp_free f;
  int i;
  if (memprobe_free_meminfo(&f, s, mlen) && nul != NULL)
    memprobe_free_zoneinfo(&f, nul + 1, size - mlen - 1);
  if (memprobe_free_finish(&f, 4096) == 1) {
    FZ_CHECK(f.have & 1u);  /* total is always there */
    for (i = 0; i < MP_FREE_NOUT; i++)
      if ((f.have >> i) & 1)
        FZ_CHECK(f.out[i] <= 8 * MP_BYTES_MAX && f.out[i] >= -8 * MP_BYTES_MAX);
    if (f.estimated && f.zones > 0)
      FZ_CHECK(f.out[8] >= 0);  /* available */
  }
  else
    FZ_CHECK(f.have == 0);
  free(s);
  return 0;
}
