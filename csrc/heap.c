/*
** heap.c: a walk over the Lua heap through the public API only, the
** census, per-root ownership and snapshot diffs built on it.
**
** The walk is breadth-first, so the first referrer of an object lies on a
** shortest path from the roots. Its bookkeeping (one 32-byte record per
** object, an open-addressing index, an arena of edge names) is malloc'ed
** outside the Lua heap and owned by a "memprobe.Snapshot" userdata, whose
** __gc frees it: an error raised anywhere in the walk leaks nothing. Only
** the queue of objects waiting to be expanded is a Lua table, because the
** public API cannot turn a pointer back into a value; its slots are
** cleared as the walk proceeds.
**
** Sizes come from a model that memprobe.heap measured on the running VM
** (see docs/heap.md); nothing here knows a struct layout.
*/

/***
@submodule memprobe
*/
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define SNAP_MT   "memprobe.Snapshot"
#define NCAL      24        /* calibrated powers of two, arrays and hashes */
#define NAMEMAX   60        /* longest edge name kept */
#define EPHPASSES 8         /* re-expansions of ephemeron tables */
#define NOWN      8         /* functions whose frames are the walk's own */
#define STEP_KEY  "memprobe.Snapshot.step"  /* registry: step_body */

/* Types beyond lua.h: LuaJIT's cdata, and two parts of a function. */
enum { T_CDATA = 10, T_PROTO = 11, T_UPVAL = 12, T_NTYPES = 13 };

/* How an object was first reached from its parent. */
enum { E_ROOT, E_FIELD, E_INDEX, E_NUMKEY, E_OBJKEY, E_KEY, E_MT, E_UPVAL,
       E_UPIDX, E_UVALUE, E_ENV, E_LOCAL, E_FRAME, E_STACK, E_PROTO };

/* Record flags. */
enum { F_ROOT = 1, F_IGNORE = 2, F_SIZED = 4, F_NESTED = 8 };

#define SHARED  (-1)        /* label of an object reached from two roots */

typedef struct hobj {
  const void *p;      /* identity: lua_topointer, string contents */
  uint32_t parent;    /* first referrer + 1; 0 for roots */
  uint32_t size;      /* estimated bytes */
  uint32_t aux;       /* tables: entries; userdata: type name; closures:
                         proto + 1; protos: closures */
  uint32_t name;      /* edge argument: name offset + 1, index, slot */
  int32_t label;      /* root id, SHARED, or 0 */
  uint8_t type, edge, flags, pad;
} hobj;

typedef struct pinfo {
  const void *src;
  int line, last;
  uint32_t obj;
} pinfo;

typedef struct model {
  double tbase, arr[NCAL], hash[NCAL];
  int narr, nhash;
  double str[65], slong, sfirst, salign;
  double lcl, lcl_up, upval, ccl0, ccl, ccl_up, ud, udb, ud_uv, thread, cdata;
  double pbase, pbyte;
} model;

typedef struct snap {
  mp_ctx *ctx;
  size_t bytes;             /* C bytes held, also counted in ctx */
  hobj *obj;
  uint32_t n, cap;
  uint32_t *index;          /* record + 1, open addressing */
  uint32_t icap;
  pinfo *proto;
  uint32_t np, pcap;
  uint32_t *pindex;
  uint32_t picap;
  char *arena;              /* edge names, NUL-terminated */
  uint32_t alen, acap;
  uint32_t *nindex;         /* arena offset + 1, by content */
  uint32_t nicap, nnames;
  /* the queue: values in the user value table W, the rest here */
  uint32_t *qidx;
  int32_t *qlabel;
  uint32_t qhead, qtail, qcap;
  /* expansion of the head of the queue, which may span several steps */
  int started;
  uint32_t nums[32], nint, nent;
  /* registry tables by name, the fallback name of a userdata's type */
  const void **regp;
  uint32_t *regname;
  uint32_t nreg;
  model m;
  uint32_t max_objects;
  int truncated, done, closed, in_next, mode, ephpass, nroots;
  uint32_t ephseen;         /* objects when the ephemerons were requeued */
  int32_t curlabel;         /* second pass of modules(): the row walked */
  uint16_t *seen;           /* second pass: last row that reached each */
  double *rowshared;
  /* statistics */
  double units, steps, maxunits, restarts;
  /* path(): referrers of one object */
  const void *target;
  uint32_t ref[16], refedge[16], refname[16];
  int nref;
  /* frames of these functions on the walking thread are not roots */
  const void *own[NOWN];
  int nown;
  int failafter;            /* for specs: raise after this many records */
} snap;

typedef struct walker {
  lua_State *L;
  snap *s;
  int ud, W;                /* stack indices of the snapshot and queue */
  double units, limit, deadline;
} walker;


/*
** {======================================================
** Bookkeeping outside the Lua heap
** =======================================================
*/

static void *xrealloc (lua_State *L, snap *s, void *p, size_t osz,
                       size_t nsz) {
  void *q;
  if (nsz == 0) {
    free(p);
    s->ctx->heap_bytes -= osz;
    s->bytes -= osz;
    return NULL;
  }
  q = realloc(p, nsz);
  if (q == NULL)
    luaL_error(L, "not enough memory for the heap walk");
  s->ctx->heap_bytes += nsz - osz;
  s->bytes += nsz - osz;
  return q;
}

/* Frees every buffer; idempotent (the __gc and close()). */
static void snap_free (snap *s) {
  mp_ctx *c = s->ctx;
  if (c == NULL) return;
  free(s->obj); free(s->index); free(s->proto); free(s->pindex);
  free(s->arena); free(s->nindex); free(s->qidx); free(s->qlabel);
  free(s->regp); free(s->regname); free(s->seen); free(s->rowshared);
  c->heap_bytes -= s->bytes;
  memset(s, 0, sizeof(*s));
  s->closed = 1;
}

static uint32_t mix (uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (uint32_t)x;
}

static uint32_t hashptr (const void *p) {
  return mix((uint64_t)(uintptr_t)p);
}

/* Record index of identity p, or -1. */
static int64_t lookup (const snap *s, const void *p) {
  uint32_t mask = s->icap - 1, i;
  if (s->icap == 0) return -1;
  for (i = hashptr(p) & mask; s->index[i] != 0; i = (i + 1) & mask)
    if (s->obj[s->index[i] - 1].p == p)
      return (int64_t)s->index[i] - 1;
  return -1;
}

static void index_put (uint32_t *index, uint32_t cap, const void *p,
                       uint32_t rec) {
  uint32_t mask = cap - 1, i;
  for (i = hashptr(p) & mask; index[i] != 0; i = (i + 1) & mask) ;
  index[i] = rec + 1;
}

/* A new record; 'indexed' puts it in the identity index. */
static uint32_t newrec (lua_State *L, snap *s, const void *p, int type,
                        int indexed) {
  hobj *o;
  if (s->n == s->cap) {
    uint32_t ncap = s->cap ? s->cap * 2 : 1024;
    s->obj = (hobj *)xrealloc(L, s, s->obj, (size_t)s->cap * sizeof(hobj),
                              (size_t)ncap * sizeof(hobj));
    s->cap = ncap;
  }
  if (indexed && (s->n + 1) * 2 > s->icap) {  /* load factor 1/2 */
    uint32_t ncap = s->icap ? s->icap * 2 : 2048, i;
    uint32_t *ni = (uint32_t *)xrealloc(L, s, NULL, 0, (size_t)ncap * 4);
    memset(ni, 0, (size_t)ncap * 4);
    for (i = 0; i < s->icap; i++)
      if (s->index[i] != 0)
        index_put(ni, ncap, s->obj[s->index[i] - 1].p, s->index[i] - 1);
    xrealloc(L, s, s->index, (size_t)s->icap * 4, 0);
    s->index = ni;
    s->icap = ncap;
  }
  o = &s->obj[s->n];
  memset(o, 0, sizeof(*o));
  o->p = p;
  o->type = (uint8_t)type;
  if (indexed) index_put(s->index, s->icap, p, s->n);
  return s->n++;
}

/* Interns an edge name; returns its arena offset + 1. */
static uint32_t intern (lua_State *L, snap *s, const char *str, size_t len) {
  uint32_t h = 2166136261u, mask, i;
  size_t k;
  if (len > NAMEMAX) len = NAMEMAX;
  for (k = 0; k < len; k++) h = (h ^ (unsigned char)str[k]) * 16777619u;
  if ((s->nnames + 1) * 2 > s->nicap) {  /* load factor 1/2: rebuild */
    uint32_t ncap = s->nicap ? s->nicap * 2 : 256, off;
    uint32_t *ni = (uint32_t *)xrealloc(L, s, NULL, 0, (size_t)ncap * 4);
    memset(ni, 0, (size_t)ncap * 4);
    for (off = 0; off < s->alen; off += (uint32_t)strlen(s->arena + off) + 1) {
      const char *a = s->arena + off;
      uint32_t g = 2166136261u;
      for (; *a; a++) g = (g ^ (unsigned char)*a) * 16777619u;
      for (i = g & (ncap - 1); ni[i] != 0; i = (i + 1) & (ncap - 1)) ;
      ni[i] = off + 1;
    }
    xrealloc(L, s, s->nindex, (size_t)s->nicap * 4, 0);
    s->nindex = ni;
    s->nicap = ncap;
  }
  mask = s->nicap - 1;
  for (i = h & mask; s->nindex[i] != 0; i = (i + 1) & mask) {
    const char *a = s->arena + s->nindex[i] - 1;
    if (strncmp(a, str, len) == 0 && a[len] == '\0')
      return s->nindex[i];
  }
  while (s->alen + len + 1 > s->acap) {
    uint32_t ncap = s->acap ? s->acap * 2 : 4096;
    s->arena = (char *)xrealloc(L, s, s->arena, s->acap, ncap);
    s->acap = ncap;
  }
  memcpy(s->arena + s->alen, str, len);
  s->arena[s->alen + len] = '\0';
  s->nindex[i] = s->alen + 1;
  s->alen += (uint32_t)len + 1;
  s->nnames++;
  return s->nindex[i];
}

