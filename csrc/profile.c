/*
** profile.c: the sampled allocation-site profiler.
**
** Sampling. The tracker's hook (tracker.c) runs a byte clock: 'left' is
** the number of bytes to the next sample, drawn from an exponential
** distribution of mean 'rate' (a Poisson process over allocated bytes,
** as Go's MemProfileRate and tcmalloc). The allocation (or realloc
** growth) of n bytes that reaches it is the sample: a block of n bytes is
** sampled with probability 1 - exp(-n/rate), whatever happened before
** (the draw is memoryless), so each sample stands for 1/that of itself
** and the sums are unbiased. Without a profile 'left' is SIZE_MAX and the
** hot path pays one compare.
**
** Attribution. Inside the allocator the VM may be half-way through an
** instruction, and under LuaJIT compiled code the Lua stack is not even
** written back, so the allocator reads no stack: it only notes the
** sample (block, bytes) in a pending list and arms a count hook with
** lua_sethook (documented as safe to call at any time, even from a
** signal handler) on the main thread and the one that started the
** profile: it cannot tell which thread runs. The hook fires at the next
** instruction the VM interprets in one of them: the instruction after
** the allocating one, or, under LuaJIT (whose hook is global), the first
** instruction after the running trace exits.
** There the stack is consistent; the hook reads it with lua_getstack and
** lua_getinfo and charges every pending sample to it, then puts back the
** host's own hook, if it had one. docs/profile.md says what this means
** for lines, coroutines and traces.
**
** Live view. A sampled block is kept in an address table (blocktab.c)
** until it is freed; a 64 Ki-entry array of counts per address bucket
** ('seen') lets the hook's free path skip the table lookup for all but
** the blocks whose bucket holds a sampled one.
**
** State. Everything lives in one malloc'ed mp_prof, never in the Lua
** heap, reached by the allocator through the tracker (t->prof) and by
** Lua through the profile's userdata. Frames and stacks are interned in
** C arrays of separately allocated records that never move and are
** freed only with the profile; the arrays of pointers to them may move
** when the hook interns a new one (in a finalizer run by an allocation),
** so readers index them afresh after each call that can allocate.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MP_PROFILE_MT  "memprobe.Profile"
#define MP_DEPTH   64     /* frames kept per stack, from the leaf */
#define MP_NAMEMAX 64
#define MP_UNKNOWN 1      /* the stack id of samples with no stack */
#define MP_ARMS    2      /* threads the hook is armed on: main, starter */
#define MP_PENDMAX 65536  /* samples waiting for the hook, at most */

/* One frame: where a function was when the hook read the stack. */
typedef struct mp_frame {
  char src[LUA_IDSIZE];   /* short_src */
  char name[MP_NAMEMAX];  /* "" when the VM does not know it */
  char what[8];           /* "Lua", "C", "main" */
  char func[MP_NAMEMAX + LUA_IDSIZE + 8];  /* what top() calls it */
  int line, linedefined;  /* currentline (-1 for C), linedefined */
  uint64_t hash;
} mp_frame;

/* An interned stack and the estimates charged to it. */
typedef struct mp_stack {
  uint64_t hash;
  double alloc_b, alloc_n, live_b, live_n;
  uint32_t n;             /* frames, leaf first */
  uint32_t f[1];          /* n frame ids (allocated to size) */
} mp_stack;

/*
** One sample: a block (or a growth of it) of a bytes, weight w; n of
** them are still allocated (a shrink gives bytes back).
*/
typedef struct mp_rec {
  double a, n, w;
  uint32_t stack;         /* 0 while pending */
  uint32_t next;          /* the block's next record, or the free list */
  int live;               /* its block is not freed */
} mp_rec;

/* Ids by hash: open addressing over id values (0 empty). */
typedef struct mp_idtab {
  uint32_t *v;
  uint32_t mask, n;
} mp_idtab;

/* A thread the hook is armed on, and the host's hook ours replaced. */
typedef struct mp_arm {
  lua_State *L;
  lua_Hook saved;
  int mask, count;
  int armed;              /* ours was set by this entry and is not off */
  int main;               /* the main thread: it never finishes */
} mp_arm;

typedef struct mp_prof {
  mp_tracker *t;          /* the tracker it samples from, or NULL */
  mp_arm arms[MP_ARMS];   /* the main thread (where known), the starter */
  int narms;
  double rate;
  uint64_t rng;
  int running;
  mp_rec *rec;            /* rec[1..nrec]; rec[0] unused */
  uint32_t nrec, reccap, freerec;
  uint32_t *pend;         /* samples waiting for the hook */
  uint32_t npend, pendcap;
  mp_btab blocks;         /* sampled live block -> its first record */
  size_t nlive;           /* live records */
  mp_frame **frames;      /* frames[1..nframes] */
  uint32_t nframes, framecap;
  mp_idtab frametab;
  mp_stack **stacks;      /* stacks[1..nstacks] */
  uint32_t nstacks, stackcap;
  mp_idtab stacktab;
  uint64_t samples, dropped;
  int busy, dead;         /* in rows(); closed meanwhile, freed at its end */
  unsigned char seen[1u << MP_SEENBITS];
} mp_prof;

