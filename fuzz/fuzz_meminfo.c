/*
** memprobe_parse_kv, the "Key: value [kB]" parser behind meminfo() and
** free(), and memprobe_parse_kv_seq, meminfo()'s check of a read against
** the keys and lines of the last one. The input is parsed whole; then its
** NUL-separated parts are read one after the other, each twice, with the
** keys kept as fill.c keeps them: every read must report exactly what the
** general parser reports, and every kept line must parse to its value.
** A line reported as kept must have the value reported for its field
** the last time (fill.c then leaves the field alone).
** Seeds: proc/meminfo proc/self/status proc/self/smaps_rollup
** sys/devices/system/node/node0/meminfo proc/meminfo+proc/meminfo
** proc/meminfo+proc/self/status+proc/meminfo
*/
#include "fuzz.h"

static void on_kv (void *ud, const char *key, size_t klen, int64_t v,
                   int kb) {
  fz_key((fz_bounds *)ud, key, klen);
  FZ_CHECK(memchr(key, ':', klen) == NULL);
  FZ_CHECK(kb == 0 || kb == 1);
  FZ_CHECK(v >= 0);
  (void)memprobe_bytes(v, kb ? 1024 : 1);
}

typedef struct field {
  char k[MP_KEYMAX];
  size_t n;
  int64_t v;
  int kb;
} field;

/* The fields of one read, and the keys kept across reads. */
typedef struct reader {
  mp_keys keys;
  field *got;
  size_t n, max;
  field *prev;     /* prev[i]: field i as reported last, by any read */
  size_t nprev;
  uint32_t moves;  /* bit i % 32: the keys move after field i */
} reader;

/* The keys array moves to another block, as fill.c's realloc may move
** it during a nested read: the parser must keep no pointer into it. */
static void move_keys (mp_keys *k, size_t cap) {
  mp_key *e = (mp_key *)calloc(cap, sizeof(mp_key));
  FZ_CHECK(e != NULL);
  if (k->cap > 0)
    memcpy(e, k->e, (k->cap < cap ? k->cap : cap) * sizeof(mp_key));
  free(k->e);
  k->e = e;
  k->cap = cap;
}

static void record (reader *r, const char *k, size_t n, int64_t v, int kb) {
  field *f;
  FZ_CHECK(n >= 1 && n <= MP_KEYMAX && (kb == 0 || kb == 1));
  if (r->n == r->max) {
    r->max = r->max ? 2 * r->max : 64;
    r->got = (field *)realloc(r->got, r->max * sizeof(field));
    FZ_CHECK(r->got != NULL);
  }
  f = &r->got[r->n++];
  memcpy(f->k, k, n);
  f->n = n;
  f->v = v;
  f->kb = kb;
  if (r->n > r->nprev) {
    r->prev = (field *)realloc(r->prev, 2 * r->n * sizeof(field));
    FZ_CHECK(r->prev != NULL);
    memset(r->prev + r->nprev, 0, (2 * r->n - r->nprev) * sizeof(field));
    r->nprev = 2 * r->n;
  }
  r->prev[r->n - 1] = *f;
}

static void plain_cb (void *ud, const char *key, size_t klen, int64_t v,
                      int kb) {
  record((reader *)ud, key, klen, v, kb);
}

/* What memprobe_fill_key does with a key from the general parser. */
static void general_cb (void *ud, const char *key, size_t klen, int64_t v,
                        int kb) {
  reader *r = (reader *)ud;
  size_t i = r->n;
  mp_key *e;
  record(r, key, klen, v, kb);
  if (klen > MP_LINEMAX) {  /* not kept */
    if (i < r->keys.cap)
      r->keys.e[i].n = r->keys.e[i].len = 0;
    return;
  }
  if (i >= r->keys.cap)
    move_keys(&r->keys, 2 * i + 1);
  e = &r->keys.e[i];
  e->len = 0;  /* the value reported may not be the kept line's */
  if (e->n != klen || memcmp(e->k, key, klen) != 0) {
    e->n = (unsigned char)klen;
    memcpy(e->k, key, klen);
  }
}

static void same_cb (void *ud, size_t i, int64_t v, int kb, int kept) {
  reader *r = (reader *)ud;
  FZ_CHECK(i == r->n && i < r->keys.cap);
  if (kept) {
    const field *p = i < r->nprev ? &r->prev[i] : NULL;
    FZ_CHECK(p != NULL && p->n == r->keys.e[i].n && p->v == v && p->kb == kb &&
             memcmp(p->k, r->keys.e[i].k, p->n) == 0);
  }
  record(r, r->keys.e[i].k, r->keys.e[i].n, v, kb);
  if ((r->moves >> (i % 32)) & 1)
    move_keys(&r->keys, r->keys.cap);
}

static int same_fields (const reader *a, const reader *b) {
  size_t i;
  if (a->n != b->n)
    return 0;
  for (i = 0; i < a->n; i++) {
    const field *x = &a->got[i], *y = &b->got[i];
    if (x->n != y->n || memcmp(x->k, y->k, x->n) != 0 || x->v != y->v ||
        x->kb != y->kb)
      return 0;
  }
  return 1;
}

/* A kept line is one line that parses to its own key and value. */
static void check_kept (const mp_keys *k, reader *one) {
  size_t i;
  for (i = 0; i < k->cap; i++) {
    const mp_key *e = &k->e[i];
    if (e->len == 0)
      continue;
    FZ_CHECK(e->len <= MP_LINEMAX && e->n >= 1 && e->n < e->len);
    FZ_CHECK(memchr(e->k, '\n', e->len) == e->k + e->len - 1);
    one->n = 0;
    memprobe_parse_kv(e->k, e->len, plain_cb, one);
    FZ_CHECK(one->n == 1 && one->got[0].n == e->n &&
             memcmp(one->got[0].k, e->k, e->n) == 0 &&
             one->got[0].v == e->v && one->got[0].kb == e->kb);
  }
}

/* Reads part s[0..n) as meminfo() would after the reads before it. */
static void read_part (reader *r, reader *want, const char *s, size_t n) {
  int reported;
  want->n = 0;
  memprobe_parse_kv(s, n, plain_cb, want);
  r->n = 0;
  reported = memprobe_parse_kv_seq(s, n, &r->keys, same_cb, general_cb, r);
  FZ_CHECK(reported >= 0 && (size_t)reported == r->n);
  FZ_CHECK(same_fields(r, want));
  check_kept(&r->keys, want);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  char *s = fz_copy(data, size);
  fz_bounds b;
  reader r, want;
  size_t at = 0;
  fz_init(&b, s, size);
  FZ_CHECK(memprobe_parse_kv(s, size, on_kv, &b) == b.calls);
  memset(&r, 0, sizeof(r));
  memset(&want, 0, sizeof(want));
  r.moves = size >= 4 ? (uint32_t)data[0] * 0x01010101u & 0x11111111u : 0;
  while (at <= size) {
    const char *nul = memchr(s + at, '\0', size - at);
    size_t n = nul ? (size_t)(nul - (s + at)) : size - at;
    /* a private copy of the part, so that ASan sees a read past it */
    char *part = fz_copy((const uint8_t *)s + at, n);
    read_part(&r, &want, part, n);
    read_part(&r, &want, part, n);  /* with its own lines kept */
    free(part);
    at += n + 1;
  }
  free(r.keys.e);
  free(r.got);
  free(r.prev);
  free(want.got);
  free(want.prev);
  free(s);
  return 0;
}