static const char *name_of (const snap *s, uint32_t off) {
  return off ? s->arena + off - 1 : "?";
}

/* }====================================================== */


/*
** {======================================================
** The size model
** =======================================================
*/

static double getnum (lua_State *L, int t, const char *k) {
  double v;
  lua_getfield(L, t, k);
  v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static int getlist (lua_State *L, int t, const char *k, double *v) {
  int n = 0;
  lua_getfield(L, t, k);
  luaL_argcheck(L, lua_istable(L, -1), 1, "model lacks a size list");
  while (n < NCAL) {
    lua_rawgeti(L, -1, n + 1);
    if (!lua_isnumber(L, -1)) { lua_pop(L, 1); break; }
    v[n++] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  luaL_argcheck(L, n >= 2, 1, "model size list too short");
  return n;
}

/* Reads the model that memprobe.heap calibrated (a table at index t). */
static void readmodel (lua_State *L, int t, model *m) {
  int i;
  luaL_checktype(L, t, LUA_TTABLE);
  m->tbase = getnum(L, t, "table");
  m->narr = getlist(L, t, "array", m->arr);
  m->nhash = getlist(L, t, "hash", m->hash);
  lua_getfield(L, t, "string");
  luaL_argcheck(L, lua_istable(L, -1), 1, "model lacks string sizes");
  for (i = 0; i <= 64; i++) {
    lua_rawgeti(L, -1, i + 1);
    m->str[i] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  m->slong = getnum(L, t, "string_long");
  m->sfirst = getnum(L, t, "string_first");
  m->salign = getnum(L, t, "string_align");
  if (m->salign < 1) m->salign = 1;
  m->lcl = getnum(L, t, "lclosure");
  m->lcl_up = getnum(L, t, "lclosure_up");
  m->upval = getnum(L, t, "upvalue");
  m->ccl0 = getnum(L, t, "cclosure0");
  m->ccl = getnum(L, t, "cclosure");
  m->ccl_up = getnum(L, t, "cclosure_up");
  m->ud = getnum(L, t, "userdata");
  m->ud_uv = getnum(L, t, "userdata_uv");
  m->udb = getnum(L, t, "userdata_uvbase");
  m->thread = getnum(L, t, "thread");
  m->cdata = getnum(L, t, "cdata");
  m->pbase = getnum(L, t, "proto_base");
  m->pbyte = getnum(L, t, "proto_byte");
}

/* Bytes of a table part of 2^k slots (size = 2^k, or 0); linear past
** the calibrated sizes. */
static double part (const double *v, int n, uint32_t size) {
  int k = 0;
  if (size == 0) return 0;
  while ((1u << k) < size) k++;
  if (k < n) return v[k];
  return v[n - 1] + (v[n - 1] - v[n - 2]) / (double)(1u << (n - 2)) *
         ((double)size - (double)(1u << (n - 1)));
}

static uint32_t ceillog2 (uint32_t x) {
  uint32_t k = 0;
  while (k < 32 && ((uint64_t)1 << k) < x) k++;
  return k;
}

/*
** Array size after the VM's last rehash, from how many integer keys fall
** in each slice (2^(i-1), 2^i]: the largest power of two n such that more
** than n/2 of the slots 1..n are in use. Every runtime rehashes this way;
** the rest of the keys go to the hash part, rounded up to a power of two.
*/
static double tablesize (const model *m, const uint32_t *nums, uint32_t nint,
                         uint32_t nent) {
  uint32_t a = 0, na = 0, optimal = 0, nh;
  uint64_t twotoi = 1;
  int i;
  for (i = 0; i < 32 && twotoi / 2 < nint; i++, twotoi *= 2) {
    if (nums[i] > 0) {
      a += nums[i];
      if (a > twotoi / 2) { optimal = (uint32_t)twotoi; na = a; }
    }
  }
  nh = nent - na;
  return m->tbase + part(m->arr, m->narr, optimal) +
         part(m->hash, m->nhash, nh ? 1u << ceillog2(nh) : 0);
}

/* Up to 64 bytes: measured; past: the size at 1024 plus whole padding
** steps, which 'first' bytes past 1024 start. */
static double stringsize (const model *m, size_t len) {
  double d;
  if (len <= 64) return m->str[len];
  d = (double)len - 1024;
  return m->slong + floor((d + m->salign - m->sfirst) / m->salign) * m->salign;
}

/* }====================================================== */


/*
** {======================================================
** The walk
** =======================================================
*/

static int32_t join (int32_t a, int32_t b) {
  if (a == 0) return b;
  if (b == 0 || a == b) return a;
  return SHARED;
}

static int collectable (int t) {
  return t == LUA_TSTRING || t == LUA_TTABLE || t == LUA_TFUNCTION ||
         t == LUA_TUSERDATA || t == LUA_TTHREAD || t == T_CDATA;
}

static const void *ident (lua_State *L, int i, int t) {
  return t == LUA_TSTRING ? (const void *)lua_tostring(L, i)
                          : lua_topointer(L, i);
}

/*
** The queue. Values wait in segments of SEG slots, W[k] for positions
** (k-1)*SEG .. k*SEG-1, so that it grows and shrinks without ever copying
** values (a copy of a wide queue would not fit in a 2 ms slice); their
** records and labels wait in C rings indexed by the same positions.
*/
#define SEGBITS  10
#define SEG      (1u << SEGBITS)

static void enqueue (walker *w, int vi, uint32_t rec, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  uint32_t p = s->qtail, seg = (p >> SEGBITS) + 1;
  vi = mp_absindex(L, vi);
  if (s->qtail - s->qhead == s->qcap) {  /* grow the C rings */
    uint32_t ncap = s->qcap ? s->qcap * 2 : 256, q;
    uint32_t *ni = (uint32_t *)xrealloc(L, s, NULL, 0, (size_t)ncap * 4);
    int32_t *nl = (int32_t *)xrealloc(L, s, NULL, 0, (size_t)ncap * 4);
    for (q = s->qhead; q != s->qtail; q++) {
      ni[q & (ncap - 1)] = s->qidx[q & (s->qcap - 1)];
      nl[q & (ncap - 1)] = s->qlabel[q & (s->qcap - 1)];
    }
    xrealloc(L, s, s->qidx, (size_t)s->qcap * 4, 0);
    xrealloc(L, s, s->qlabel, (size_t)s->qcap * 4, 0);
    s->qidx = ni;
    s->qlabel = nl;
    s->qcap = ncap;
  }
  if ((p & (SEG - 1)) == 0 || p == s->qhead) {  /* a segment starts */
    lua_rawgeti(L, w->W, (int)seg);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_rawgeti(L, w->W, 0);  /* the spare segment, if any */
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, (int)SEG, 0);
      }
      else {
        lua_pushnil(L);
        lua_rawseti(L, w->W, 0);
      }
      lua_pushvalue(L, -1);
      lua_rawseti(L, w->W, (int)seg);
    }
  }
  else
    lua_rawgeti(L, w->W, (int)seg);
  lua_pushvalue(L, vi);
  lua_rawseti(L, -2, (int)(p & (SEG - 1)) + 1);
  lua_pop(L, 1);
  s->qidx[p & (s->qcap - 1)] = rec;
  s->qlabel[p & (s->qcap - 1)] = label;
  s->qtail++;
}

/* Pushes the value at the head of the queue. */
static void queue_head (walker *w) {
  lua_rawgeti(w->L, w->W, (int)(w->s->qhead >> SEGBITS) + 1);
  lua_rawgeti(w->L, -1, (int)(w->s->qhead & (SEG - 1)) + 1);
  lua_remove(w->L, -2);
}

/* Drops the head of the queue. A segment the head leaves (or that the
** queue empties) becomes the spare W[0], which the next segment reuses:
** a walk makes no garbage in the heap it measures. */
static void queue_pop (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  uint32_t seg = (s->qhead >> SEGBITS) + 1;
  lua_rawgeti(L, w->W, (int)seg);
  lua_pushnil(L);
  lua_rawseti(L, -2, (int)(s->qhead & (SEG - 1)) + 1);
  if ((s->qhead & (SEG - 1)) == SEG - 1 || s->qhead + 1 == s->qtail) {
    lua_pushnil(L);
    lua_rawseti(L, w->W, (int)seg);
    lua_rawseti(L, w->W, 0);  /* the previous spare, if any, goes */
  }
  else
    lua_pop(L, 1);
  s->qhead++;
}

