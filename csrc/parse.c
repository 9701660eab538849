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

/* Blanks, eight at a time first: meminfo pads every value to a column. */
const char *memprobe_skipspace (const char *s, const char *end) {
  static const char blanks[8] = { ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ' };
  while (end - s >= 8 && memcmp(s, blanks, 8) == 0)
    s += 8;
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  return s;
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
static const char *size_value (const char *s, const char *end, int64_t *v) {
  const char *start = s;
  int64_t acc = 0;
  unsigned d;
  while (s < end && (d = (unsigned)((unsigned char)*s - '0')) <= 9) {
    s++;
    if (acc < INT64_MAX / 10 - 1)
      acc = acc * 10 + (int64_t)d;
    else
      acc = acc > (INT64_MAX - (int64_t)d) / 10 ? INT64_MAX
                                                : acc * 10 + (int64_t)d;
  }
  if (s == start)
    return NULL;
  *v = acc;
  return s;
}

static int is_eol (const char *s, const char *end) {
  return s == end || *s == '\n';
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
  const char *end = s + len;
  int n = 0;
  while (s < end) {
    const char *line = s, *colon, *p, *eol;
    int64_t v;
    int kb = 0;
    s = memprobe_line(line, end, &eol);
    colon = memchr(line, ':', (size_t)(eol - line));
    if (colon == NULL || colon == line || colon - line > 64)
      continue;
    p = size_value(memprobe_skipspace(colon + 1, eol), eol, &v);
    if (p == NULL)
      continue;
    p = memprobe_skipspace(p, eol);
    if (eol - p >= 2 && p[0] == 'k' && p[1] == 'B') {
      kb = 1;
      p = memprobe_skipspace(p + 2, eol);
    }
    if (!is_eol(p, eol))
      continue;
    cb(ud, line, (size_t)(colon - line), v, kb);
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
  const char *end = s + len;
  int n = 0;
  while (s < end) {
    const char *eol, *next = memprobe_line(s, end, &eol);
    const char *key = memprobe_skipspace(s, eol), *k = key, *p;
    int64_t v;
    s = next;
    while (k < eol && *k != ' ' && *k != '\t')
      k++;
    if (k == key || k == eol || k - key > 64)
      continue;
    p = size_value(memprobe_skipspace(k, eol), eol, &v);
    if (p == NULL || !is_eol(memprobe_skipspace(p, eol), eol))
      continue;
    cb(ud, key, (size_t)(k - key), v, 0);
    n++;
  }
  return n;
}