static void prof_hook (lua_State *L, lua_Debug *ar);


/*
** {======================================================
** The allocator's side: no Lua, no stack
** =======================================================
*/

/* xorshift64*: the uniform draws of the byte clock. */
static double uniform (mp_prof *p) {
  uint64_t x = p->rng;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  p->rng = x;
  return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

/*
** The two transcendental functions the sampler needs, without libm (a
** host that links memprobe's objects need not add -lm). ln(x) for x in
** (0, 1]: x = m * 2^e with m in [1, 2), ln m = 2 atanh((m-1)/(m+1)) by
** its series (relative error below 1e-7, plenty for a random draw).
*/
static double ln (double x) {
  uint64_t b;
  int e;
  double m, t, t2, sum;
  memcpy(&b, &x, sizeof(b));
  e = (int)((b >> 52) & 0x7FF) - 1023;
  b = (b & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
  memcpy(&m, &b, sizeof(m));
  t = (m - 1) / (m + 1);
  t2 = t * t;
  sum = t * (1 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 *
            (1.0 / 9 + t2 * (1.0 / 11 + t2 / 13))))));
  return e * 0.69314718055994530942 + 2 * sum;
}

/* 1 - exp(-x) for x >= 0: the series near 0, 2^-k exp(-r) above. */
static double one_minus_exp (double x) {
  double term = 1, sum = 0, e;
  int i, k;
  if (x > 40)
    return 1;
  if (x < 0.5) {  /* x - x^2/2! + x^3/3! - ...: no cancellation */
    for (i = 1; i <= 16; i++) {
      term *= x / i;
      sum += (i & 1) ? term : -term;
    }
    return sum;
  }
  k = (int)(x / 0.69314718055994530942);
  x -= k * 0.69314718055994530942;  /* now in [0, ln 2) */
  for (e = 1, i = 1; i <= 18; i++) {
    term *= -x / i;
    e += term;
  }
  for (; k > 0; k--)
    e *= 0.5;
  return 1 - e;
}

/* Bytes to the next sample: exponential with mean rate, at least 1. */
static size_t draw (mp_prof *p) {
  double d = -ln(1.0 - uniform(p)) * p->rate;  /* 1 - u is in (0, 1] */
  return d < 1 ? 1 : d > 9.0e15 ? (size_t)9.0e15 : (size_t)d;
}

static void seen_inc (mp_prof *p, const void *b) {
  unsigned char *c = &p->seen[memprobe_seenslot(b)];
  if (*c < 255)
    (*c)++;
}

/* A saturated count stays: that bucket keeps taking the lookup. */
static void seen_dec (mp_prof *p, const void *b) {
  unsigned char *c = &p->seen[memprobe_seenslot(b)];
  if (*c < 255 && *c > 0)
    (*c)--;
}

/* A free record index, 0 when out of memory. */
static uint32_t new_rec (mp_prof *p) {
  uint32_t r = p->freerec;
  if (r != 0) {
    p->freerec = p->rec[r].next;
    return r;
  }
  if (p->nrec + 1 >= p->reccap) {
    uint32_t cap = p->reccap ? p->reccap * 2 : 256;
    mp_rec *v = (mp_rec *)realloc(p->rec, cap * sizeof(mp_rec));
    if (v == NULL)
      return 0;
    p->rec = v;
    p->reccap = cap;
  }
  return ++p->nrec;
}

static void free_rec (mp_prof *p, uint32_t r) {
  p->rec[r].next = p->freerec;
  p->freerec = r;
}

/* Charges record r to stack s: alloc always, live while its block is. */
static void charge (mp_prof *p, uint32_t r, uint32_t s) {
  mp_rec *x = &p->rec[r];
  mp_stack *st = p->stacks[s];
  st->alloc_b += x->a * x->w;
  st->alloc_n += x->w;
  if (x->live) {
    st->live_b += x->n * x->w;
    st->live_n += x->w;
    x->stack = s;
  }
  else
    free_rec(p, r);
}

/* A coroutine that finished or died in an error never runs again. */
static int thread_dead (lua_State *L) {
  lua_Debug ar;
  int st = lua_status(L);
  if (st == LUA_YIELD)
    return 0;
  return st != 0 || (lua_getstack(L, 0, &ar) == 0 && lua_gettop(L) == 0);
}

static void arm_one (mp_arm *a) {
  lua_Hook h = lua_gethook(a->L);
  if (h == prof_hook)  /* ours already (LuaJIT's hook is global) */
    return;
  a->saved = h;
  a->mask = (h != NULL) ? lua_gethookmask(a->L) : 0;
  a->count = (h != NULL) ? lua_gethookcount(a->L) : 0;
  a->armed = 1;
  lua_sethook(a->L, prof_hook, a->mask | LUA_MASKCOUNT, 1);
}