static void note_referrer (snap *s, uint32_t parent, int edge,
                           uint32_t name) {
  if (s->nref < 16) {
    s->ref[s->nref] = parent;
    s->refedge[s->nref] = (uint32_t)edge;
    s->refname[s->nref] = name;
    s->nref++;
  }
}

/*
** Reaches the value at vi from record 'parent' (+1; 0 for none) through
** an edge, with the label of the expansion. New objects get a record and,
** unless they are leaves, a place in the queue; known ones are queued
** again only when their label changes (a second root reaches them).
*/
static void discover (walker *w, int vi, uint32_t parent, int edge,
                      uint32_t name, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  int t = lua_type(L, vi);
  const void *p;
  int64_t found;
  uint32_t r;
  hobj *o;
  if (!collectable(t)) return;
  vi = mp_absindex(L, vi);
  p = ident(L, vi, t);
  if (p == NULL) return;
  found = lookup(s, p);
  if (s->mode == 1) {  /* second pass of modules(): one row's reach */
    if (found < 0) return;
    o = &s->obj[found];
    if ((o->flags & (F_IGNORE | F_ROOT)) ||
        (o->label != s->curlabel && o->label != SHARED) ||
        s->seen[found] == (uint16_t)s->curlabel)
      return;
    s->seen[found] = (uint16_t)s->curlabel;
    if (o->label == SHARED) s->rowshared[s->curlabel] += o->size;
    if (t != LUA_TSTRING && t != T_CDATA) enqueue(w, vi, (uint32_t)found, label);
    return;
  }
  if (found >= 0) {
    int32_t nl;
    o = &s->obj[found];
    if (p == s->target && parent != 0) note_referrer(s, parent, edge, name);
    if (o->flags & (F_IGNORE | F_ROOT)) return;
    nl = join(o->label, label);
    if (nl == o->label) return;
    o->label = nl;
    if (t != LUA_TSTRING && t != T_CDATA) enqueue(w, vi, (uint32_t)found, nl);
    return;
  }
  if (s->n >= s->max_objects) { s->truncated = 1; return; }
  if (s->failafter > 0 && s->n >= (uint32_t)s->failafter)
    luaL_error(L, "heap walk: failing on purpose after %d objects",
               s->failafter);
  r = newrec(L, s, p, t, 1);
  o = &s->obj[r];
  o->parent = parent;
  o->edge = (uint8_t)edge;
  o->name = name;
  o->label = label;
  if (p == s->target && parent != 0) note_referrer(s, parent, edge, name);
  if (t == LUA_TSTRING) {
    size_t len;
    lua_tolstring(L, vi, &len);
    o->size = (uint32_t)stringsize(&s->m, len);
  }
  else if (t == T_CDATA)
    o->size = (uint32_t)s->m.cdata;
  else
    enqueue(w, vi, r, label);
}

/* A part of a function (upvalue, prototype) that has no value of its own:
** a record with a size and a label, outside the queue. */
static void reach_part (snap *s, uint32_t r, int32_t label) {
  hobj *o = &s->obj[r];
  if (s->mode == 1) {
    if (o->label == SHARED && s->seen[r] != (uint16_t)s->curlabel) {
      s->seen[r] = (uint16_t)s->curlabel;
      s->rowshared[s->curlabel] += o->size;
    }
    return;
  }
  o->label = join(o->label, label);
}

/* Counts the bytes lua_dump writes: a measure of a prototype. */
static int count_writer (lua_State *L, const void *p, size_t sz, void *ud) {
  (void)L; (void)p;
  *(size_t *)ud += sz;
  return 0;
}

static uint32_t protokey (const void *src, int line, int last) {
  return mix((uint64_t)(uintptr_t)src ^ ((uint64_t)(unsigned)line << 32) ^
             (uint64_t)(unsigned)last * 0x9e3779b97f4a7c15ULL);
}

/*
** The prototype of the Lua function at fi, counted once however many
** closures share it. It is keyed by source, linedefined and
** lastlinedefined: the API gives no pointer to it. Its size is a linear
** function of its lua_dump length, fitted at calibration.
*/
static uint32_t proto_of (walker *w, int fi, const lua_Debug *ar) {
  lua_State *L = w->L;
  snap *s = w->s;
  uint32_t mask, i, r;
  size_t len = 0;
  if (s->np * 2 >= s->picap) {
    uint32_t ncap = s->picap ? s->picap * 2 : 256, j;
    uint32_t *ni = (uint32_t *)xrealloc(L, s, NULL, 0, (size_t)ncap * 4);
    memset(ni, 0, (size_t)ncap * 4);
    for (j = 0; j < s->np; j++) {
      pinfo *q = &s->proto[j];
      for (i = protokey(q->src, q->line, q->last) & (ncap - 1); ni[i] != 0;
           i = (i + 1) & (ncap - 1)) ;
      ni[i] = j + 1;
    }
    xrealloc(L, s, s->pindex, (size_t)s->picap * 4, 0);
    s->pindex = ni;
    s->picap = ncap;
  }
  mask = s->picap - 1;
  for (i = protokey(ar->source, ar->linedefined, ar->lastlinedefined) & mask;
       s->pindex[i] != 0; i = (i + 1) & mask) {
    pinfo *q = &s->proto[s->pindex[i] - 1];
    if (q->src == ar->source && q->line == ar->linedefined &&
        q->last == ar->lastlinedefined)
      return q->obj;
  }
  if (s->np == s->pcap) {
    uint32_t ncap = s->pcap ? s->pcap * 2 : 128;
    s->proto = (pinfo *)xrealloc(L, s, s->proto,
                                 (size_t)s->pcap * sizeof(pinfo),
                                 (size_t)ncap * sizeof(pinfo));
    s->pcap = ncap;
  }
  r = newrec(L, s, ar->source, T_PROTO, 0);
  s->proto[s->np].src = ar->source;
  s->proto[s->np].line = ar->linedefined;
  s->proto[s->np].last = ar->lastlinedefined;
  s->proto[s->np].obj = r;
  s->obj[r].parent = (uint32_t)ar->linedefined;  /* protos have no path */
  s->pindex[i] = ++s->np;
  lua_pushvalue(L, fi);
  mp_dump(L, count_writer, &len);
  lua_pop(L, 1);
  s->obj[r].size = (uint32_t)(s->m.pbase + s->m.pbyte * (double)len);
  s->obj[r].name = intern(L, s, ar->short_src, strlen(ar->short_src));
  s->obj[r].edge = E_PROTO;
  return r;
}

/* One unit of work; 0 when the step's budget is spent. */
static int budget (walker *w) {
  if (w->units >= w->limit) return 0;
  w->units++;
  if (w->deadline > 0 && ((long)w->units & 15) == 0) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if ((double)ts.tv_sec + ts.tv_nsec * 1e-9 >= w->deadline) {
      w->limit = w->units;  /* stays spent for the rest of the step */
      return 0;
    }
  }
  return 1;
}

/* Weak mode of the metatable at mt: bit 1 keys, bit 2 values. */
static int weakmode (lua_State *L, int mt) {
  const char *mode;
  int weak = 0;
  lua_pushliteral(L, "__mode");
  lua_rawget(L, mt);
  mode = lua_tostring(L, -1);
  if (mode != NULL && lua_type(L, -1) == LUA_TSTRING) {
    if (strchr(mode, 'k')) weak |= 1;
    if (strchr(mode, 'v')) weak |= 2;
  }
  lua_pop(L, 1);
  return weak;
}

/* The edge from a table to the value under the key at ki. */
static int keyedge (walker *w, int ki, uint32_t *name) {
  lua_State *L = w->L;
  switch (lua_type(L, ki)) {
    case LUA_TSTRING: {
      size_t len;
      const char *k = lua_tolstring(L, ki, &len);
      *name = intern(L, w->s, k, len);
      return E_FIELD;
    }
    case LUA_TNUMBER: {
      lua_Number d = lua_tonumber(L, ki);
      if (d >= 0 && d < 4294967296.0 && d == floor(d)) {
        *name = (uint32_t)d;
        return E_INDEX;
      }
      *name = 0;
      return E_NUMKEY;
    }
    default:
      *name = (uint32_t)lua_type(L, ki);
      return E_OBJKEY;
  }
}

