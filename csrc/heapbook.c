/*
** heapbook.c: the containers the heap walk keeps its bookkeeping in. All
** of it is malloc'ed outside the Lua heap the walk measures, and counted.
** None of them ever copies its contents to grow, so that no insertion
** costs time in proportion to the heap and a walk taken in slices can
** keep each one short:
**
** - a vector is a list of chunks of MP_CHUNK elements that never move:
**   growing it costs one chunk;
** - an index (open addressing, linear probing) doubles incrementally:
**   every insertion clears a few pages of the new table, then moves a few
**   of the old entries into it; lookups use the old one until all moved.
**   A big old table is then unmapped a few pages per insertion: freeing
**   megabytes at once costs the kernel about 70 us per megabyte.
**
** Pure C, no Lua: the callers raise the errors.
*/
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MIGRATE  8      /* entries an insertion moves while an index grows */
#define PREP     8192   /* bytes of the new table an insertion clears */
#define BIG      (1u << 18)  /* index tables mapped from this size on */
#define UNMAP    (1u << 16)  /* bytes of a retired one an insertion unmaps */

/*
** Blocks of MP_MAPPED bytes and more are mapped, never taken from the host's
** malloc: giving back hundreds of megabytes of chunks to malloc one by
** one ends with it trimming its heap at once (6 ms for 100 MB), in the
** last free. Smaller ones are malloc'ed.
*/
void *memprobe_book_alloc (mp_book *b, void *p, size_t osz, size_t nsz) {
  void *q = NULL;
  if (p == NULL && nsz == 0) return NULL;  /* nothing to do */
  if (osz < MP_MAPPED && nsz < MP_MAPPED) {
    if (nsz == 0) free(p);
    else if ((q = realloc(p, nsz)) == NULL) return NULL;
  }
  else {
    if (nsz > 0) {
      q = nsz >= MP_MAPPED ? mmap(NULL, MP_PAGES(nsz), PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                        : malloc(nsz);
      if (q == MAP_FAILED || q == NULL) return NULL;
      if (p != NULL) memcpy(q, p, osz < nsz ? osz : nsz);
    }
    if (p != NULL && osz >= MP_MAPPED) munmap(p, MP_PAGES(osz));
    else free(p);
  }
  b->bytes += nsz - osz;
  *b->total += nsz - osz;
  return q;
}

/* size zeroed bytes, given back by memprobe_book_alloc(b, p, size, 0). */
void *memprobe_book_zalloc (mp_book *b, size_t size) {
  void *p;
  if (size >= MP_MAPPED)
    return memprobe_book_map(b, size);
  if ((p = calloc(size ? size : 1, 1)) == NULL) return NULL;
  b->bytes += size;
  *b->total += size;
  return p;
}

void *memprobe_book_map (mp_book *b, size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  b->bytes += size;
  *b->total += size;
  return p;
}

void memprobe_book_unmap (mp_book *b, void *p, size_t size) {
  if (p == NULL || size == 0) return;
  munmap(p, size);
  b->bytes -= size;
  *b->total -= size;
}

void *memprobe_vec_push (mp_book *b, mp_vec *v, size_t elsize) {
  uint32_t c = v->n >> MP_CHUNKBITS;
  if ((v->n & (MP_CHUNK - 1)) == 0) {  /* a new chunk */
    if (c == v->ccap) {
      uint32_t ncap = v->ccap ? v->ccap * 2 : 16;
      char **nc = (char **)memprobe_book_alloc(b, v->c,
                                               v->ccap * sizeof(char *),
                                               ncap * sizeof(char *));
      if (nc == NULL) return NULL;
      v->c = nc;
      v->ccap = ncap;
    }
    v->c[c] = (char *)memprobe_book_alloc(b, NULL, 0, MP_CHUNK * elsize);
    if (v->c[c] == NULL) return NULL;
  }
  return v->c[c] + (size_t)(v->n++ & (MP_CHUNK - 1)) * elsize;
}

void memprobe_vec_free (mp_book *b, mp_vec *v, size_t elsize) {
  uint32_t i, nc = (v->n + MP_CHUNK - 1) >> MP_CHUNKBITS;
  for (i = 0; i < nc; i++)
    memprobe_book_alloc(b, v->c[i], MP_CHUNK * elsize, 0);
  memprobe_book_alloc(b, v->c, v->ccap * sizeof(char *), 0);
  memset(v, 0, sizeof(*v));
}

/* A table of size bytes, not cleared; big ones are mapped. */
static uint32_t *table_new (mp_book *b, size_t size) {
  void *p;
  if (size < BIG) return (uint32_t *)memprobe_book_alloc(b, NULL, 0, size);
  p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
           -1, 0);
  if (p == MAP_FAILED) return NULL;
  b->bytes += size;
  *b->total += size;
  return (uint32_t *)p;
}