/*
** Arms the count hook on the main thread and the thread that started
** the profile, whichever runs next (the allocator cannot tell which one
** runs now), keeping the host's hook of each to put back when it fires.
** A finished coroutine is left out while another one can fire. Re-arms
** after a debug.sethook that replaced ours.
*/
static void arm (mp_prof *p) {
  int i, live = 0;
  for (i = 0; i < p->narms; i++)
    if (p->arms[i].main || !thread_dead(p->arms[i].L)) {
      arm_one(&p->arms[i]);
      live = 1;
    }
  if (!live)
    arm_one(&p->arms[0]);
}

/* Takes the sample: block b, n bytes of it new. */
static void take (mp_tracker *t, mp_prof *p, void *b, size_t n) {
  uint32_t r = new_rec(p);
  mp_rec *x;
  if (r == 0 || !memprobe_btab_reserve(&p->blocks)) {
    if (r != 0)
      free_rec(p, r);
    p->dropped++;
    return;
  }
  x = &p->rec[r];
  x->a = x->n = (double)n;
  x->w = 1.0 / one_minus_exp((double)n / p->rate);
  x->live = 1;
  x->stack = 0;
  x->next = memprobe_btab_get(&p->blocks, b);
  if (x->next == 0)  /* one count per sampled block, not per record */
    seen_inc(p, b);
  memprobe_btab_put(&p->blocks, b, r);
  p->nlive++;
  t->pseen = p->seen;
  p->samples++;
  if (p->npend == p->pendcap) {  /* compiled code can take many */
    uint32_t cap = p->pendcap ? p->pendcap * 2 : 64;
    uint32_t *v = (cap <= MP_PENDMAX)
      ? (uint32_t *)realloc(p->pend, cap * sizeof(uint32_t)) : NULL;
    if (v == NULL) {  /* no room to wait (or no thread runs the hook) */
      charge(p, r, MP_UNKNOWN);
      return;
    }
    p->pend = v;
    p->pendcap = cap;
  }
  p->pend[p->npend++] = r;
  arm(p);
}

/* Block b is freed: its records leave the live view. */
static void forget (mp_tracker *t, mp_prof *p, const void *b) {
  uint32_t r = memprobe_btab_get(&p->blocks, b);
  if (r == 0)
    return;
  memprobe_btab_del(&p->blocks, b);
  seen_dec(p, b);
  while (r != 0) {
    mp_rec *x = &p->rec[r];
    uint32_t next = x->next;
    x->live = 0;
    p->nlive--;
    if (x->stack != 0) {  /* a pending one is freed when it is charged */
      mp_stack *st = p->stacks[x->stack];
      st->live_b -= x->n * x->w;
      st->live_n -= x->w;
      free_rec(p, r);
    }
    r = next;
  }
  if (p->nlive == 0 && t != NULL)
    t->pseen = NULL;
}

/* Block b moved to nb (a realloc): its records go with it. */
static void move (mp_tracker *t, mp_prof *p, const void *b, void *nb) {
  uint32_t r = memprobe_btab_get(&p->blocks, b);
  if (r == 0)
    return;
  if (!memprobe_btab_reserve(&p->blocks)) {
    forget(t, p, b);  /* cannot follow it: leaves the live view */
    return;
  }
  memprobe_btab_del(&p->blocks, b);
  seen_dec(p, b);
  memprobe_btab_put(&p->blocks, nb, r);
  seen_inc(p, nb);
}

/*
** Block b shrank by d bytes: the newest of its records (the latest
** growth first) give them back, so that a block that shrinks and grows
** again (a thread's stack, at every collection) is not counted once per
** growth. A pending record gives them back too (its alloc share, a,
** stays due); one left with no bytes leaves the block and is freed when
** it is charged. A block that was not sampled (its bucket holds another
** one) has no records and changes nothing.
*/
static void shrink (mp_tracker *t, mp_prof *p, const void *b, double d) {
  uint32_t head = memprobe_btab_get(&p->blocks, b), r = head;
  while (r != 0 && d > 0) {
    mp_rec *x = &p->rec[r];
    uint32_t next = x->next;
    double g = (x->n < d) ? x->n : d;
    mp_stack *st = (x->stack != 0) ? p->stacks[x->stack] : NULL;
    x->n -= g;
    d -= g;
    if (st != NULL)
      st->live_b -= g * x->w;
    if (x->n > 0)
      break;
    x->live = 0;
    p->nlive--;
    if (st != NULL) {
      st->live_n -= x->w;
      free_rec(p, r);
    }
    r = next;
  }
  if (r == head)
    return;
  if (r == 0) {  /* every record went */
    memprobe_btab_del(&p->blocks, b);
    seen_dec(p, b);
    if (p->nlive == 0 && t != NULL)
      t->pseen = NULL;
  }
  else
    memprobe_btab_put(&p->blocks, b, r);
}