/*
** Expands a table (at ti, record r) from the key saved in W[-1]: its
** metatable first, then its entries, counting integer keys per power of
** two for the size. Returns 0 when the budget ran out mid-way.
*/
static int expand_table (walker *w, int ti, uint32_t r, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  int weak = 0;
  if (lua_getmetatable(L, ti)) {
    int mt = lua_gettop(L);
    weak = weakmode(L, mt);
    if (!s->started) discover(w, mt, r + 1, E_MT, 0, label);
    lua_pop(L, 1);
  }
  if (!s->started) {
    memset(s->nums, 0, sizeof(s->nums));
    s->nint = s->nent = 0;
    s->started = 1;
  }
  if (weak == 1 && LUA_VERSION_NUM >= 502) {  /* an ephemeron table */
    lua_rawgeti(L, w->W, -2);
    lua_pushvalue(L, ti);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  lua_rawgeti(L, w->W, -1);
  for (;;) {
    int kt, vt;
    uint32_t name;
    int edge;
    s->in_next = 1;
    if (!lua_next(L, ti)) break;
    s->in_next = 0;
    kt = lua_type(L, -2);
    vt = lua_type(L, -1);
    s->nent++;
    if (kt == LUA_TNUMBER) {
      lua_Number d = lua_tonumber(L, -2);
      if (d >= 1 && d <= 2147483648.0 && d == floor(d)) {
        s->nums[ceillog2((uint32_t)d)]++;
        s->nint++;
      }
    }
    /* strings are values to weak tables: never cleared, always kept */
    if (!(weak & 1) || kt == LUA_TSTRING)
      discover(w, -2, r + 1, E_KEY, 0, label);
    if (!(weak & 2) || vt == LUA_TSTRING) {
      int follow = 1;
      if ((weak & 1) && LUA_VERSION_NUM >= 502 && collectable(kt) &&
          kt != LUA_TSTRING) {
        /* ephemeron: the value lives while the key does */
        int64_t k = lookup(s, ident(L, -2, kt));
        follow = k >= 0 && s->obj[k].label != 0;
      }
      if (follow) {
        edge = keyedge(w, lua_gettop(L) - 1, &name);
        discover(w, -1, r + 1, edge, name, label);
      }
    }
    lua_pop(L, 1);
    if (!budget(w)) {
      lua_rawseti(L, w->W, -1);  /* resume from this key */
      return 0;
    }
  }
  s->in_next = 0;
  if (!(s->obj[r].flags & F_SIZED)) {
    s->obj[r].size = (uint32_t)tablesize(&s->m, s->nums, s->nint, s->nent);
    s->obj[r].aux = s->nent;
    s->obj[r].flags |= F_SIZED;
  }
  return 1;
}

static void expand_function (walker *w, int fi, uint32_t r, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  hobj *o;
  const char *up;
  int i;
  if (lua_iscfunction(L, fi)) {
    for (i = 1; (up = lua_getupvalue(L, fi, i)) != NULL; i++) {
      discover(w, -1, r + 1, E_UPIDX, (uint32_t)i, label);
      lua_pop(L, 1);
    }
    o = &s->obj[r];
    if (!(o->flags & F_SIZED))
      o->size = (uint32_t)(i == 1 ? s->m.ccl0 : s->m.ccl + s->m.ccl_up * (i - 1));
  }
  else {
    lua_Debug ar;
    uint32_t pr;
    double ups = 0;
    lua_pushvalue(L, fi);
    lua_getinfo(L, ">Su", &ar);
    if (s->mode == 0 && !(s->obj[r].flags & F_SIZED)) {
      pr = proto_of(w, fi, &ar);
      s->obj[pr].aux++;
      s->obj[r].aux = pr + 1;
    }
    if (s->obj[r].aux) reach_part(s, s->obj[r].aux - 1, label);
    for (i = 1; (up = lua_getupvalue(L, fi, i)) != NULL; i++) {
      int edge = *up ? E_UPVAL : E_UPIDX;
      uint32_t name = *up ? intern(L, s, up, strlen(up)) : (uint32_t)i;
#if defined(MP_HAS_UPVALUEID)
      /* shared upvalues have one identity: count them once */
      const void *id = lua_upvalueid(L, fi, i);
      int64_t u = lookup(s, id);
      if (u < 0 && s->mode == 0) {
        u = newrec(L, s, id, T_UPVAL, 1);
        s->obj[u].size = (uint32_t)s->m.upval;
        s->obj[u].parent = r + 1;
        s->obj[u].edge = (uint8_t)edge;
        s->obj[u].name = name;
      }
      if (u >= 0) reach_part(s, (uint32_t)u, label);
#else
      ups += s->m.upval;  /* 5.1 names no upvalue: one per closure */
#endif
      discover(w, -1, r + 1, edge, name, label);
      lua_pop(L, 1);
    }
    o = &s->obj[r];
    if (!(o->flags & F_SIZED))
      o->size = (uint32_t)(s->m.lcl + s->m.lcl_up * (i - 1) + ups);
  }
#if LUA_VERSION_NUM == 501
  lua_getfenv(L, fi);
  discover(w, -1, r + 1, E_ENV, 0, label);
  lua_pop(L, 1);
#endif
  s->obj[r].flags |= F_SIZED;
}

/* The name of a userdata's type: __name, else the registry key its
** metatable is stored under (luaL_newmetatable), else a placeholder. */
static uint32_t udname (walker *w, int mt) {
  lua_State *L = w->L;
  snap *s = w->s;
  const void *p = lua_topointer(L, mt);
  uint32_t i;
  lua_pushliteral(L, "__name");
  lua_rawget(L, mt);
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t len;
    const char *n = lua_tolstring(L, -1, &len);
    uint32_t off = intern(L, s, n, len);
    lua_pop(L, 1);
    return off;
  }
  lua_pop(L, 1);
  for (i = 0; i < s->nreg; i++)
    if (s->regp[i] == p) return s->regname[i];
  return intern(L, s, "(unnamed metatable)", 19);
}

static void expand_userdata (walker *w, int ui, uint32_t r, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  hobj *o;
  int n;
  uint32_t tname;
  if (lua_getmetatable(L, ui)) {
    tname = udname(w, lua_gettop(L));
    discover(w, -1, r + 1, E_MT, 0, label);
    lua_pop(L, 1);
  }
  else
    tname = intern(L, s, "(no metatable)", 14);
  /* another snapshot's user value is its (spent) queue */
  for (n = 1; !mp_testudata(L, ui, SNAP_MT) &&
              mp_getuv(L, ui, n) != LUA_TNONE; n++) {
    discover(w, -1, r + 1, E_UVALUE, (uint32_t)n, label);
    lua_pop(L, 1);
  }
  if (!mp_testudata(L, ui, SNAP_MT)) lua_pop(L, 1);
#if LUA_VERSION_NUM != 504
  n = 1;  /* the environment or the one user value is part of the block */
#endif
  o = &s->obj[r];
  if (!(o->flags & F_SIZED)) {
    o->size = (uint32_t)((n == 1 ? s->m.ud : s->m.udb + s->m.ud_uv * (n - 1)) +
                         (double)mp_rawlen(L, ui));
    o->aux = tname;
    o->flags |= F_SIZED;
  }
}

/* Whether the function at vi is one of the walk's own (opts.own). */
static int own_frame (walker *w, int vi) {
  const void *p = lua_topointer(w->L, vi);
  int i;
  for (i = 0; i < w->s->nown; i++)
    if (w->s->own[i] == p) return 1;
  return 0;
}

/*
** A thread: the function and locals of every frame, and for a thread
** other than the running one the values on its stack. On the thread that
** walks, the frames of memprobe.heap's own functions (opts.own) are
** skipped: their locals are the walk's temporaries, garbage once it
** returns, and counting them would make every diff report them as added
** and freed (and let a new object that reuses one's address pass for it).
*/
static void expand_thread (walker *w, int ti, uint32_t r, int32_t label) {
  lua_State *L = w->L;
  lua_State *co = lua_tothread(L, ti);
  lua_Debug ar;
  int level, i;
  const char *name;
  for (level = 0; lua_getstack(co, level, &ar); level++) {
    if (!lua_checkstack(co, 2)) break;
    lua_getinfo(co, "f", &ar);
    lua_xmove(co, L, 1);
    if (co == L && own_frame(w, -1)) {
      lua_pop(L, 1);
      continue;
    }
    discover(w, -1, r + 1, E_FRAME, (uint32_t)level, label);
    lua_pop(L, 1);
    for (i = 1; (name = lua_getlocal(co, &ar, i)) != NULL; i++) {
      lua_xmove(co, L, 1);
      discover(w, -1, r + 1, E_LOCAL, intern(L, w->s, name, strlen(name)),
               label);
      lua_pop(L, 1);
    }
  }
  if (co != L) {
    int top = lua_gettop(co);
    for (i = 1; i <= top && lua_checkstack(co, 1); i++) {
      lua_pushvalue(co, i);
      lua_xmove(co, L, 1);
      discover(w, -1, r + 1, E_STACK, (uint32_t)i, label);
      lua_pop(L, 1);
    }
  }
#if LUA_VERSION_NUM == 501
  lua_getfenv(L, ti);
  discover(w, -1, r + 1, E_ENV, 0, label);
  lua_pop(L, 1);
#endif
  w->s->obj[r].size = (uint32_t)w->s->m.thread;
  w->s->obj[r].flags |= F_SIZED;
}

