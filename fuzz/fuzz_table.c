/*
** memprobe_parse_table (/proc/swaps, /proc/sysvipc/shm), plus
** memprobe_unescape and memprobe_parse_u64 over every cell it reports.
** Seeds: proc/swaps proc/sysvipc/shm proc/sys/kernel/shmmax
*/
#include "fuzz.h"

static void on_cell (void *ud, int row, int col, const char *s, size_t n) {
  fz_bounds *b = (fz_bounds *)ud;
  char *out;
  uint64_t v;
  FZ_CHECK(row >= 0 && col >= -1);
  if (col == -1) {  /* the end of a row */
    FZ_CHECK(s == NULL && n == 0);
    return;
  }
  FZ_CHECK(s >= b->begin && s + n <= b->end);
  out = (char *)malloc(n ? n : 1);
  FZ_CHECK(out != NULL);
  FZ_CHECK(memprobe_unescape(s, n, out) <= n);
  (void)memprobe_parse_u64(s, n, &v);
  free(out);
  b->calls++;
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  fz_bounds b;
  uint64_t v;
  fz_init(&b, s, size);
  memprobe_parse_table(s, size, on_cell, &b);
  (void)memprobe_parse_u64(s, size, &v);
  free(s);
  return 0;
}