/*
** Every call the slow path forwards while a profile is attached: p is the
** result of the call (ptr, osize, nsize). Runs the byte clock on new
** bytes; moves or forgets sampled blocks.
*/
void memprobe_prof_note (mp_tracker *t, void *p, void *ptr, size_t osize,
                         size_t nsize) {
  mp_prof *pr = t->prof;
  size_t n;
  if (nsize == 0) {
    if (ptr != NULL && pr->seen[memprobe_seenslot(ptr)])
      forget(t, pr, ptr);
    return;
  }
  if (p == NULL)  /* refused or failed: nothing changed */
    return;
  n = nsize;
  if (ptr != NULL) {
    if (pr->seen[memprobe_seenslot(ptr)]) {
      if (p != ptr)
        move(t, pr, ptr, p);
      if (nsize < osize && pr->seen[memprobe_seenslot(p)])
        shrink(t, pr, p, (double)(osize - nsize));
    }
    n = (nsize > osize) ? nsize - osize : 0;
  }
  if (n == 0 || !pr->running)
    return;
  if (n < t->sample) {
    t->sample -= n;
    return;
  }
  take(t, pr, p, n);
  t->sample = draw(pr);
}

/* The hook's fast path found a sampled bucket for a freed block. */
void memprobe_prof_forget (mp_tracker *t, void *ptr) {
  if (t->prof != NULL) {
    forget(t, t->prof, ptr);
    if (t->pseen == NULL)
      memprobe_rearm(t);
  }
}

/* }====================================================== */


/*
** {======================================================
** Interning frames and stacks (in the hook: C heap only)
** =======================================================
*/

static uint64_t mix (uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  return h * 0xFF51AFD7ED558CCDull;
}

static uint64_t hash_str (uint64_t h, const char *s) {
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 0x100000001B3ull;
  return h;
}

/* Grows t to keep its load at most 1/2; hashes come from 'hashof'. */
typedef uint64_t (*mp_hashof) (const mp_prof *p, uint32_t id);

static int idtab_reserve (mp_idtab *t, const mp_prof *p, mp_hashof hashof) {
  mp_idtab nt;
  uint32_t i, cap = t->v ? t->mask + 1 : 0;
  if ((t->n + 1) * 2 <= cap)
    return 1;
  nt.mask = (cap ? cap * 2 : 64) - 1;
  nt.n = t->n;
  if ((nt.v = (uint32_t *)calloc((size_t)nt.mask + 1, sizeof(uint32_t))) == NULL)
    return 0;
  for (i = 0; i < cap; i++)
    if (t->v[i] != 0) {
      uint32_t j = (uint32_t)hashof(p, t->v[i]) & nt.mask;
      while (nt.v[j] != 0)
        j = (j + 1) & nt.mask;
      nt.v[j] = t->v[i];
    }
  free(t->v);
  *t = nt;
  return 1;
}

static uint64_t frame_hash (const mp_prof *p, uint32_t id) {
  return p->frames[id]->hash;
}

static uint64_t stack_hash (const mp_prof *p, uint32_t id) {
  return p->stacks[id]->hash;
}

static void copy (char *dst, const char *src, size_t cap) {
  size_t n = (src != NULL) ? strlen(src) : 0;
  if (n >= cap)
    n = cap - 1;
  if (n > 0)
    memcpy(dst, src, n);
  dst[n] = '\0';
}

/* Makes room for one more pointer in an array of records. */
static int grow_ptrs (void ***v, uint32_t n, uint32_t *cap) {
  if (n + 1 >= *cap) {
    uint32_t c = *cap ? *cap * 2 : 64;
    void **nv = (void **)realloc(*v, c * sizeof(void *));
    if (nv == NULL)
      return 0;
    *v = nv;
    *cap = c;
  }
  return 1;
}

/*
** The function's name as the reports show it: its name where the VM
** knows it, else "main chunk", or "<file:line>" where it was defined as
** Lua's tracebacks say. One rule for top(), folded(), pprof() and the
** flame graph.
*/
static void label (mp_frame *f) {
  if (f->name[0] != '\0')
    snprintf(f->func, sizeof(f->func), "%s", f->name);
  else if (strcmp(f->what, "main") == 0)
    snprintf(f->func, sizeof(f->func), "main chunk");
  else if (strcmp(f->what, "C") == 0)
    snprintf(f->func, sizeof(f->func), "?");
  else
    snprintf(f->func, sizeof(f->func), "<%s:%d>", f->src, f->linedefined);
}

/* The id of the frame ar describes (Sln filled in), 0 without memory. */
static uint32_t intern_frame (mp_prof *p, const lua_Debug *ar) {
  mp_frame k, *f;
  uint32_t i;
  copy(k.src, ar->short_src, sizeof(k.src));
  copy(k.name, ar->name, sizeof(k.name));
  copy(k.what, ar->what, sizeof(k.what));
  k.line = ar->currentline;
  k.linedefined = ar->linedefined;
  label(&k);
  k.hash = mix(mix(hash_str(hash_str(hash_str(0xCBF29CE484222325ull, k.src),
                                     k.name), k.what),
                   (uint64_t)(int64_t)k.line),
               (uint64_t)(int64_t)k.linedefined);
  if (p->frametab.v != NULL)
    for (i = (uint32_t)k.hash & p->frametab.mask; p->frametab.v[i] != 0;
         i = (i + 1) & p->frametab.mask) {
      f = p->frames[p->frametab.v[i]];
      if (f->hash == k.hash && f->line == k.line &&
          f->linedefined == k.linedefined && strcmp(f->src, k.src) == 0 &&
          strcmp(f->name, k.name) == 0 && strcmp(f->what, k.what) == 0)
        return p->frametab.v[i];
    }
  if (!grow_ptrs((void ***)&p->frames, p->nframes, &p->framecap) ||
      !idtab_reserve(&p->frametab, p, frame_hash) ||
      (f = (mp_frame *)malloc(sizeof(mp_frame))) == NULL)
    return 0;
  *f = k;
  p->frames[++p->nframes] = f;
  for (i = (uint32_t)k.hash & p->frametab.mask; p->frametab.v[i] != 0;
       i = (i + 1) & p->frametab.mask) ;
  p->frametab.v[i] = p->nframes;
  p->frametab.n++;
  return p->nframes;
}