/*
** Ephemeron tables (weak keys, 5.2+) keep a value only while its key is
** reachable, which may be learnt after the table was expanded: expand
** them again while that discovers new objects.
*/
static int requeue_ephemerons (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  int any = 0;
  if (s->mode != 0 || s->ephpass >= EPHPASSES || s->n == s->ephseen)
    return 0;
  s->ephpass++;
  s->ephseen = s->n;
  lua_rawgeti(L, w->W, -2);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    int64_t r = lookup(s, lua_topointer(L, -2));
    lua_pop(L, 1);  /* the key is on top now */
    if (r >= 0) { enqueue(w, lua_gettop(L), (uint32_t)r, s->obj[r].label); any = 1; }
  }
  lua_pop(L, 1);
  return any;
}

/*
** Runs the walk until the queue is empty (returns 1) or the step's budget
** is spent (returns 0). The head of the queue stays in place until it is
** fully expanded.
*/
static int run (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  int base = lua_gettop(L);
  for (;;) {
    uint32_t slot, r;
    int32_t label;
    int done = 1;
    if (s->qhead == s->qtail) {
      if (!requeue_ephemerons(w)) return 1;
      continue;
    }
    if (!budget(w)) return 0;
    slot = s->qhead & (s->qcap - 1);
    r = s->qidx[slot];
    label = s->qlabel[slot];
    queue_head(w);
    switch (lua_type(L, -1)) {
      case LUA_TTABLE: done = expand_table(w, base + 1, r, label); break;
      case LUA_TFUNCTION: expand_function(w, base + 1, r, label); break;
      case LUA_TUSERDATA: expand_userdata(w, base + 1, r, label); break;
      case LUA_TTHREAD: expand_thread(w, base + 1, r, label); break;
      default: break;
    }
    lua_settop(L, base);
    if (done) {
      queue_pop(w);
      lua_pushnil(L);
      lua_rawseti(L, w->W, -1);
      s->started = 0;
    }
  }
}

/* }====================================================== */


/*
** {======================================================
** Snapshot objects
** =======================================================
*/

static snap *checksnap (lua_State *L, int i) {
  snap *s = (snap *)luaL_checkudata(L, i, SNAP_MT);
  luaL_argcheck(L, !s->closed, i, "snapshot is closed");
  return s;
}

static int snap_gc (lua_State *L) {
  snap *s = (snap *)luaL_checkudata(L, 1, SNAP_MT);
  snap_free(s);
  return 0;
}

static double now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Protected body of a step: snapshot at 1, ms at 2, units at 3. */
static int step_body (lua_State *L) {
  walker w;
  w.L = L;
  w.s = (snap *)lua_touserdata(L, 1);
  w.ud = 1;
  lua_settop(L, 3);
  w.units = 0;
  w.limit = lua_isnumber(L, 3) ? lua_tonumber(L, 3) : HUGE_VAL;
  w.deadline = lua_isnumber(L, 2) ? now() + lua_tonumber(L, 2) / 1000 : 0;
  lua_pushnil(L);
  w.W = lua_gettop(L);
  mp_getuv(L, 1, 1);
  lua_replace(L, w.W);
  w.s->done = run(&w);
  w.s->units += w.units;
  w.s->steps++;
  if (w.units > w.s->maxunits) w.s->maxunits = w.units;
  return 0;
}

static void finish (lua_State *L, int ud, snap *s);

/*
** Runs one step of the walk under lua_pcall. When the program changed a
** table between steps so that lua_next no longer knows the saved key,
** that table's expansion starts over (what it already found stays found).
** Any other error frees the buffers and is raised again.
*/
static void step (lua_State *L, int ud, double ms, double units) {
  snap *s = (snap *)lua_touserdata(L, ud);
  int tries;
  for (tries = 0; tries < 4; tries++) {
    /* made once per state: on 5.1 and LuaJIT every lua_pushcfunction
    ** allocates a closure, garbage the walk must not make */
    lua_getfield(L, LUA_REGISTRYINDEX, STEP_KEY);
    lua_pushvalue(L, ud);
    if (ms > 0) lua_pushnumber(L, ms); else lua_pushnil(L);
    if (units > 0) lua_pushnumber(L, units); else lua_pushnil(L);
    if (lua_pcall(L, 3, 0, 0) == 0) {
      if (s->done) finish(L, ud, s);
      return;
    }
    if (!s->in_next) break;
    lua_pop(L, 1);
    s->in_next = 0;
    s->started = 0;
    s->restarts++;
    mp_getuv(L, ud, 1);
    lua_pushnil(L);
    lua_rawseti(L, -2, -1);
    lua_pop(L, 1);
  }
  snap_free(s);
  lua_error(L);
}

/* Prototypes nested in another one from the same chunk are part of its
** dump: count only the outermost seen. A main chunk spans everything. */
static int cmp_proto (const void *a, const void *b) {
  const pinfo *x = (const pinfo *)a, *y = (const pinfo *)b;
  if (x->src != y->src)
    return (uintptr_t)x->src < (uintptr_t)y->src ? -1 : 1;
  if (x->line != y->line) return x->line < y->line ? -1 : 1;
  return x->last > y->last ? -1 : x->last < y->last;
}

static void finish (lua_State *L, int ud, snap *s) {
  uint32_t i, j;
  /* the queue is spent: give its memory back, C and Lua */
  xrealloc(L, s, s->qidx, (size_t)s->qcap * 4, 0);
  xrealloc(L, s, s->qlabel, (size_t)s->qcap * 4, 0);
  s->qidx = NULL;
  s->qlabel = NULL;
  s->qcap = s->qhead = s->qtail = 0;
  lua_createtable(L, 0, 2);
  lua_newtable(L);
  lua_rawseti(L, -2, -2);
  mp_setuv(L, ud);
  if (s->n < s->cap) {
    s->obj = (hobj *)xrealloc(L, s, s->obj, (size_t)s->cap * sizeof(hobj),
                              (size_t)s->n * sizeof(hobj));
    s->cap = s->n;
  }
  if (s->np == 0) return;
  qsort(s->proto, s->np, sizeof(pinfo), cmp_proto);
  for (i = 0; i < s->np; i = j) {
    int last = s->proto[i].line == 0 ? 0x7fffffff : s->proto[i].last;
    for (j = i + 1; j < s->np && s->proto[j].src == s->proto[i].src; j++) {
      if (s->proto[j].line >= s->proto[i].line && s->proto[j].last <= last) {
        s->obj[s->proto[j].obj].flags |= F_NESTED;
        s->obj[s->proto[j].obj].size = 0;
      }
      else break;
    }
  }
  /* the proto index is stale after sorting; the walk is over anyway */
  memset(s->pindex, 0, (size_t)s->picap * 4);
}

/* Pre-registers the value at vi as a root with a name and a label. */
static void addroot (walker *w, int vi, const char *name, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  int t = lua_type(L, vi);
  int64_t r;
  const void *p;
  if (!collectable(t) || (p = ident(L, vi, t)) == NULL) return;
  if (lookup(s, p) >= 0) return;  /* an alias of an earlier root */
  discover(w, vi, 0, E_ROOT, intern(L, s, name, strlen(name)), label);
  r = lookup(s, p);
  if (r >= 0) s->obj[r].flags |= F_ROOT;
}

static void ignore (walker *w, int vi) {
  snap *s = w->s;
  uint32_t r = newrec(w->L, s, lua_topointer(w->L, vi),
                      lua_type(w->L, vi), 1);
  s->obj[r].flags |= F_IGNORE;
}

