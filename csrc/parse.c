/*
** parse.c: the line parsers shared by every /proc and /sys reader. They
** take a buffer and a length (never a C string: the buffer may hold NULs)
** and report what they find through a callback, so that the fuzz targets
** and the Lua bindings run exactly the same code.
*/
#include "internal.h"

#include <string.h>


const char *memprobe_nextline (const char *s, const char *end) {
  const char *nl = memchr(s, '\n', (size_t)(end - s));
  return nl ? nl + 1 : end;
}

/*
** The line that starts at s: sets *eol to its end (the newline, or end
** for a last line without one) and returns where the next line starts.
*/
const char *memprobe_line (const char *s, const char *end,
                           const char **eol) {
  const char *next = memprobe_nextline(s, end);
  *eol = (next > s && next[-1] == '\n') ? next - 1 : next;
  return next;
}

/*
** The record lines of a table file: returns the start of the next line
** at or after *s that holds more than blanks (and, with comments set,
** whose first word does not start with '#'), sets *eol to its end and
** moves *s past it. Returns NULL when no such line is left.
*/
const char *memprobe_dataline (const char **s, const char *end, int comments,
                               const char **eol) {
  while (*s < end) {
    const char *line = *s, *p;
    *s = memprobe_line(line, end, eol);
    p = memprobe_skipspace(line, *eol);
    if (p < *eol && !(comments && *p == '#'))
      return line;
  }
  return NULL;
}

/* An upper bound on the lines in a buffer: its newlines plus one. */
size_t memprobe_countlines (const char *s, size_t len) {
  size_t i, n = 1;
  for (i = 0; i < len; i++)
    n += s[i] == '\n';
  return n;
}

/*
** Word-at-a-time helpers for the per-tick parsers (meminfo, vmstat and
** status run them on every line at every call). A word is 8 bytes loaded
** from s, the first byte lowest; other byte orders and compilers take
** the byte loops.
*/
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MP_SWAR  1
#define ONES     0x0101010101010101ull
static inline uint64_t word (const char *s) {
  uint64_t w;
  memcpy(&w, s, 8);
  return w;
}
#endif

/* Blanks: meminfo pads every value to a column with spaces. */
static inline const char *blanks (const char *s, const char *end) {
#if defined(MP_SWAR)
  while (end - s >= 8) {
    uint64_t y = word(s) ^ (ONES * ' ');  /* a space becomes 0 */
    if (y != 0) {
      s += __builtin_ctzll(y) >> 3;  /* the first byte that is not */
      break;
    }
    s += 8;
  }
#endif
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  return s;
}

/* The first blank at or after s, or lim. */
static inline const char *word_end (const char *s, const char *lim) {
#if defined(MP_SWAR)
  while (lim - s >= 8) {
    uint64_t w = word(s), sp = w ^ (ONES * ' '), tab = w ^ (ONES * '\t');
    /* the lowest flag of each marks its first zero byte exactly */
    uint64_t z = (((sp - ONES) & ~sp) | ((tab - ONES) & ~tab)) &
                 (ONES * 0x80);
    if (z != 0)
      return s + (__builtin_ctzll(z) >> 3);
    s += 8;
  }
#endif
  while (s < lim && *s != ' ' && *s != '\t')
    s++;
  return s;
}

const char *memprobe_skipspace (const char *s, const char *end) {
  return blanks(s, end);
}

/*
** Reads an optionally signed decimal integer. Returns the first character
** after it, or NULL when there is no digit or the value overflows int64.
*/
const char *memprobe_int64 (const char *s, const char *end, int64_t *v) {
  uint64_t acc = 0;
  int neg = 0;
  const char *start;
  if (s < end && (*s == '-' || *s == '+'))
    neg = (*s++ == '-');
  start = s;
  while (s < end && *s >= '0' && *s <= '9') {
    unsigned d = (unsigned)(*s - '0');
    if (acc > (UINT64_MAX - d) / 10)
      return NULL;
    acc = acc * 10 + d;
    s++;
  }
  if (s == start || acc > (uint64_t)INT64_MAX)
    return NULL;
  *v = neg ? -(int64_t)acc : (int64_t)acc;
  return s;
}