/* The id of the stack of n frames ids[], 0 without memory. */
static uint32_t intern_ids (mp_prof *p, const uint32_t *ids, uint32_t n) {
  uint64_t h = 0x84222325CBF29CE4ull;
  mp_stack *s;
  uint32_t i;
  for (i = 0; i < n; i++)
    h = mix(h, ids[i]);
  if (p->stacktab.v != NULL)
    for (i = (uint32_t)h & p->stacktab.mask; p->stacktab.v[i] != 0;
         i = (i + 1) & p->stacktab.mask) {
      s = p->stacks[p->stacktab.v[i]];
      if (s->hash == h && s->n == n &&
          (n == 0 || memcmp(s->f, ids, n * sizeof(uint32_t)) == 0))
        return p->stacktab.v[i];
    }
  if (!grow_ptrs((void ***)&p->stacks, p->nstacks, &p->stackcap) ||
      !idtab_reserve(&p->stacktab, p, stack_hash) ||
      (s = (mp_stack *)calloc(1, sizeof(mp_stack) +
                                 n * sizeof(uint32_t))) == NULL)
    return 0;
  s->hash = h;
  s->n = n;
  if (n > 0)
    memcpy(s->f, ids, n * sizeof(uint32_t));
  p->stacks[++p->nstacks] = s;
  for (i = (uint32_t)h & p->stacktab.mask; p->stacktab.v[i] != 0;
       i = (i + 1) & p->stacktab.mask) ;
  p->stacktab.v[i] = p->nstacks;
  p->stacktab.n++;
  return p->nstacks;
}

/* The stack of L from 'level' up, interned; MP_UNKNOWN without memory. */
static uint32_t intern_stack (lua_State *L, mp_prof *p, int level) {
  uint32_t ids[MP_DEPTH], n = 0, id;
  lua_Debug ar;
  while (n < MP_DEPTH && lua_getstack(L, level + (int)n, &ar)) {
    if (!lua_getinfo(L, "Sln", &ar))
      break;
    if ((id = intern_frame(p, &ar)) == 0)
      return MP_UNKNOWN;
    ids[n++] = id;
  }
  id = intern_ids(p, ids, n);
  return id != 0 ? id : MP_UNKNOWN;
}

/* Charges the pending samples to the stack of L from 'level' up. */
static void attribute (lua_State *L, mp_prof *p, int level) {
  uint32_t i, s;
  if (p->npend == 0)
    return;
  s = intern_stack(L, p, level);
  for (i = 0; i < p->npend; i++)
    charge(p, p->pend[i], s);
  p->npend = 0;
}

/* Outside a safe point (detach): pending samples go without a stack. */
static void attribute_unknown (mp_prof *p) {
  uint32_t i;
  for (i = 0; i < p->npend; i++)
    charge(p, p->pend[i], MP_UNKNOWN);
  p->npend = 0;
}

static int event_mask (int event) {
  switch (event) {
    case LUA_HOOKCALL: return LUA_MASKCALL;
    case LUA_HOOKRET: return LUA_MASKRET;
    case LUA_HOOKLINE: return LUA_MASKLINE;
    case LUA_HOOKCOUNT: return LUA_MASKCOUNT;
    default:  /* tail call (5.2+) or tail return (5.1) */
      return (LUA_VERSION_NUM >= 502) ? LUA_MASKCALL : LUA_MASKRET;
  }
}

/* Takes our hook off every thread this profile set it on. */
static void disarm (mp_prof *p) {
  int i;
  for (i = 0; i < p->narms; i++) {
    mp_arm *a = &p->arms[i];
    if (a->armed && lua_gethook(a->L) == prof_hook)
      lua_sethook(a->L, a->saved, a->mask, a->count);
    a->armed = 0;
  }
}