/***
The heap walk behind `heap()`, `modules()`, `snapshot()` and `path()`:
starts a `memprobe.Snapshot` over the given roots with the given size
model, and runs its first step within the budgets. Methods: `step([ms [,
units]])`, `stats()`, `census([top])`, `rows(roots)`, `referrers()`,
`added(older [, top])`, `close()`.
@function heap_snapshot
@tparam table model the size model (`memprobe.heap.model()`)
@tparam table roots array of `{ value, name, label }`
@tparam table opts `max_objects`, `max_ms`, `max_units`, `target`, `own`
(functions whose frames on the walking thread are not roots)
@treturn userdata the snapshot
*/
/*
** snapshot(model, roots, opts) -> snapshot. roots is an array of
** { value, name, label }; label 0 gives each root its own row. Runs the
** first step within opts.max_ms / opts.max_units (all of it without).
*/
static int l_snapshot (lua_State *L) {
  mp_ctx *c = memprobe_ctx(L);
  snap *s;
  walker w;
  int i, n, ud;
  double ms, units;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  s = (snap *)mp_newuserdata(L, sizeof(snap));
  memset(s, 0, sizeof(*s));
  s->closed = 1;
  luaL_getmetatable(L, SNAP_MT);
  lua_setmetatable(L, -2);
  ud = lua_gettop(L);
  s->ctx = c;
  s->closed = 0;
  readmodel(L, 1, &s->m);
  lua_getfield(L, 3, "max_objects");
  s->max_objects = lua_isnumber(L, -1) ? (uint32_t)lua_tonumber(L, -1)
                                       : 0xfffffff0u;
  lua_getfield(L, 3, "fail_after");
  s->failafter = (int)lua_tointeger(L, -1);
  lua_getfield(L, 3, "target");
  if (collectable(lua_type(L, -1)))
    s->target = ident(L, -1, lua_type(L, -1));
  lua_getfield(L, 3, "own");
  if (lua_istable(L, -1)) {
    for (i = 1; i <= NOWN; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_isfunction(L, -1)) s->own[s->nown++] = lua_topointer(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_getfield(L, 3, "max_ms");
  ms = lua_tonumber(L, -1);
  lua_getfield(L, 3, "max_units");
  units = lua_tonumber(L, -1);
  lua_settop(L, ud);
  if (ms > 0 || units > 0) {
    /* Size the records and their index for the whole heap now: growing
    ** them later copies every record, which no 2 ms slice can afford.
    ** Objects average more than 48 bytes on every runtime measured. */
    double est = (double)lua_gc(L, LUA_GCCOUNT, 0) * 1024 / 48 + 1024;
    uint32_t cap = est < s->max_objects ? (uint32_t)est : s->max_objects + 8;
    uint32_t icap = 2048;
    while (icap < 2 * (uint64_t)cap && icap < (1u << 31)) icap *= 2;
    s->obj = (hobj *)xrealloc(L, s, NULL, 0, (size_t)cap * sizeof(hobj));
    s->cap = cap;
    s->index = (uint32_t *)xrealloc(L, s, NULL, 0, (size_t)icap * 4);
    memset(s->index, 0, (size_t)icap * 4);
    s->icap = icap;
  }
  /* the queue: array slots plus -1 (a saved key), -2 (ephemerons) */
  lua_createtable(L, 0, 2);
  lua_newtable(L);
  lua_rawseti(L, -2, -2);
  lua_pushvalue(L, -1);
  mp_setuv(L, ud);
  w.L = L; w.s = s; w.ud = ud; w.W = lua_gettop(L);
  w.units = 0; w.limit = HUGE_VAL; w.deadline = 0;
  ignore(&w, ud);
  ignore(&w, w.W);
  ignore(&w, 2);  /* the roots and options tables are the caller's */
  ignore(&w, 3);
  lua_rawgeti(L, w.W, -2);
  ignore(&w, -1);
  lua_pop(L, 1);
  /* registry tables by name, for userdata without __name */
  lua_pushnil(L);
  while (lua_next(L, LUA_REGISTRYINDEX)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
      size_t len;
      const char *k = lua_tolstring(L, -2, &len);
      s->regp = (const void **)xrealloc(L, s, s->regp,
                                        s->nreg * sizeof(void *),
                                        (s->nreg + 1) * sizeof(void *));
      s->regname = (uint32_t *)xrealloc(L, s, s->regname, s->nreg * 4,
                                        (s->nreg + 1) * 4);
      s->regp[s->nreg] = lua_topointer(L, -1);
      s->regname[s->nreg++] = intern(L, s, k, len);
    }
    lua_pop(L, 1);
  }
  n = (int)mp_rawlen(L, 2);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    luaL_argcheck(L, lua_istable(L, -1), 2, "roots are {value, name, label}");
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    lua_rawgeti(L, -3, 3);
    addroot(&w, -3, luaL_optstring(L, -2, "?"), (int32_t)lua_tointeger(L, -1));
    if (lua_tointeger(L, -1) > s->nroots) s->nroots = (int)lua_tointeger(L, -1);
    lua_pop(L, 4);
  }
  lua_settop(L, ud);
  step(L, ud, ms, units);
  lua_settop(L, ud);
  return 1;
}

/* snap:step([ms [, units]]) -> done */
static int l_step (lua_State *L) {
  snap *s = checksnap(L, 1);
  double ms = luaL_optnumber(L, 2, 0), units = luaL_optnumber(L, 3, 0);
  lua_settop(L, 1);
  if (!s->done) step(L, 1, ms, units);
  lua_pushboolean(L, s->done);
  return 1;
}

static int l_close (lua_State *L) {
  snap *s = (snap *)luaL_checkudata(L, 1, SNAP_MT);
  snap_free(s);
  return 0;
}

static int l_tostring (lua_State *L) {
  snap *s = (snap *)luaL_checkudata(L, 1, SNAP_MT);
  if (s->closed)
    lua_pushliteral(L, "memprobe.Snapshot (closed)");
  else
    lua_pushfstring(L, "memprobe.Snapshot (%d objects%s)", (int)s->n,
                    s->done ? "" : ", walking");
  return 1;
}

