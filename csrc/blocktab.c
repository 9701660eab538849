/*
** blocktab.c: block address -> tag, for the ledger. Open addressing with
** linear probing and backward-shift deletion (no tombstones), in memory
** from malloc: the table must not live in the Lua heap it describes, and
** it is called from inside the allocator hook, where Lua cannot be used.
*/
#include "internal.h"

#include <stdlib.h>

#define MINCAP  256

/* Fibonacci hashing of the address; blocks are 8- or 16-byte aligned. */
static size_t home (const mp_btab *b, uintptr_t key) {
  uint64_t h = (uint64_t)(key >> 3) * 0x9E3779B97F4A7C15ull;
  return (size_t)(h ^ (h >> 29)) & b->mask;
}

static void insert (mp_btab *b, uintptr_t key, unsigned tag) {
  size_t i = home(b, key);
  while (b->v[i].key != 0 && b->v[i].key != key)
    i = (i + 1) & b->mask;
  if (b->v[i].key == 0)
    b->n++;
  b->v[i].key = key;
  b->v[i].tag = tag;
}

/*
** Makes room for one more entry, keeping the load at most 1/2. Returns 0
** when malloc fails; the table is then unchanged and still valid.
*/
int memprobe_btab_reserve (mp_btab *b) {
  mp_btab nb;
  size_t i, cap = (b->v == NULL) ? 0 : b->mask + 1;
  if ((b->n + 1) * 2 <= cap)
    return 1;
  nb.mask = (cap == 0 ? MINCAP : cap * 2) - 1;
  nb.n = 0;
  nb.v = (mp_blk *)calloc(nb.mask + 1, sizeof(mp_blk));
  if (nb.v == NULL)
    return 0;
  for (i = 0; i < cap; i++)
    if (b->v[i].key != 0)
      insert(&nb, b->v[i].key, b->v[i].tag);
  free(b->v);
  *b = nb;
  return 1;
}

/* The caller has reserved room (or has just deleted an entry). */
void memprobe_btab_put (mp_btab *b, const void *p, unsigned tag) {
  insert(b, (uintptr_t)p, tag);
}

unsigned memprobe_btab_get (const mp_btab *b, const void *p) {
  uintptr_t key = (uintptr_t)p;
  size_t i;
  if (b->n == 0)
    return 0;
  for (i = home(b, key); b->v[i].key != 0; i = (i + 1) & b->mask)
    if (b->v[i].key == key)
      return b->v[i].tag;
  return 0;
}

/*
** Removes p if present. Later entries of the probe run move back into the
** hole when their home slot is not cyclically between the hole and them,
** so that lookups never need tombstones.
*/
void memprobe_btab_del (mp_btab *b, const void *p) {
  uintptr_t key = (uintptr_t)p;
  size_t i, j, k;
  if (b->n == 0)
    return;
  for (i = home(b, key); b->v[i].key != key; i = (i + 1) & b->mask)
    if (b->v[i].key == 0)
      return;
  for (j = i;;) {
    j = (j + 1) & b->mask;
    if (b->v[j].key == 0)
      break;
    k = home(b, b->v[j].key);
    if ((j > i) ? (k <= i || k > j) : (k <= i && k > j)) {
      b->v[i] = b->v[j];
      i = j;
    }
  }
  b->v[i].key = 0;
  b->n--;
}

void memprobe_btab_free (mp_btab *b) {
  free(b->v);
  b->v = NULL;
  b->mask = 0;
  b->n = 0;
}