/*
** The safe point. Puts the host's hooks back first (so that an error in
** it, or a hook it sets, is its own), charges the pending samples to
** the stack of the thread it fires in, as it is now, and passes the
** event on when the host's hook asked for it. A coroutine made while
** ours was armed inherited it: it runs here too, and is given the main
** thread's hook back.
*/
static void prof_hook (lua_State *L, lua_Debug *ar) {
  mp_tracker *t = memprobe_current(L);
  mp_prof *p = (t != NULL) ? t->prof : NULL;
  lua_Hook h = NULL;
  int i, mask = 0, count = 0;
  if (p != NULL) {
    const mp_arm *a = &p->arms[0];
    for (i = 0; i < p->narms; i++)
      if (p->arms[i].L == L && p->arms[i].armed)
        a = &p->arms[i];
    h = a->saved;
    mask = a->mask;
    count = a->count;
  }
  lua_sethook(L, h, mask, count);
  if (p != NULL) {
    disarm(p);
    attribute(L, p, 0);
  }
  if (h != NULL && (mask & event_mask(ar->event)))
    h(L, ar);
}

/*
** The profile stops sampling from t for good: the tracker is retired
** (untrack, lua_close) or the profile goes. Its figures stay readable;
** the live view no longer follows frees.
*/
void memprobe_prof_detach (mp_tracker *t) {
  mp_prof *p = t->prof;
  if (p == NULL)
    return;
  disarm(p);
  attribute_unknown(p);
  p->running = 0;
  p->t = NULL;
  t->prof = NULL;
  t->pseen = NULL;
  memprobe_rearm(t);
  t->sample = SIZE_MAX;
  memprobe_rearm(t);
}

/* }====================================================== */


/*
** {======================================================
** Life cycle
** =======================================================
*/

typedef struct mp_phandle {
  mp_prof *p;             /* NULL once freed */
} mp_phandle;

static void free_prof (mp_prof *p) {
  uint32_t i;
  for (i = 1; i <= p->nframes; i++)
    free(p->frames[i]);
  for (i = 1; i <= p->nstacks; i++)
    free(p->stacks[i]);
  free(p->frames);
  free(p->stacks);
  free(p->frametab.v);
  free(p->stacktab.v);
  free(p->rec);
  free(p->pend);
  memprobe_btab_free(&p->blocks);
  free(p);
}

static mp_prof *check_prof (lua_State *L) {
  mp_phandle *h = (mp_phandle *)luaL_checkudata(L, 1, MP_PROFILE_MT);
  if (h->p == NULL)
    luaL_error(L, "profile was freed");
  return h->p;
}

/* Forgets every sample; frames and stacks stay interned, at zero. */
static void clear (mp_prof *p) {
  uint32_t i;
  p->nrec = p->freerec = 0;
  p->npend = 0;
  p->nlive = 0;
  memprobe_btab_free(&p->blocks);
  memset(p->seen, 0, sizeof(p->seen));
  for (i = 1; i <= p->nstacks; i++) {
    mp_stack *s = p->stacks[i];
    s->alloc_b = s->alloc_n = s->live_b = s->live_n = 0;
  }
  p->samples = p->dropped = 0;
  if (p->t != NULL)
    p->t->pseen = NULL;
}

/*
** The main thread, NULL when unknown: 5.1's API has no way to it from a
** coroutine, so that memprobe notes it in the registry when it is opened
** (or a profile started) there.
*/
#define MP_MAIN_KEY "memprobe.mainthread"
static lua_State *main_thread (lua_State *L) {
  lua_State *m;
#if LUA_VERSION_NUM >= 502
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
#else
  if (lua_pushthread(L)) {
    lua_setfield(L, LUA_REGISTRYINDEX, MP_MAIN_KEY);
    return L;
  }
  lua_pop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, MP_MAIN_KEY);
#endif
  m = lua_tothread(L, -1);
  lua_pop(L, 1);
  return m;
}

/*
** core.profile(rate[, seed]): starts sampling the running state, tracking
** it first if needed. One profile samples a state at a time: the one
** before is stopped and detached (its figures stay, frozen).
*/
static int l_profile (lua_State *L) {
  lua_Number rate = luaL_checknumber(L, 1);
  lua_Number seed = luaL_optnumber(L, 2, 0);
  mp_phandle *h;
  mp_tracker *t;
  mp_prof *p;
  lua_State *m;
  luaL_argcheck(L, rate >= 1 && rate < 9.0e15, 1,
                "rate must be 1 byte or more");
  h = (mp_phandle *)mp_newuserdata(L, sizeof(mp_phandle));
  h->p = NULL;
  luaL_getmetatable(L, MP_PROFILE_MT);
  lua_setmetatable(L, -2);
  lua_createtable(L, 1, 0);  /* user value: keeps the starter alive */
  lua_pushthread(L);
  lua_rawseti(L, -2, 1);
  mp_setuv(L, -2);
  m = main_thread(L);
  t = memprobe_track(L);
  if ((p = (mp_prof *)calloc(1, sizeof(mp_prof))) == NULL)
    return luaL_error(L, "not enough memory");
  p->rate = rate;
  p->rng = (seed != 0) ? (uint64_t)seed
                       : (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)p;
  p->rng = mix(p->rng, 0x2545F4914F6CDD1Dull) | 1;
  if (m != NULL) {
    p->arms[p->narms].L = m;
    p->arms[p->narms++].main = 1;
  }
  if (L != m)
    p->arms[p->narms++].L = L;
  h->p = p;
  if (intern_ids(p, NULL, 0) != MP_UNKNOWN)
    return luaL_error(L, "not enough memory");
  /* nothing below runs Lua: the tracker is still t */
  if (t->prof != NULL)  /* the profile before: its samples so far stay */
    attribute(L, t->prof, 1);
  memprobe_prof_detach(t);
  p->t = t;
  p->running = 1;
  t->prof = p;
  memprobe_rearm(t);
  t->sample = draw(p);
  memprobe_rearm(t);
  return 1;
}