static void setnum (lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

/* snap:stats() -> { objects, done, truncated, steps, units, max_units,
** restarts, bookkeeping } */
static int l_stats (lua_State *L) {
  snap *s = checksnap(L, 1);
  double book = (double)s->bytes;
  lua_createtable(L, 0, 9);
  setnum(L, "objects", s->n);
  setnum(L, "steps", s->steps);
  setnum(L, "units", s->units);
  setnum(L, "max_units", s->maxunits);
  setnum(L, "restarts", s->restarts);
  setnum(L, "bookkeeping", book);
  setnum(L, "queued", s->qtail - s->qhead);
  lua_pushboolean(L, s->done);
  lua_setfield(L, -2, "done");
  lua_pushboolean(L, s->truncated);
  lua_setfield(L, -2, "truncated");
  return 1;
}

static int identifier (const char *n) {
  if (!(*n == '_' || (*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z')))
    return 0;
  for (; *n; n++)
    if (!(*n == '_' || (*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') ||
          (*n >= '0' && *n <= '9')))
      return 0;
  return 1;
}

static const char *const tnames[T_NTYPES] = {
  "nil", "boolean", "lightuserdata", "number", "string", "table",
  "function", "userdata", "thread", "proto", "cdata", "proto", "upvalue"
};

/* Pushes the path segment of an edge: ".name", "[3]", ":metatable" ... */
static void pushsegment (lua_State *L, const snap *s, int edge,
                         uint32_t name) {
  switch (edge) {
    case E_ROOT: lua_pushstring(L, name_of(s, name)); break;
    case E_FIELD: {
      const char *n = name_of(s, name);
      if (identifier(n)) lua_pushfstring(L, ".%s", n);
      else lua_pushfstring(L, "[\"%s\"]", n);
      break;
    }
    case E_INDEX: lua_pushfstring(L, "[%d]", (int)name); break;
    case E_NUMKEY: lua_pushliteral(L, "[<number>]"); break;
    case E_OBJKEY:
      lua_pushfstring(L, "[<%s>]", tnames[name < T_NTYPES ? name : 0]);
      break;
    case E_KEY: lua_pushliteral(L, ":key"); break;
    case E_MT: lua_pushliteral(L, ":metatable"); break;
    case E_UPVAL: lua_pushfstring(L, ":upvalue(%s)", name_of(s, name)); break;
    case E_UPIDX: lua_pushfstring(L, ":upvalue(%d)", (int)name); break;
    case E_UVALUE: lua_pushfstring(L, ":uservalue(%d)", (int)name); break;
    case E_ENV: lua_pushliteral(L, ":env"); break;
    case E_LOCAL: lua_pushfstring(L, ":local(%s)", name_of(s, name)); break;
    case E_FRAME: lua_pushfstring(L, ":frame(%d)", (int)name); break;
    case E_STACK: lua_pushfstring(L, ":stack(%d)", (int)name); break;
    default: lua_pushliteral(L, ":proto"); break;
  }
}

/*
** Pushes the path of record r as two arrays: segments from the root, and
** for each segment the entry count of the table it leaves (0 for other
** containers), which memprobe.heap uses to tell data keys from names.
*/
static void pushpath (lua_State *L, const snap *s, uint32_t r) {
  uint32_t chain[256], k = 0, i;
  int n = 0;
  while (k < 256) {
    chain[k++] = r;
    if (s->obj[r].parent == 0) break;
    r = s->obj[r].parent - 1;
  }
  lua_createtable(L, (int)k, 0);
  lua_createtable(L, (int)k, 0);
  for (i = k; i-- > 0;) {
    const hobj *o = &s->obj[chain[i]];
    const hobj *up = o->parent ? &s->obj[o->parent - 1] : NULL;
    n++;
    pushsegment(L, s, o->edge, o->name);
    lua_rawseti(L, -3, n);
    lua_pushnumber(L, up && up->type == LUA_TTABLE ? up->aux : 0);
    lua_rawseti(L, -2, n);
  }
}

/* Same as pushpath, into fields 'path' and 'wide' of the table on top. */
static void setpath (lua_State *L, const snap *s, uint32_t r) {
  pushpath(L, s, r);
  lua_setfield(L, -3, "wide");
  lua_setfield(L, -2, "path");
}

static int counted (const hobj *o) {
  return !(o->flags & F_IGNORE);
}

/* Adds one object to t[key] = { count, bytes } (t on top). */
static void tally (lua_State *L, const char *key, double bytes) {
  lua_getfield(L, -1, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, key);
    setnum(L, "count", 0);
    setnum(L, "bytes", 0);
  }
  setnum(L, "count", getnum(L, -1, "count") + 1);
  setnum(L, "bytes", getnum(L, -1, "bytes") + bytes);
  lua_pop(L, 1);
}

/*
** snap:census(top) -> { by_type, userdata, functions, largest, total,
** objects }: the raw census memprobe.heap() dresses.
*/
static int l_census (lua_State *L) {
  snap *s = checksnap(L, 1);
  int top = (int)luaL_optinteger(L, 2, 10), k, nbig = 0;
  uint32_t i, *big;
  double total = 0, objects = 0;
  luaL_argcheck(L, s->done, 1, "walk not finished");
  luaL_argcheck(L, top >= 0 && top <= 1000, 2, "top must be 0..1000");
  lua_settop(L, 2);
  big = (uint32_t *)lua_newuserdata(L, sizeof(uint32_t) * (size_t)(top + 1));
  lua_createtable(L, 0, 6);
  lua_newtable(L);  /* by_type */
  for (i = 0; i < s->n; i++) {
    const hobj *o = &s->obj[i];
    if (!counted(o)) continue;
    tally(L, tnames[o->type < T_NTYPES ? o->type : 0], o->size);
    total += o->size;
    objects++;
  }
  lua_setfield(L, -2, "by_type");
  lua_newtable(L);  /* userdata by type name */
  for (i = 0; i < s->n; i++) {
    const hobj *o = &s->obj[i];
    if (counted(o) && o->type == LUA_TUSERDATA)
      tally(L, name_of(s, o->aux), o->size);
  }
  lua_setfield(L, -2, "userdata");
  lua_newtable(L);  /* functions by prototype */
  for (i = 0; i < s->n; i++) {
    const hobj *o = &s->obj[i];
    char key[NAMEMAX + 32];
    if (!counted(o) || o->type != LUA_TFUNCTION) continue;
    if (o->aux) {
      const hobj *pr = &s->obj[o->aux - 1];
      snprintf(key, sizeof(key), "%s:%d", name_of(s, pr->name),
               (int)pr->parent);
      lua_getfield(L, -1, key);
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 3);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, key);
        setnum(L, "count", 0);
        setnum(L, "bytes", 0);
        setnum(L, "proto", pr->size);
      }
      setnum(L, "count", getnum(L, -1, "count") + 1);
      setnum(L, "bytes", getnum(L, -1, "bytes") + o->size);
      lua_pop(L, 1);
    }
    else
      tally(L, "[C]", o->size);
  }
  lua_setfield(L, -2, "functions");
  /* the largest containers: insertion into a short sorted list */
  for (i = 0; i < s->n && top > 0; i++) {
    const hobj *o = &s->obj[i];
    if (!counted(o) || (o->type != LUA_TTABLE && o->type != LUA_TUSERDATA))
      continue;
    if (nbig < top || o->size > s->obj[big[nbig - 1]].size) {
      k = nbig < top ? nbig++ : nbig - 1;
      while (k > 0 && s->obj[big[k - 1]].size < o->size) {
        big[k] = big[k - 1];
        k--;
      }
      big[k] = i;
    }
  }
  lua_createtable(L, nbig, 0);
  for (k = 0; k < nbig; k++) {
    const hobj *o = &s->obj[big[k]];
    lua_createtable(L, 0, 5);
    setnum(L, "bytes", o->size);
    setnum(L, "entries", o->type == LUA_TTABLE ? o->aux : 0);
    lua_pushstring(L, tnames[o->type]);
    lua_setfield(L, -2, "type");
    setpath(L, s, big[k]);
    lua_rawseti(L, -2, k + 1);
  }
  lua_setfield(L, -2, "largest");
  setnum(L, "total", total);
  setnum(L, "objects", objects);
  return 1;
}

/*
** snap:rows(model_roots) -> { [label] = { exclusive, shared, objects,
** by_type } }. Exclusive bytes are those of objects only one root
** reaches; the shared bytes of a row come from a second, cheaper walk
** per root over the shared objects it reaches (roots at 2).
*/
static int l_rows (lua_State *L) {
  snap *s = checksnap(L, 1);
  uint32_t i;
  int row;
  luaL_argcheck(L, s->done, 1, "walk not finished");
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  if (s->seen == NULL) {
    s->seen = (uint16_t *)xrealloc(L, s, NULL, 0, (size_t)s->n * 2 + 2);
    memset(s->seen, 0, (size_t)s->n * 2 + 2);
    s->rowshared = (double *)xrealloc(L, s, NULL, 0,
                                      (size_t)(s->nroots + 1) * sizeof(double));
    memset(s->rowshared, 0, (size_t)(s->nroots + 1) * sizeof(double));
    s->mode = 1;
    for (row = 1; row <= s->nroots && row < 0xffff; row++) {
      int j, n = (int)mp_rawlen(L, 2);
      walker w;
      w.L = L; w.s = s; w.ud = 1; w.units = 0; w.limit = HUGE_VAL;
      w.deadline = 0;
      mp_getuv(L, 1, 1);
      w.W = lua_gettop(L);
      s->curlabel = row;
      for (j = 1; j <= n; j++) {
        int64_t r;
        lua_rawgeti(L, 2, j);
        lua_rawgeti(L, -1, 3);
        lua_rawgeti(L, -2, 1);
        if (lua_tointeger(L, -2) == row && collectable(lua_type(L, -1)) &&
            (r = lookup(s, ident(L, -1, lua_type(L, -1)))) >= 0 &&
            s->obj[r].label == row && lua_type(L, -1) != LUA_TSTRING) {
          s->seen[r] = (uint16_t)row;
          enqueue(&w, -1, (uint32_t)r, row);
        }
        lua_pop(L, 3);
      }
      run(&w);
      lua_settop(L, 2);
    }
    s->mode = 0;
  }
  lua_newtable(L);
  for (i = 0; i < s->n; i++) {
    const hobj *o = &s->obj[i];
    int32_t l = o->label;
    if (!counted(o) || l == 0) continue;
    lua_rawgeti(L, -1, l);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_createtable(L, 0, 4);
      setnum(L, "exclusive", 0);
      setnum(L, "objects", 0);
      setnum(L, "shared", l > 0 && l <= s->nroots ? s->rowshared[l] : 0);
      lua_newtable(L);
      lua_setfield(L, -2, "by_type");
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, l);
    }
    setnum(L, "exclusive", getnum(L, -1, "exclusive") + o->size);
    setnum(L, "objects", getnum(L, -1, "objects") + 1);
    lua_getfield(L, -1, "by_type");
    tally(L, tnames[o->type < T_NTYPES ? o->type : 0], o->size);
    lua_pop(L, 2);
  }
  for (row = 1; row <= s->nroots; row++) {  /* rows with nothing of their own */
    lua_rawgeti(L, -1, row);
    if (lua_isnil(L, -1)) {
      lua_createtable(L, 0, 4);
      setnum(L, "exclusive", 0);
      setnum(L, "objects", 0);
      setnum(L, "shared", s->rowshared[row]);
      lua_newtable(L);
      lua_setfield(L, -2, "by_type");
      lua_rawseti(L, -3, row);
    }
    lua_pop(L, 1);
  }
  return 1;
}