/* Releases bytes [from, from + n) of a table of size bytes. */
static void table_release (mp_book *b, void *p, size_t size, size_t from,
                           size_t n) {
  if (p == NULL || n == 0) return;
  if (size < BIG) {
    memprobe_book_alloc(b, p, size, 0);
    return;
  }
  munmap((char *)p + from, n);
  b->bytes -= n;
  *b->total -= n;
}

int memprobe_index_init (mp_book *b, mp_index *x, uint32_t cap) {
  memset(x, 0, sizeof(*x));
  x->v = table_new(b, (size_t)cap * 4);
  if (x->v == NULL) return 0;
  memset(x->v, 0, (size_t)cap * 4);
  x->mask = cap - 1;
  return 1;
}

static void place (uint32_t *v, uint32_t mask, uint32_t h, uint32_t value) {
  uint32_t i;
  for (i = h & mask; v[i] != 0; i = (i + 1) & mask) ;
  v[i] = MP_SLOT(h, value);
}

/*
** One insertion's share of the growth: first PREP bytes of the new table
** cleared (its pages are touched then, a few at a time, rather than all
** by the first insertions that land there), then up to k of the values
** below x->upto moved into it; the old table goes when all did.
*/
static void grow (mp_index *x, uint32_t k, uint32_t count,
                  mp_rehash rehash, const void *owner) {
  size_t size = ((size_t)x->nmask + 1) * 4;
  uint32_t h;
  if (x->cleared < size) {
    size_t n = size - x->cleared < PREP ? size - x->cleared : PREP;
    memset((char *)x->nv + x->cleared, 0, n);
    x->cleared += n;
    if (x->cleared < size) return;
    x->upto = count;  /* later values go into both tables */
  }
  for (; k > 0 && x->moved < x->upto; k--, x->moved++)
    if (rehash(owner, x->moved, &h))
      place(x->nv, x->nmask, h, x->moved);
  if (x->moved == x->upto) {  /* the old table retires */
    x->old = x->v;
    x->oldsize = ((size_t)x->mask + 1) * 4;
    x->unmapped = 0;
    x->v = x->nv;
    x->mask = x->nmask;
    x->nv = NULL;
  }
}

/* One insertion's share of releasing the retired table. */
static void retire (mp_book *b, mp_index *x, size_t n) {
  if (x->oldsize < BIG) n = x->oldsize;
  if (n > x->oldsize - x->unmapped) n = x->oldsize - x->unmapped;
  table_release(b, x->old, x->oldsize, x->unmapped, n);
  x->unmapped += n;
  if (x->unmapped == x->oldsize) x->old = NULL;
}