/*
** Pending samples are charged to the caller of the method. On 5.1 a
** profile started in a coroutine, with memprobe opened in one, learns the
** main thread when a method is called there.
*/
static void settle (lua_State *L, mp_prof *p) {
  attribute(L, p, 1);
#if LUA_VERSION_NUM < 502
  if (p->narms < MP_ARMS && !p->arms[0].main && p->arms[0].L != L) {
    int is_main = lua_pushthread(L);  /* allocates nothing */
    lua_pop(L, 1);
    if (is_main) {
      p->arms[p->narms].L = L;
      p->arms[p->narms++].main = 1;
    }
  }
#endif
}

/***
Profile methods are in `memprobe.profile` (lua/memprobe/profile.lua);
these are the C ones it calls.
@type Profile
*/

/* p:stop(): no more samples; the live view still follows frees. */
static int l_stop (lua_State *L) {
  mp_prof *p = check_prof(L);
  settle(L, p);
  p->running = 0;
  if (p->t != NULL) {
    memprobe_rearm(p->t);
    p->t->sample = SIZE_MAX;
    memprobe_rearm(p->t);
  }
  disarm(p);
  return 0;
}

/* p:reset(): forgets every sample; a running profile goes on. */
static int l_reset (lua_State *L) {
  mp_prof *p = check_prof(L);
  disarm(p);
  clear(p);
  if (p->t != NULL && p->running) {
    memprobe_rearm(p->t);
    p->t->sample = draw(p);
  }
  if (p->t != NULL)
    memprobe_rearm(p->t);
  return 0;
}

/* p:info(): { rate, samples, dropped, pending, live_blocks, running,
** attached } (copied before the table is made). */
static int l_info (lua_State *L) {
  mp_prof *p = check_prof(L);
  double rate;
  uint64_t v[4];
  int running, attached;
  settle(L, p);
  rate = p->rate;
  v[0] = (uint64_t)p->samples;
  v[1] = (uint64_t)p->dropped;
  v[2] = (uint64_t)p->npend;
  v[3] = (uint64_t)p->nlive;
  running = p->running;
  attached = p->t != NULL;
  lua_createtable(L, 0, 7);
  lua_pushnumber(L, (lua_Number)rate);
  lua_setfield(L, -2, "rate");
  mp_setint(L, "samples", v[0]);
  mp_setint(L, "dropped", v[1]);
  mp_setint(L, "pending", v[2]);
  mp_setint(L, "live_blocks", v[3]);
  lua_pushboolean(L, running);
  lua_setfield(L, -2, "running");
  lua_pushboolean(L, attached);
  lua_setfield(L, -2, "attached");
  return 1;
}

/*
** p:rows(): { stacks = { {alloc_b, alloc_n, live_b, live_n, f1, ...} },
** frames = { [id] = {src, line, name, what, linedefined} } }, frame ids
** leaf first; stacks with nothing charged are left out. Any allocation
** here can run a finalizer that samples and interns: the arrays are
** indexed afresh after each one, and counts read before. A finalizer
** that closes the profile meanwhile leaves its memory to the end of
** rows() (an error raised in between leaves it to the process).
*/
static int l_rows (lua_State *L) {
  mp_prof *p = check_prof(L);
  uint32_t i, j, n, k = 0;
  p->busy = 1;
  settle(L, p);
  lua_createtable(L, 0, 2);
  lua_newtable(L);
  for (i = 1; i <= p->nstacks; i++) {
    mp_stack *s = p->stacks[i];
    double v[4];
    v[0] = s->alloc_b; v[1] = s->alloc_n; v[2] = s->live_b; v[3] = s->live_n;
    n = s->n;
    if (v[1] <= 0)
      continue;
    lua_createtable(L, (int)n + 4, 0);
    for (j = 0; j < 4; j++) {
      lua_pushnumber(L, (lua_Number)v[j]);
      lua_rawseti(L, -2, (int)j + 1);
    }
    for (j = 0; j < n; j++) {
      lua_pushnumber(L, (lua_Number)p->stacks[i]->f[j]);
      lua_rawseti(L, -2, (int)j + 5);
    }
    lua_rawseti(L, -2, (int)++k);
  }
  lua_setfield(L, -2, "stacks");
  lua_newtable(L);
  for (i = 1; i <= p->nframes; i++) {
    const mp_frame *f = p->frames[i];  /* never moves, never freed here */
    lua_createtable(L, 6, 0);
    lua_pushstring(L, f->func);
    lua_rawseti(L, -2, 6);
    lua_pushstring(L, f->src);
    lua_rawseti(L, -2, 1);
    lua_pushnumber(L, (lua_Number)f->line);
    lua_rawseti(L, -2, 2);
    lua_pushstring(L, f->name);
    lua_rawseti(L, -2, 3);
    lua_pushstring(L, f->what);
    lua_rawseti(L, -2, 4);
    lua_pushnumber(L, (lua_Number)f->linedefined);
    lua_rawseti(L, -2, 5);
    lua_rawseti(L, -2, (int)i);
  }
  lua_setfield(L, -2, "frames");
  p->busy = 0;
  if (p->dead)
    free_prof(p);
  return 1;
}

