/*
** pprof.c: a profile.proto (github.com/google/pprof, proto/profile.proto)
** encoder and a gzip writer, for the profiler's pprof(path). Pure C on
** neutral arrays, no Lua: the caller fills them from its own state and
** nothing can change that state while this runs.
**
** The profile is Go's heap profile shape: sample types alloc_objects,
** alloc_space, inuse_objects, inuse_space (count and bytes), one
** Function and one Location per frame (location i has function i), and
** the sampling period (bytes) as period_type space/bytes. The gzip member
** holds stored deflate blocks: no compressor, so no zlib to link; the
** files are a few times larger than compressed ones, which pprof and
** every gzip reader accept.
*/
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte buffer in the C heap; 'failed' once malloc failed. */
typedef struct mp_pbuf {
  unsigned char *p;
  size_t n, cap;
  int failed;
} mp_pbuf;

static void put (mp_pbuf *b, const void *s, size_t n) {
  if (b->failed || n == 0)  /* an empty stack: s may be NULL */
    return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    unsigned char *np;
    while (cap < b->n + n)
      cap *= 2;
    if ((np = (unsigned char *)realloc(b->p, cap)) == NULL) {
      b->failed = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

static void varint (mp_pbuf *b, uint64_t v) {
  unsigned char c[10];
  size_t n = 0;
  while (v >= 0x80) {
    c[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  c[n++] = (unsigned char)v;
  put(b, c, n);
}

/* Field keys: wire type 0 (varint) and 2 (length-delimited). */
static void key (mp_pbuf *b, unsigned field, unsigned wire) {
  varint(b, ((uint64_t)field << 3) | wire);
}

static void field_int (mp_pbuf *b, unsigned field, int64_t v) {
  key(b, field, 0);
  varint(b, (uint64_t)v);
}

static void field_bytes (mp_pbuf *b, unsigned field, const void *s,
                         size_t n) {
  key(b, field, 2);
  varint(b, n);
  put(b, s, n);
}

/* Appends the message in m as field 'field' of b, and empties m. */
static void field_msg (mp_pbuf *b, unsigned field, mp_pbuf *m) {
  if (m->failed)
    b->failed = 1;
  field_bytes(b, field, m->p, m->n);
  m->n = 0;
}

/* The string table: index 0 is "", then the fixed names, then two
** strings per frame (function name, file name) at STR_FRAME + 2i. */
static const char *const fixed[] = {
  "", "alloc_objects", "count", "alloc_space", "bytes", "inuse_objects",
  "inuse_space", "space"
};
enum { S_ALLOC_OBJ = 1, S_COUNT, S_ALLOC_SPACE, S_BYTES, S_INUSE_OBJ,
       S_INUSE_SPACE, S_SPACE, STR_FRAME };

static void value_type (mp_pbuf *b, mp_pbuf *m, unsigned field,
                        int64_t type, int64_t unit) {
  field_int(m, 1, type);
  field_int(m, 2, unit);
  field_msg(b, field, m);
}

/*
** Encodes the profile into out. Samples with four values (the order of
** the sample types); frame ids in samples are 1-based indexes into
** frames, leaf first. 'def' is the index of the default sample type.
*/
static void encode (mp_pbuf *out, const mp_pp_sample *s, size_t ns,
                    const mp_pp_frame *f, size_t nf, int64_t period,
                    int def) {
  mp_pbuf m = { NULL, 0, 0, 0 }, sub = { NULL, 0, 0, 0 };
  size_t i, j;
  value_type(out, &m, 1, S_ALLOC_OBJ, S_COUNT);
  value_type(out, &m, 1, S_ALLOC_SPACE, S_BYTES);
  value_type(out, &m, 1, S_INUSE_OBJ, S_COUNT);
  value_type(out, &m, 1, S_INUSE_SPACE, S_BYTES);
  for (i = 0; i < ns; i++) {
    for (j = 0; j < s[i].n; j++)  /* location_id, packed */
      varint(&sub, s[i].f[j]);
    field_msg(&m, 1, &sub);
    for (j = 0; j < 4; j++)
      varint(&sub, (uint64_t)s[i].v[j]);
    field_msg(&m, 2, &sub);
    field_msg(out, 2, &m);
  }
  for (i = 0; i < nf; i++) {  /* location i+1: one line, function i+1 */
    field_int(&m, 1, (int64_t)i + 1);
    field_int(&sub, 1, (int64_t)i + 1);
    field_int(&sub, 2, f[i].line > 0 ? f[i].line : 0);
    field_msg(&m, 4, &sub);
    field_msg(out, 4, &m);
  }
  for (i = 0; i < nf; i++) {
    field_int(&m, 1, (int64_t)i + 1);
    field_int(&m, 2, STR_FRAME + 2 * (int64_t)i);
    field_int(&m, 3, STR_FRAME + 2 * (int64_t)i);
    field_int(&m, 4, STR_FRAME + 2 * (int64_t)i + 1);
    field_int(&m, 5, f[i].linedefined > 0 ? f[i].linedefined : 0);
    field_msg(out, 5, &m);
  }
  for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
    field_bytes(out, 6, fixed[i], strlen(fixed[i]));
  for (i = 0; i < nf; i++) {
    field_bytes(out, 6, f[i].func, strlen(f[i].func));
    field_bytes(out, 6, f[i].src, strlen(f[i].src));
  }
  value_type(out, &m, 11, S_SPACE, S_BYTES);
  field_int(out, 12, period);
  field_int(out, 14, def == 1 ? S_ALLOC_SPACE : S_INUSE_SPACE);
  if (m.failed || sub.failed)
    out->failed = 1;
  free(m.p);
  free(sub.p);
}

static uint32_t crc32 (const unsigned char *p, size_t n) {
  uint32_t t[256], c;
  size_t i;
  unsigned k;
  for (i = 0; i < 256; i++) {
    c = (uint32_t)i;
    for (k = 0; k < 8; k++)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  c = 0xFFFFFFFFu;
  for (i = 0; i < n; i++)
    c = t[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

static void le32 (mp_pbuf *b, uint32_t v) {
  unsigned char c[4];
  c[0] = (unsigned char)v;
  c[1] = (unsigned char)(v >> 8);
  c[2] = (unsigned char)(v >> 16);
  c[3] = (unsigned char)(v >> 24);
  put(b, c, 4);
}

/* One gzip member (RFC 1952) of stored deflate blocks (RFC 1951 3.2.4). */
static void gzip_stored (mp_pbuf *b, const unsigned char *p, size_t n) {
  static const unsigned char head[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0,
                                          0xff };
  size_t off = 0;
  put(b, head, sizeof(head));
  do {
    size_t len = (n - off > 65535) ? 65535 : n - off;
    unsigned char h[5];
    h[0] = (off + len == n) ? 1 : 0;  /* BFINAL, BTYPE 00 */
    h[1] = (unsigned char)len;
    h[2] = (unsigned char)(len >> 8);
    h[3] = (unsigned char)~len;
    h[4] = (unsigned char)(~len >> 8);
    put(b, h, 5);
    put(b, p + off, len);
    off += len;
  } while (off < n);
  le32(b, crc32(p, n));
  le32(b, (uint32_t)n);
}

/*
** Writes the gzip'd profile to path. Returns 0, or an errno value
** (ENOMEM when a buffer could not be had).
*/
int memprobe_pprof_write (const char *path, const mp_pp_sample *s,
                          size_t ns, const mp_pp_frame *f, size_t nf,
                          int64_t period, int def) {
  mp_pbuf raw = { NULL, 0, 0, 0 }, gz = { NULL, 0, 0, 0 };
  int err = 0;
  encode(&raw, s, ns, f, nf, period, def);
  if (!raw.failed)
    gzip_stored(&gz, raw.p, raw.n);
  if (raw.failed || gz.failed)
    err = ENOMEM;
  else
    err = memprobe_write_file(path, (const char *)gz.p, gz.n);
  free(raw.p);
  free(gz.p);
  return err;
}
