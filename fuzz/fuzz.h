/*
** fuzz.h: what every libFuzzer target shares. A target is one file,
** fuzz/fuzz_NAME.c, that defines LLVMFuzzerTestOneInput and names its
** seed files (paths under spec/fixtures/<tree>/) on a line starting with
** "Seeds:"; "a+b+c" joins files with a NUL byte between each. The
** Makefile builds every fuzz/fuzz_*.c against the whole C core.
*/
#ifndef MEMPROBE_FUZZ_H
#define MEMPROBE_FUZZ_H

#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* The bounds a callback's key must stay in; abort() tells libFuzzer. */
typedef struct fz_bounds {
  const char *begin, *end;
  int calls;
} fz_bounds;

#define FZ_CHECK(cond)  do { if (!(cond)) abort(); } while (0)

/* Checks a reported key: inside the input, 1..64 bytes, no newline. It
** reads every byte so that ASan sees any overrun. */
static inline void fz_key (fz_bounds *b, const char *key, size_t klen) {
  size_t i;
  FZ_CHECK(klen >= 1 && klen <= 64);
  FZ_CHECK(key >= b->begin && key + klen <= b->end);
  for (i = 0; i < klen; i++)
    FZ_CHECK(key[i] != '\n');
  b->calls++;
}

/* A private copy, so that a read past 'size' is an ASan error even when
** libFuzzer's own buffer happens to be followed by more data. */
static inline char *fz_copy (const uint8_t *data, size_t size) {
  char *s = (char *)malloc(size ? size : 1);
  FZ_CHECK(s != NULL);
  if (size)
    memcpy(s, data, size);
  return s;
}

/* Bounds over the whole copy [s, s + size), no call seen yet. */
static inline void fz_init (fz_bounds *b, const char *s, size_t size) {
  b->begin = s;
  b->end = s + size;
  b->calls = 0;
}

#endif