/* __gc and __close: detaches and frees; idempotent. */
static int l_gc (lua_State *L) {
  mp_phandle *h = (mp_phandle *)luaL_checkudata(L, 1, MP_PROFILE_MT);
  mp_prof *p = h->p;
  if (p == NULL)
    return 0;
  if (p->t != NULL)
    memprobe_prof_detach(p->t);
  else
    disarm(p);
  h->p = NULL;
  if (p->busy)
    p->dead = 1;  /* rows() still reads it: it frees it at its end */
  else
    free_prof(p);
  return 0;
}

static int l_tostring (lua_State *L) {
  mp_phandle *h = (mp_phandle *)luaL_checkudata(L, 1, MP_PROFILE_MT);
  if (h->p == NULL)
    lua_pushliteral(L, "memprobe.Profile (freed)");
  else
    lua_pushfstring(L, "memprobe.Profile (%s, %d samples)",
                    h->p->running ? "running" : "stopped",
                    (int)h->p->samples);
  return 1;
}

/* }====================================================== */


/*
** {======================================================
** pprof: profile.proto, gzip'd (pprof.c encodes and writes)
** =======================================================
*/

/* p:pprof(path, kind): kind "live" or "alloc" is the default view. */
static int l_pprof (lua_State *L) {
  mp_prof *p = check_prof(L);
  size_t plen;
  const char *path = luaL_checklstring(L, 2, &plen);
  const char *kind = luaL_optstring(L, 3, "live");
  mp_pp_sample *v;
  mp_pp_frame *fr;
  uint32_t i, ns = 0, nf = 0;
  int live = strcmp(kind, "live") == 0;
  int err;
  luaL_argcheck(L, plen > 0 && strlen(path) == plen, 2, "path expected");
  luaL_argcheck(L, live || strcmp(kind, "alloc") == 0, 3,
                "kind must be \"live\" or \"alloc\"");
  settle(L, p);
  /* From here to the write nothing calls Lua. */
  v = (mp_pp_sample *)calloc((size_t)p->nstacks + 1, sizeof(mp_pp_sample));
  fr = (mp_pp_frame *)calloc((size_t)p->nframes + 1, sizeof(mp_pp_frame));
  if (v == NULL || fr == NULL) {
    free(v);
    free(fr);
    return luaL_error(L, "not enough memory");
  }
  for (i = 1; i <= p->nframes; i++) {
    const mp_frame *f = p->frames[i];
    fr[nf].src = f->src;
    fr[nf].func = f->func;
    fr[nf].line = f->line;
    fr[nf].linedefined = f->linedefined;
    nf++;
  }
  for (i = 1; i <= p->nstacks; i++) {
    const mp_stack *s = p->stacks[i];
    if (s->alloc_n <= 0)
      continue;
    v[ns].v[0] = (int64_t)(s->alloc_n + 0.5);
    v[ns].v[1] = (int64_t)(s->alloc_b + 0.5);
    v[ns].v[2] = s->live_n > 0.5 ? (int64_t)(s->live_n + 0.5) : 0;
    v[ns].v[3] = s->live_b > 0.5 ? (int64_t)(s->live_b + 0.5) : 0;
    v[ns].n = s->n;
    v[ns].f = s->f;
    ns++;
  }
  err = memprobe_pprof_write(path, v, ns, fr, nf, (int64_t)p->rate,
                             live ? 3 : 1);
  free(v);
  free(fr);
  if (err == ENOMEM)
    return luaL_error(L, "not enough memory");
  if (err != 0)
    return memprobe_result(L, err, "%s: %s", path,
                           err == EINVAL ? "not a regular file" : strerror(err));
  lua_pushboolean(L, 1);
  return 1;
}

/* }====================================================== */


static const luaL_Reg funcs[] = {
  {"profile",    l_profile},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"info",       l_info},
  {"pprof",      l_pprof},
  {"reset",      l_reset},
  {"rows",       l_rows},
  {"stop",       l_stop},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__close",    l_gc},
  {"__gc",       l_gc},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

void memprobe_open_profile (lua_State *L, mp_ctx *c) {
  (void)c;
  (void)main_thread(L);  /* 5.1: notes it if it is L */
  if (luaL_newmetatable(L, MP_PROFILE_MT)) {
    mp_setfuncs(L, metamethods, 0);
    lua_newtable(L);
    mp_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, MP_PROFILE_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  memprobe_register(L, funcs);
}