/*
** snap:referrers() -> array of { path, wide } ending with the edge to the
** target given as opts.target: every referrer the walk met, shortest
** first (each referrer's own path is a shortest one).
*/
static int l_referrers (lua_State *L) {
  snap *s = checksnap(L, 1);
  int i;
  lua_createtable(L, s->nref, 0);
  for (i = 0; i < s->nref; i++) {
    lua_createtable(L, 0, 2);
    pushpath(L, s, s->ref[i] - 1);
    pushsegment(L, s, (int)s->refedge[i], s->refname[i]);
    lua_rawseti(L, -3, (int)mp_rawlen(L, -3) + 1);
    {
      const hobj *up = &s->obj[s->ref[i] - 1];
      lua_pushnumber(L, up->type == LUA_TTABLE ? up->aux : 0);
      lua_rawseti(L, -2, (int)mp_rawlen(L, -2) + 1);
    }
    lua_setfield(L, -3, "wide");
    lua_setfield(L, -2, "path");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

typedef struct group {
  uint32_t parent, edge, name;
  double count, bytes;
} group;

/* Data-like edges (indices, keys of big tables) group together. */
static int collapse (const snap *s, const hobj *o) {
  if (o->edge == E_INDEX || o->edge == E_NUMKEY || o->edge == E_OBJKEY ||
      o->edge == E_KEY || o->edge == E_STACK)
    return 1;
  return o->edge == E_FIELD && o->parent &&
         s->obj[o->parent - 1].aux > 64 &&
         s->obj[o->parent - 1].type == LUA_TTABLE;
}

/*
** added(new, old, top) -> groups, grown. An object of new is old when old
** has one of the same identity and type that it counted: the records old
** ignores are its walk's own objects (queue, roots and options tables),
** garbage once it finished, whose addresses new objects may take; only
** its first, old's own userdata, lives on. Each added object belongs to
** the group of its topmost added ancestor: (the old container it hangs
** from, the edge into it, collapsed for data-like edges). Records are in
** discovery order, so a parent always precedes its children.
*/
static int l_added (lua_State *L) {
  snap *a = checksnap(L, 1), *b = checksnap(L, 2);
  int top = (int)luaL_optinteger(L, 3, 20);
  uint32_t i, ng = 0, gcap = 0, *topof, *gindex = NULL, gicap;
  group *g = NULL;
  int k;
  luaL_argcheck(L, a->done, 1, "walk not finished");
  luaL_argcheck(L, b->done, 2, "walk not finished");
  lua_settop(L, 3);
  topof = (uint32_t *)lua_newuserdata(L, (size_t)a->n * 4 + 4);
  gicap = 1024;
  while (gicap < a->n) gicap *= 2;
  gindex = (uint32_t *)lua_newuserdata(L, (size_t)gicap * 4);
  memset(gindex, 0, (size_t)gicap * 4);
  lua_newtable(L);  /* holds group arrays as userdata as they grow */
  for (i = 0; i < a->n; i++) {
    const hobj *o = &a->obj[i];
    int64_t j;
    uint32_t t, gp, ge, gn, h, slot;
    topof[i] = 0xffffffffu;
    if (!counted(o) || o->type == T_PROTO) continue;
    j = lookup(b, o->p);
    if (j >= 0 && b->obj[j].type == o->type &&
        (counted(&b->obj[j]) || j == 0))  /* record 0: old itself */
      continue;
    t = o->parent ? topof[o->parent - 1] : 0xffffffffu;
    if (t == 0xffffffffu) {  /* hangs from an old object: a new group */
      t = i;
      gp = o->parent;
      ge = o->edge;
      gn = collapse(a, o) ? 0 : o->name;
      h = mix(((uint64_t)gp << 32) ^ ((uint64_t)ge << 24) ^ gn);
      for (slot = h & (gicap - 1); gindex[slot] != 0;
           slot = (slot + 1) & (gicap - 1)) {
        group *x = &g[gindex[slot] - 1];
        if (x->parent == gp && x->edge == ge && x->name == gn) break;
      }
      if (gindex[slot] == 0) {
        if (ng == gcap) {
          group *ngp;
          gcap = gcap ? gcap * 2 : 64;
          ngp = (group *)lua_newuserdata(L, gcap * sizeof(group));
          if (ng) memcpy(ngp, g, ng * sizeof(group));
          lua_rawseti(L, -2, 1);  /* the old array may go */
          g = ngp;
        }
        g[ng].parent = gp; g[ng].edge = ge; g[ng].name = gn;
        g[ng].count = g[ng].bytes = 0;
        gindex[slot] = ++ng;
      }
      topof[i] = gindex[slot] - 1;
    }
    else
      topof[i] = t;
    g[topof[i]].count++;
    g[topof[i]].bytes += o->size;
  }
  lua_createtable(L, (int)ng, 0);
  for (i = 0; i < ng; i++) {
    lua_createtable(L, 0, 4);
    setnum(L, "count", g[i].count);
    setnum(L, "bytes", g[i].bytes);
    if (g[i].parent) pushpath(L, a, g[i].parent - 1);
    else { lua_newtable(L); lua_newtable(L); }
    if (g[i].name == 0 && g[i].edge != E_ROOT && g[i].edge != E_MT &&
        g[i].edge != E_ENV && g[i].edge != E_PROTO)
      lua_pushliteral(L, "[*]");
    else
      pushsegment(L, a, (int)g[i].edge, g[i].name);
    lua_rawseti(L, -3, (int)mp_rawlen(L, -3) + 1);
    lua_pushnumber(L, 0);
    lua_rawseti(L, -2, (int)mp_rawlen(L, -2) + 1);
    lua_setfield(L, -3, "wide");
    lua_setfield(L, -2, "path");
    lua_rawseti(L, -2, (int)i + 1);
  }
  /* tables in both that grew: the 'top' that grew most */
  lua_newtable(L);
  k = 0;
  for (i = 0; i < a->n && top > 0; i++) {
    const hobj *o = &a->obj[i];
    int64_t j;
    if (!counted(o) || o->type != LUA_TTABLE) continue;
    j = lookup(b, o->p);
    if (j < 0 || b->obj[j].type != LUA_TTABLE || !counted(&b->obj[j]) ||
        o->aux <= b->obj[j].aux)
      continue;
    lua_createtable(L, 0, 5);
    setnum(L, "before", b->obj[j].aux);
    setnum(L, "after", o->aux);
    setnum(L, "entries", (double)o->aux - b->obj[j].aux);
    setnum(L, "bytes", (double)o->size - b->obj[j].size);
    setpath(L, a, i);
    lua_rawseti(L, -2, ++k);
  }
  return 2;
}

/* }====================================================== */


/*
** {======================================================
** Calibration samples
** =======================================================
*/

static int sample_cfunction (lua_State *L) {
  lua_pushinteger(L, lua_gettop(L));
  return 1;
}

/***
One fresh object of a known shape, built without garbage, for calibration.
@function heap_sample
@tparam string kind "string", "userdata", "cclosure" or "table"
@tparam[opt] integer a size: bytes, upvalues, array slots
@tparam[opt] integer b string seed, user values (5.4), hash slots
@return the object
*/
/*
** sample(kind, a, b): one fresh object of a known shape, built without
** garbage, so that its cost is the exact change of the heap's size.
** "string" a bytes (b seeds the contents), "userdata" a bytes with b user
** values (5.4), "cclosure" with a upvalues, "table" a array and b hash
** slots (lua_createtable).
*/
static int l_sample (lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  int a = (int)luaL_optinteger(L, 2, 0), b = (int)luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, a >= 0 && a <= (1 << 20), 2, "size out of range");
  luaL_argcheck(L, b >= 0 && b <= (1 << 20), 3, "size out of range");
  if (strcmp(kind, "string") == 0) {
    /* malloc, not a Lua buffer: no garbage beside the string */
    char *p = (char *)malloc((size_t)a + 1);
    int i;
    if (p == NULL) return luaL_error(L, "not enough memory");
    for (i = 0; i < a; i++)
      p[i] = (char)('a' + (((unsigned)b * 7919u + (unsigned)i * 31u +
                            ((unsigned)b >> (i % 13))) % 26u));  /* no int overflow */
    if (a >= 4) memcpy(p, &b, 4);
    lua_pushlstring(L, p, (size_t)a);
    free(p);
  }
  else if (strcmp(kind, "userdata") == 0) {
#if LUA_VERSION_NUM >= 504
    lua_newuserdatauv(L, (size_t)a, b);
#else
    lua_newuserdata(L, (size_t)a);
#endif
  }
  else if (strcmp(kind, "cclosure") == 0) {
    int i;
    luaL_argcheck(L, a <= 200, 2, "too many upvalues");
    for (i = 0; i < a; i++) lua_pushboolean(L, 1);
    lua_pushcclosure(L, sample_cfunction, a);
  }
  else if (strcmp(kind, "table") == 0)
    lua_createtable(L, a, b);
  else
    return luaL_argerror(L, 1, "unknown sample kind");
  return 1;
}

/***
Bytes `lua_dump` writes for a Lua function (counted, nothing allocated).
@function heap_dumpsize
@tparam function f a Lua function
@treturn integer bytes
*/
static int l_dumpsize (lua_State *L) {
  size_t len = 0;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_argcheck(L, !lua_iscfunction(L, 1), 1, "Lua function expected");
  lua_settop(L, 1);
  mp_dump(L, count_writer, &len);
  mp_pushint(L, len);
  return 1;
}

/***
The running thread, which Lua 5.1 code cannot get on the main thread.
@function heap_thread
@treturn thread
*/
static int l_thread (lua_State *L) {
  lua_pushthread(L);
  return 1;
}

/***
Bytes of C buffers that the heap walks of this state hold now.
@function heap_walk_buffers
@treturn integer bytes
*/
static int l_walk_buffers (lua_State *L) {
  mp_pushint(L, memprobe_ctx(L)->heap_bytes);
  return 1;
}

/* }====================================================== */


void memprobe_open_heap (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "heap_dumpsize",     l_dumpsize },
    { "heap_sample",       l_sample },
    { "heap_snapshot",     l_snapshot },
    { "heap_thread",       l_thread },
    { "heap_walk_buffers", l_walk_buffers },
    { NULL, NULL }
  };
  static const luaL_Reg methods[] = {
    { "added",     l_added },
    { "census",    l_census },
    { "close",     l_close },
    { "referrers", l_referrers },
    { "rows",      l_rows },
    { "stats",     l_stats },
    { "step",      l_step },
    { NULL, NULL }
  };
  static const luaL_Reg meta[] = {
    { "__gc",       snap_gc },
    { "__tostring", l_tostring },
    { NULL, NULL }
  };
  (void)c;
  if (luaL_newmetatable(L, SNAP_MT)) {
    mp_setfuncs(L, meta, 0);
    lua_createtable(L, 0, 8);
    mp_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, SNAP_MT);
    lua_setfield(L, -2, "__name");
#if LUA_VERSION_NUM >= 504
    lua_pushcfunction(L, snap_gc);
    lua_setfield(L, -2, "__close");
#endif
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, step_body);
  lua_setfield(L, LUA_REGISTRYINDEX, STEP_KEY);
  memprobe_register(L, funcs);
}