/*
** An unsigned decimal, as the kernel prints sizes and counters: no sign
** (a line with one does not parse), and a value beyond INT64_MAX is held
** there instead of failing, so that memprobe_bytes can report it as out
** of range rather than the line going missing.
*/
static inline const char *size_value (const char *s, const char *end,
                                       int64_t *v) {
  const char *start = s, *fast = end - s > 18 ? s + 18 : end;
  int64_t acc = 0;
  unsigned d;
  /* 18 digits cannot overflow: no check in the loop every line runs */
  while (s < fast && (d = (unsigned)((unsigned char)*s - '0')) <= 9) {
    acc = acc * 10 + (int64_t)d;
    s++;
  }
  if (s == start)
    return NULL;
  while (s < end && (d = (unsigned)((unsigned char)*s - '0')) <= 9) {
    acc = acc > (INT64_MAX - (int64_t)d) / 10 ? INT64_MAX
                                              : acc * 10 + (int64_t)d;
    s++;
  }
  *v = acc;
  return s;
}

/*
** "Key:   value [kB]" lines (meminfo, status, smaps_rollup). The key runs
** to the colon and may hold spaces and parentheses ("Active(file)");
** whitespace after the colon is optional. Lines with more than one number
** (2.4-style "Mem: total used free"), with anything but "kB" after the
** number, or with a signed number (sizes are unsigned) are skipped.
** Returns the number of fields reported.
*/
int memprobe_parse_kv (const char *s, size_t len, mp_kv_cb cb, void *ud) {
  const char *end = s + len, *eol;
  int n = 0;
  for (; s < end; s = eol < end ? eol + 1 : end) {
    const char *colon, *p;
    int64_t v;
    int kb = 0;
    if ((eol = memchr(s, '\n', (size_t)(end - s))) == NULL)
      eol = end;
    /* a colon past 64 bytes of key is no key */
    colon = memchr(s, ':', eol - s > 65 ? 65 : (size_t)(eol - s));
    if (colon == NULL || colon == s)
      continue;
    p = size_value(blanks(colon + 1, eol), eol, &v);
    if (p == NULL)
      continue;
    if (eol - p == 3 && memcmp(p, " kB", 3) == 0)
      kb = 1;  /* as the kernel writes it: no blanks to skip */
    else if (p != eol) {
      p = blanks(p, eol);
      if (eol - p >= 2 && p[0] == 'k' && p[1] == 'B') {
        kb = 1;
        p = blanks(p + 2, eol);
      }
      if (p != eol)
        continue;
    }
    cb(ud, s, (size_t)(colon - s), v, kb);
    n++;
  }
  return n;
}

/*
** "key value" lines (vmstat, memory.stat, memory.events, numastat,
** zoneinfo's indented counters). Leading whitespace is allowed; a line
** whose second word is not an unsigned integer is skipped.
*/
int memprobe_parse_pairs (const char *s, size_t len, mp_kv_cb cb, void *ud) {
  const char *end = s + len, *eol;
  int n = 0;
  for (; s < end; s = eol < end ? eol + 1 : end) {
    const char *key, *k, *lim, *p;
    int64_t v;
    if ((eol = memchr(s, '\n', (size_t)(end - s))) == NULL)
      eol = end;
    key = k = blanks(s, eol);
    lim = eol - key > 65 ? key + 65 : eol;
    k = word_end(key, lim);
    if (k == key || k == lim)
      continue;  /* no key, no value, or a key past 64 bytes */
    p = size_value(blanks(k, eol), eol, &v);
    if (p == NULL || blanks(p, eol) != eol)
      continue;
    cb(ud, key, (size_t)(k - key), v, 0);
    n++;
  }
  return n;
}
