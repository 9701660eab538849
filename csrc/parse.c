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

#if defined(MP_SWAR)
/* The value of 8 digits (bytes 0 to 9, the first one lowest), in three
** multiplications: pairs, then fours, then the eight. */
static inline uint64_t eight_digits (uint64_t x) {
  x = (x * 2561) >> 8;  /* 10 * 256 + 1 */
  x = ((x & 0x00ff00ff00ff00ffull) * 6553601) >> 16;  /* 100 * 65536 + 1 */
  return ((x & 0x0000ffff0000ffffull) * 42949672960001ull) >> 32;
}

/*
** size_value for the common case, a word at a time: up to 16 digits
** followed by at least one more byte, with 8 bytes readable at each
** word. Returns NULL when that is not so (size_value then decides).
*/
static inline const char *swar_value (const char *s, const char *end,
                                      int64_t *v) {
  static const uint64_t pow10[8] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000
  };
  uint64_t acc = 0;
  int i;
  for (i = 0; i < 2 && end - s >= 8; i++, s += 8) {
    uint64_t x = word(s) ^ (ONES * '0');  /* a digit becomes 0 to 9 */
    /* bit 7 of each byte above 9; carries only pass above the first */
    uint64_t m = ((x + ONES * 0x76) | x) & (ONES * 0x80);
    unsigned n;
    if (m == 0) {
      acc = acc * 100000000 + eight_digits(x);
      continue;
    }
    n = (unsigned)__builtin_ctzll(m) >> 3;  /* digits before it */
    if (n == 0 && i == 0)
      return NULL;
    if (n > 0)
      acc = acc * pow10[n] + eight_digits(x << (64 - 8 * n));
    *v = (int64_t)acc;
    return s + n;
  }
  return NULL;
}
#endif

/* a[0..n) == b[0..n) for 1 <= n <= MP_LINEMAX, without a call to
** memcmp: a key or a line is a few words. */
static inline int same_bytes (const char *a, const char *b, size_t n) {
#if defined(MP_SWAR)
  size_t i;
  uint32_t x, y;
  if (n >= 16 && n <= 32)  /* most lines: four words, one branch */
    return ((word(a) ^ word(b)) | (word(a + 8) ^ word(b + 8)) |
            (word(a + n - 16) ^ word(b + n - 16)) |
            (word(a + n - 8) ^ word(b + n - 8))) == 0;
  if (n >= 8) {
    for (i = 0; i + 8 < n; i += 8)
      if (word(a + i) != word(b + i))
        return 0;
    return word(a + n - 8) == word(b + n - 8);  /* may overlap: fine */
  }
  if (n >= 4) {
    memcpy(&x, a, 4);
    memcpy(&y, b, 4);
    if (x != y)
      return 0;
    memcpy(&x, a + n - 4, 4);
    memcpy(&y, b + n - 4, 4);
    return x == y;
  }
  for (i = 0; i < n; i++)
    if (a[i] != b[i])
      return 0;
  return 1;
#else
  return memcmp(a, b, n) == 0;
#endif
}

/*
** The line at s when it is the key k, a colon, blanks, an unsigned
** decimal and a newline, or " kB" and a newline: the lines the kernel
** writes, which memprobe_parse_kv reports as (k, *v, *kb). Returns where
** the next line starts, or NULL for any other line. k has no colon and
** no newline (memprobe_parse_kv reported it), so its colon is the first
** one of the line, as the general parser finds it; blanks and digits
** stop at a newline, so reading to 'end' instead of the line's end
** gives the same value.
*/
static inline const char *known_line (const char *s, const char *end,
                                      const mp_key *k, int64_t *v,
                                      int *kb) {
  size_t n = k->n;
  const char *p;
  if (n - 1 >= MP_LINEMAX || (size_t)(end - s) <= n || s[n] != ':' ||
      !same_bytes(s, k->k, n))
    return NULL;
  p = blanks(s + n + 1, end);
#if defined(MP_SWAR)
  {
    const char *q = swar_value(p, end, v);
    p = q != NULL ? q : size_value(p, end, v);
  }
#else
  p = size_value(p, end, v);
#endif
  if (p == NULL)
    return NULL;
  if (p < end && *p == '\n') {
    *kb = 0;
    return p + 1;
  }
  if (end - p >= 4 && memcmp(p, " kB\n", 4) == 0) {
    *kb = 1;
    return p + 4;
  }
  return NULL;
}

/* Keeps the line s..next in e (its key is already there) with its value,
** when it fits. */
static void keep_line (mp_key *e, const char *s, const char *next,
                       int64_t v, int kb) {
  size_t len = (size_t)(next - s);
  e->len = 0;
  if (len > MP_LINEMAX)
    return;
  memcpy(e->k + e->n, s + e->n, len - e->n);
  e->len = (unsigned char)len;
  e->v = v;
  e->kb = (unsigned char)kb;
}

/*
** memprobe_parse_kv for a file read before, whose keys were seq, in
** order (meminfo: the kernel writes the same lines every time). A line
** with key seq->e[i] where the general parser would find it is reported
** through same(ud, i, ...): one comparison when it is the line kept in
** e[i] (that of last time; kept is 1 then), else known_line, and it is
** kept. A kept line's value is the one same() had for e[i] last time:
** whoever reports e[i]'s key otherwise (the general parser's cb) must
** drop the line (fill.c does). From the
** first line that is neither, the general parser takes over with cb, so
** the result is always memprobe_parse_kv's. same may change seq (a
** reader's keys change when a nested read sees other lines): it is read
** again for every line.
*/
int memprobe_parse_kv_seq (const char *s, size_t len, mp_keys *seq,
                           mp_seq_cb same, mp_kv_cb cb, void *ud) {
  const char *end = s + len, *next;
  size_t i = 0;
  int64_t v;
  int kb, kept;
  while (i < seq->cap) {
    mp_key *e = &seq->e[i];
    size_t n = e->len;
    if ((kept = n > 0 && (size_t)(end - s) >= n && same_bytes(s, e->k, n))) {
      v = e->v;
      kb = e->kb;
      next = s + n;
    }
    else if ((next = known_line(s, end, e, &v, &kb)) != NULL)
      keep_line(e, s, next, v, kb);
    else
      break;
    same(ud, i++, v, kb, kept);
    s = next;
  }
  return (int)i + memprobe_parse_kv(s, (size_t)(end - s), cb, ud);
}