/*
** Puts value (hash h) in the empty slot that a probe for it ended on.
** Values are numbered from 0 without gaps, though not all of them need be
** in the index (rehash tells which are); 'count' is how many are numbered
** so far, this one included. Past a load of 1/2 a table of twice the size
** is prepared, a share per insertion: cleared, then filled with the old
** values, MIGRATE per insertion, while new ones go into both; it takes
** over at a load near 9/16. Returns 0 when out of memory or past
** MP_IDXMAX values (the index is still valid).
*/
int memprobe_index_put (mp_book *b, mp_index *x, uint32_t slot, uint32_t h,
                        uint32_t value, uint32_t count, mp_rehash rehash,
                        const void *owner) {
  uint64_t cap = (uint64_t)x->mask + 1;
  if (value > MP_IDXMAX) return 0;
  x->v[slot] = MP_SLOT(h, value);
  x->n++;
  if (x->old != NULL) retire(b, x, UNMAP);
  if (x->nv != NULL) {
    int behind = (uint64_t)x->n * 4 > cap * 3;
    if (x->cleared == ((size_t)x->nmask + 1) * 4 && value >= x->upto)
      place(x->nv, x->nmask, h, value);
    grow(x, MIGRATE, count, rehash, owner);
    /* far behind (most numbered values are not indexed): catch up */
    while (behind && x->nv != NULL)
      grow(x, 0xffffffffu, count, rehash, owner);
  }
  else if ((uint64_t)x->n * 2 > cap) {
    if (cap * 2 > ((uint64_t)1 << 32)) return x->n * 4 < cap * 3;
    while (x->old != NULL) retire(b, x, x->oldsize);
    x->nv = table_new(b, (size_t)cap * 2 * 4);
    if (x->nv == NULL) return 0;
    x->nmask = (uint32_t)(cap * 2 - 1);
    x->cleared = 0;
    x->moved = 0;
    grow(x, MIGRATE, count, rehash, owner);
  }
  return 1;
}

/*
** Goes on with a growth when no insertion comes to do it (the walk is
** over): a share of MIGRATE * 8 entries or UNMAP bytes per call. Returns
** 1 when none is under way.
*/
int memprobe_index_settle (mp_book *b, mp_index *x, uint32_t count,
                           mp_rehash rehash, const void *owner) {
  if (x->old != NULL) retire(b, x, UNMAP);
  else if (x->nv != NULL) grow(x, MIGRATE * 8, count, rehash, owner);
  return x->old == NULL && x->nv == NULL;
}

void memprobe_index_free (mp_book *b, mp_index *x) {
  size_t size = ((size_t)x->mask + 1) * 4, nsize = ((size_t)x->nmask + 1) * 4;
  table_release(b, x->v, size, 0, size);
  table_release(b, x->nv, nsize, 0, nsize);
  if (x->old != NULL) retire(b, x, x->oldsize);
  memset(x, 0, sizeof(*x));
}

/* Frees x a piece at a time (a mapped table 1 MB per call), so that a
** big index goes within a budget; returns 1 when it is all gone. */
int memprobe_index_release (mp_book *b, mp_index *x) {
  size_t size = ((size_t)x->mask + 1) * 4;
  if (x->v != NULL && x->old == NULL && x->nv == NULL && size >= BIG) {
    x->old = x->v;  /* retired, as after a growth */
    x->oldsize = size;
    x->unmapped = 0;
    x->v = NULL;
  }
  if (x->old != NULL) {
    retire(b, x, UNMAP * 16);
    if (x->old != NULL) return 0;
  }
  if (x->v == NULL) x->mask = x->nmask = 0;
  memprobe_index_free(b, x);
  return 1;
}

/* Frees the last chunk of v; returns 1 when v is empty. */
int memprobe_vec_pop_chunk (mp_book *b, mp_vec *v, size_t elsize) {
  uint32_t c;
  if (v->n == 0) return 1;
  c = (v->n - 1) >> MP_CHUNKBITS;
  memprobe_book_alloc(b, v->c[c], MP_CHUNK * elsize, 0);
  v->c[c] = NULL;
  v->n = c << MP_CHUNKBITS;
  return v->n == 0;
}
