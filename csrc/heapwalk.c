/*
** heapwalk.c: the walk over the Lua heap, through the public API only,
** and its bookkeeping outside the Lua heap.
**
** The walk is breadth-first, so the first referrer of an object lies on a
** shortest path from the roots. Its bookkeeping (one 32-byte record per
** object, an index of them by identity, the edge names) lives in
** heapbook.c's containers, malloc'ed outside the Lua heap and owned by a
** "memprobe.Snapshot" userdata (heap.c), whose __gc frees it: an error
** raised anywhere in the walk leaks nothing. None of them copies itself to
** grow, so that a walk in slices of a few milliseconds never meets a step
** that costs in proportion to the heap. Only the values waiting in the
** queue are in Lua tables, because the public API cannot turn a pointer
** back into a value; their slots are cleared as the walk proceeds.
**
** Each value reached goes through the walker's visit: memprobe_discover
** in the walk (a record, a place in the queue), visit_row in the second
** pass of modules() (a row's count); the expand_* functions do not know
** which pass they serve.
**
** Sizes come from a model that memprobe.heap measured on the running VM
** (heapmodel.c, docs/heap.md); nothing here knows a struct layout.
*/
#include "internal.h"
#include "heap.h"

#include <math.h>
#include <string.h>


#define ARENA     65536     /* bytes of one chunk of edge names */
#define EPHPASSES 8         /* re-expansions of ephemeron tables */
#define SORTRUN   64        /* prototypes the final sort moves per unit */
#define RESERVE   1e-4      /* seconds kept for the end of a timed step */


/*
** {======================================================
** Bookkeeping outside the Lua heap
** =======================================================
*/

void memprobe_nomem (lua_State *L) {
  luaL_error(L, "not enough memory for the heap walk");
}

void *memprobe_xrealloc (lua_State *L, snap *s, void *p, size_t osz,
                         size_t nsz) {
  void *q = memprobe_book_alloc(&s->book, p, osz, nsz);
  if (q == NULL && nsz > 0) memprobe_nomem(L);
  return q;
}

static void *push (lua_State *L, snap *s, mp_vec *v, size_t elsize) {
  void *e = memprobe_vec_push(&s->book, v, elsize);
  if (e == NULL) memprobe_nomem(L);
  return e;
}

void memprobe_queue_free (snap *s) {
  uint32_t i;
  for (i = 0; s->qc != NULL && i <= s->qcmask; i++)
    memprobe_book_alloc(&s->book, s->qc[i], sizeof(qchunk), 0);
  memprobe_book_alloc(&s->book, s->qspare, sizeof(qchunk), 0);
  if (s->qc != NULL)
    memprobe_book_alloc(&s->book, s->qc,
                        ((size_t)s->qcmask + 1) * sizeof(qchunk *), 0);
  s->qc = NULL;
  s->qspare = NULL;
  s->qcmask = s->qhead = s->qtail = 0;
}

/* Frees every buffer; idempotent (the __gc and close()). */
void memprobe_snap_free (snap *s) {
  mp_book *b = &s->book;
  if (s->ctx == NULL) return;
  memprobe_queue_free(s);
  memprobe_book_alloc(b, s->sort.perm, (size_t)s->proto.n * 4, 0);
  memprobe_book_alloc(b, s->sort.tmp, (size_t)s->proto.n * 4, 0);
  memprobe_book_unmap(b, s->p2.seen, s->p2.seensize);
  memprobe_tally_free(s);
  memprobe_book_alloc(b, s->p2.shared,
                      (size_t)(s->nroots + 1) * sizeof(double), 0);
  memprobe_book_alloc(b, s->reg, s->regcap * sizeof(*s->reg), 0);
  memprobe_vec_free(b, &s->obj, sizeof(hobj));
  memprobe_vec_free(b, &s->e.log, sizeof(mp_edge));
  memprobe_vec_free(b, &s->e.off, sizeof(uint32_t));
  memprobe_dom_free(s);
  memprobe_index_free(b, &s->index);
  memprobe_vec_free(b, &s->proto, sizeof(pinfo));
  memprobe_index_free(b, &s->pindex);
  memprobe_vec_free(b, &s->names, sizeof(char *));
  memprobe_index_free(b, &s->nindex);
  while (s->arena != NULL) {
    char *prev;
    memcpy(&prev, s->arena, sizeof(prev));
    memprobe_book_alloc(b, s->arena, ARENA, 0);
    s->arena = prev;
  }
  memset(s, 0, sizeof(*s));
  s->closed = 1;
}

uint32_t memprobe_mix (uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (uint32_t)x;
}

uint32_t memprobe_hashptr (const void *p) {
  return memprobe_mix((uint64_t)(uintptr_t)p);
}

static int rehash_obj (const void *owner, uint32_t r, uint32_t *h) {
  const hobj *o = REC((const snap *)owner, r);
  if (o->type == T_PROTO) return 0;  /* in pindex instead */
  *h = memprobe_hashptr(o->p);
  return 1;
}

/* Record of identity p (hash h), or -1 and in *slot where it goes. */
int64_t memprobe_find (const snap *s, const void *p, uint32_t h,
                       uint32_t *slot) {
  uint32_t i;
  MP_PROBE(&s->index, h, i) {
    uint32_t r = MP_VALUE(s->index.v[i]);
    if (REC(s, r)->p == p) return r;
  }
  *slot = i;
  return -1;
}

/* Whether the walk holds max_objects records (it is truncated then): no
** record more, an object's or a part's. */
static int full (snap *s) {
  if (s->obj.n < s->max_objects) return 0;
  s->truncated = 1;
  return 1;
}

int64_t memprobe_lookup (const snap *s, const void *p) {
  uint32_t slot;
  return memprobe_find(s, p, memprobe_hashptr(p), &slot);
}

/* A new record; indexed ones go in the slot memprobe_find() gave for hash
** h. */
uint32_t memprobe_newrec (lua_State *L, snap *s, const void *p, int type,
                          int indexed, uint32_t h, uint32_t slot) {
  hobj *o = (hobj *)push(L, s, &s->obj, sizeof(hobj));
  uint32_t r = s->obj.n - 1;
  memset(o, 0, sizeof(*o));
  o->p = p;
  o->type = (uint8_t)type;
  if (s->e.on) *(uint32_t *)push(L, s, &s->e.off, sizeof(uint32_t)) = 0;
  if (indexed && !memprobe_index_put(&s->book, &s->index, slot, h, r,
                                     s->obj.n, rehash_obj, s))
    memprobe_nomem(L);
  return r;
}

/* FNV-1a of a name as kept: at most NAMEMAX bytes, up to a NUL. */
static uint32_t namehash (const char *str, size_t len) {
  uint32_t h = 2166136261u;
  size_t k;
  for (k = 0; k < len && str[k] != '\0'; k++)
    h = (h ^ (unsigned char)str[k]) * 16777619u;
  return h;
}

static const char *name_at (const snap *s, uint32_t id) {
  return *MP_AT(&s->names, id, char *);
}

static int rehash_name (const void *owner, uint32_t id, uint32_t *h) {
  const char *a = name_at((const snap *)owner, id);
  *h = namehash(a, strlen(a));
  return 1;
}

/* Interns an edge name; returns its number + 1. */
uint32_t memprobe_intern (lua_State *L, snap *s, const char *str, size_t len) {
  uint32_t h, i, id;
  char *a;
  if (len > NAMEMAX) len = NAMEMAX;
  h = namehash(str, len);
  MP_PROBE(&s->nindex, h, i) {
    id = MP_VALUE(s->nindex.v[i]);
    a = *MP_AT(&s->names, id, char *);
    if (strncmp(a, str, len) == 0 && a[len] == '\0')
      return id + 1;
  }
  if (s->arena == NULL || s->aused + len + 1 > ARENA) {  /* a new chunk */
    char *c = (char *)memprobe_xrealloc(L, s, NULL, 0, ARENA);
    memcpy(c, &s->arena, sizeof(s->arena));
    s->arena = c;
    s->aused = sizeof(char *);
  }
  a = s->arena + s->aused;
  memcpy(a, str, len);
  a[len] = '\0';
  s->aused += (uint32_t)len + 1;
  *(char **)push(L, s, &s->names, sizeof(char *)) = a;
  id = s->names.n - 1;
  if (!memprobe_index_put(&s->book, &s->nindex, i, h, id, s->names.n,
                          rehash_name, s))
    memprobe_nomem(L);
  return id + 1;
}

const char *memprobe_name_of (const snap *s, uint32_t name) {
  return name ? name_at(s, name - 1) : "?";
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

int memprobe_collectable (int t) {
  return t == LUA_TSTRING || t == LUA_TTABLE || t == LUA_TFUNCTION ||
         t == LUA_TUSERDATA || t == LUA_TTHREAD || t == T_CDATA;
}

const void *memprobe_ident (lua_State *L, int i, int t) {
  return t == LUA_TSTRING ? (const void *)lua_tostring(L, i)
                          : lua_topointer(L, i);
}

static void part_walk (walker *w, uint32_t r, int32_t label);

/* Sets up the stack slots of a walker whose queue is at stack index W. */
void memprobe_walker_init (walker *w, lua_State *L, snap *s, int ud, int W) {
  w->L = L; w->s = s; w->ud = ud; w->W = W;
  w->units = 0; w->limit = UINT64_MAX; w->deadline = 0;
  w->last = w->gap = w->maxgap = 0;
  w->visit = memprobe_discover;
  w->part = part_walk;
  lua_pushnil(L);
  w->hseg = lua_gettop(L);
  lua_pushnil(L);
  w->tseg = lua_gettop(L);
  w->hsegno = w->tsegno = 0;
}

/* The queue is the snapshot's user value, which debug.getuservalue
** reaches: what was written into it is refused, not walked. */
static void tampered (lua_State *L) {
  luaL_error(L, "heap walk: its queue was changed from outside");
}

/* Brings segment k of the queue (W[k]) into the stack slot 'slot'. */
static void segment (walker *w, int slot, uint32_t *held, uint32_t k) {
  if (*held == k) return;
  lua_rawgeti(w->L, w->W, (int)k);
  if (!lua_istable(w->L, -1)) tampered(w->L);
  lua_replace(w->L, slot);
  *held = k;
}

/* A segment starts at position p: its Lua table (the spare W[0] if any)
** and its C chunk (the spare one if any). */
static void segment_start (walker *w, uint32_t p) {
  lua_State *L = w->L;
  snap *s = w->s;
  uint32_t k = (p >> SEGBITS) + 1, used = (p >> SEGBITS) - (s->qhead >> SEGBITS);
  if (s->qc == NULL || used > s->qcmask) {  /* a bigger ring of chunks */
    uint32_t ncap = s->qc ? (s->qcmask + 1) * 2 : 16, q;
    qchunk **nc = (qchunk **)memprobe_xrealloc(L, s, NULL, 0,
                                               ncap * sizeof(qchunk *));
    memset(nc, 0, ncap * sizeof(qchunk *));
    for (q = 0; s->qc != NULL && q <= s->qcmask; q++)
      if (s->qc[q] != NULL) {  /* segments in use are consecutive */
        uint32_t seg = (s->qhead >> SEGBITS) +
                       ((q - (s->qhead >> SEGBITS)) & s->qcmask);
        nc[seg & (ncap - 1)] = s->qc[q];
      }
    memprobe_xrealloc(L, s, s->qc,
                      ((size_t)s->qcmask + 1) * sizeof(qchunk *), 0);
    s->qc = nc;
    s->qcmask = ncap - 1;
  }
  if (s->qc[(k - 1) & s->qcmask] == NULL) {
    qchunk *c = s->qspare;
    if (c == NULL)
      c = (qchunk *)memprobe_xrealloc(L, s, NULL, 0, sizeof(qchunk));
    s->qspare = NULL;
    s->qc[(k - 1) & s->qcmask] = c;
  }
  lua_rawgeti(L, w->W, (int)k);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_rawgeti(L, w->W, Q_SPARE);  /* the spare segment, if any */
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_createtable(L, (int)SEG, 0);
    }
    else {
      lua_pushnil(L);
      lua_rawseti(L, w->W, Q_SPARE);
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, w->W, (int)k);
  }
  lua_replace(L, w->tseg);
  w->tsegno = k;
}

void memprobe_enqueue (walker *w, int vi, uint32_t rec, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  uint32_t p = s->qtail;
  qchunk *c;
  vi = mp_absindex(L, vi);
  if ((p & (SEG - 1)) == 0 || p == s->qhead)
    segment_start(w, p);
  else
    segment(w, w->tseg, &w->tsegno, (p >> SEGBITS) + 1);
  lua_pushvalue(L, vi);
  lua_rawseti(L, w->tseg, (int)(p & (SEG - 1)) + 1);
  c = s->qc[(p >> SEGBITS) & s->qcmask];
  c->rec[p & (SEG - 1)] = rec;
  c->label[p & (SEG - 1)] = label;
  s->qtail++;
}

/* Pushes the value at the head of the queue; its record and label. */
static void queue_head (walker *w, uint32_t *rec, int32_t *label) {
  snap *s = w->s;
  uint32_t p = s->qhead;
  const qchunk *c = s->qc[(p >> SEGBITS) & s->qcmask];
  segment(w, w->hseg, &w->hsegno, (p >> SEGBITS) + 1);
  lua_rawgeti(w->L, w->hseg, (int)(p & (SEG - 1)) + 1);
  *rec = c->rec[p & (SEG - 1)];
  *label = c->label[p & (SEG - 1)];
  if (*rec >= s->obj.n || lua_type(w->L, -1) != REC(s, *rec)->type ||
      lua_topointer(w->L, -1) != REC(s, *rec)->p)
    tampered(w->L);
}

/* Drops the head of the queue (queue_head brought its segment). A segment
** the head leaves (or that the queue empties) becomes the spare W[0],
** which the next segment reuses: a walk makes no garbage in the heap it
** measures. Its C chunk becomes the spare chunk the same way. */
static void queue_pop (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  uint32_t p = s->qhead, k = (p >> SEGBITS) + 1;
  lua_pushnil(L);
  lua_rawseti(L, w->hseg, (int)(p & (SEG - 1)) + 1);
  if ((p & (SEG - 1)) == SEG - 1 || p + 1 == s->qtail) {
    qchunk **c = &s->qc[(k - 1) & s->qcmask];
    lua_pushnil(L);
    lua_rawseti(L, w->W, (int)k);
    lua_pushvalue(L, w->hseg);
    lua_rawseti(L, w->W, Q_SPARE);  /* the previous spare, if any, goes */
    w->hsegno = 0;
    if (w->tsegno == k) w->tsegno = 0;
    memprobe_xrealloc(L, s, s->qspare, sizeof(qchunk), 0);
    s->qspare = *c;
    *c = NULL;
  }
  s->qhead++;
}

/*
** The edge log (heap.h): a run opens when a record's expansion starts and
** closes when it is complete, so that an expansion spread over steps
** still makes one run; a restarted one (step() in heap.c) leaves its
** run behind, unreferenced, and opens another.
*/
static void edges_open (lua_State *L, snap *s, uint32_t r) {
  mp_edge *h;
  if (s->e.log.n >= EDGE_MAX - 1) { s->e.full = 1; return; }
  if (s->e.log.n == 0) {  /* position 0 stands for none */
    h = (mp_edge *)push(L, s, &s->e.log, sizeof(mp_edge));
    h->to = h->kn = 0;
  }
  h = (mp_edge *)push(L, s, &s->e.log, sizeof(mp_edge));
  h->to = 0;
  h->kn = r;
  s->e.run = s->e.log.n - 1;
  s->e.head = r;
  s->e.eph = 0;
}

static void edges_close (snap *s) {
  uint32_t r = s->e.head, *off = MP_AT(&s->e.off, r, uint32_t);
  if (*off != 0) s->e.edges -= EDGE(s, *off)->to;  /* a run made again */
  EDGE(s, s->e.run)->to = s->e.log.n - s->e.run - 1;
  s->e.edges += EDGE(s, s->e.run)->to;
  *off = s->e.run;
  if (!s->e.eph) REC(s, r)->flags |= F_EDGES;
  s->e.run = 0;
}

/* An edge of the open run: from its record (parent, + 1) to record to. */
static void note_edge (lua_State *L, snap *s, uint32_t parent, uint32_t to,
                       int edge, uint32_t name) {
  mp_edge *e;
  if (s->e.run == 0 || parent != s->e.head + 1) return;
  if (s->e.log.n >= EDGE_MAX) { s->e.full = 1; return; }
  if ((s->e.log.n & (MP_CHUNK - 1)) != 0) {  /* room in the last chunk */
    e = MP_AT(&s->e.log, s->e.log.n, mp_edge);
    s->e.log.n++;
  }
  else
    e = (mp_edge *)push(L, s, &s->e.log, sizeof(mp_edge));
  e->to = to;
  e->kn = (uint32_t)edge | (name < EDGE_NAMEMAX ? name : EDGE_NAMEMAX) << 4;
}

static void note_referrer (snap *s, uint32_t parent, int edge,
                           uint32_t name) {
  referrers *f = &s->refs;
  if (f->n < 16) {
    f->rec[f->n] = parent;
    f->edge[f->n] = (uint32_t)edge;
    f->name[f->n] = name;
    f->n++;
  }
}

/* The identity of the value at vi of type t (a string's contents, with
** their length in *len), or NULL for a value that has none. */
static const void *identity (lua_State *L, int vi, int t, size_t *len) {
  if (!memprobe_collectable(t)) return NULL;
  return t == LUA_TSTRING ? (const void *)lua_tolstring(L, vi, len)
                          : lua_topointer(L, vi);
}

/* Strings and cdata are leaves: nothing to expand. */
#define LEAF(t)  ((t) == LUA_TSTRING || (t) == T_CDATA)

/*
** The walk's visit: reaches the value at vi (of type t) from record
** 'parent' (+1; 0 for none) through an edge, with the label of the
** expansion. A new object gets a record and, unless it is a leaf, a place
** in the queue; a known one is queued again only when its label changes
** (a second root reaches it). Returns the object's record, or -1 when it
** has none.
*/
int64_t memprobe_discover (walker *w, int vi, int t, uint32_t parent,
                           int edge, uint32_t name, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  size_t len = 0;
  const void *p;
  int64_t found;
  uint32_t r, h, slot = 0;
  hobj *o;
  if (vi < 0) vi = mp_absindex(L, vi);
  if ((p = identity(L, vi, t, &len)) == NULL) return -1;
  h = memprobe_hashptr(p);
  found = memprobe_find(s, p, h, &slot);
  if (p == s->refs.target && parent != 0) note_referrer(s, parent, edge, name);
  if (found >= 0) {
    int32_t nl;
    o = REC(s, found);
    if (o->flags & F_IGNORE) return found;
    note_edge(L, s, parent, (uint32_t)found, edge, name);
    if (o->flags & F_ROOT) return found;
    nl = join(o->label, label);
    if (nl == o->label) return found;
    o->label = nl;
    if (!LEAF(t)) memprobe_enqueue(w, vi, (uint32_t)found, nl);
    return found;
  }
  if (full(s)) return -1;
  if (s->failafter > 0 && s->obj.n >= (uint32_t)s->failafter)
    luaL_error(L, "heap walk: failing on purpose after %d objects",
               s->failafter);
  r = memprobe_newrec(L, s, p, t, 1, h, slot);
  note_edge(L, s, parent, r, edge, name);
  o = REC(s, r);
  o->parent = parent;
  o->edge = (uint8_t)edge;
  o->name = name;
  o->label = label;
  if (memprobe_shared_object(L, vi, t)) o->flags |= F_HOST;
  if (t == LUA_TSTRING)
    SETSIZE(o, stringsize(&s->m, len));
  else if (t == T_CDATA)
    SETSIZE(o, s->m.cdata);
  else
    memprobe_enqueue(w, vi, r, label);
  return r;
}

/*
** The second pass's visit: for the row walked (p2.label), an object of
** that row or a shared one, once per row; a shared one's bytes add to the
** row's shared column. Roots and the walk's own objects stop it.
*/
static int64_t visit_row (walker *w, int vi, int t, uint32_t parent,
                          int edge, uint32_t name, int32_t label) {
  snap *s = w->s;
  pass2 *p2 = &s->p2;
  size_t len;
  const void *p = identity(w->L, vi, t, &len);
  int64_t found = p ? memprobe_lookup(s, p) : -1;
  hobj *o;
  (void)parent; (void)edge; (void)name;
  if (found < 0) return -1;
  o = REC(s, found);
  if ((o->flags & (F_IGNORE | F_ROOT)) ||
      (o->label != p2->label && o->label != SHARED) ||
      p2->seen[found] == (uint32_t)p2->label)
    return found;
  p2->seen[found] = (uint32_t)p2->label;
  if (o->label == SHARED) p2->shared[p2->label] += SIZE(o);
  if (!LEAF(t)) memprobe_enqueue(w, vi, (uint32_t)found, label);
  return found;
}

/* Reaches the value at vi through the walker's visit. */
static int64_t reach (walker *w, int vi, uint32_t parent, int edge,
                      uint32_t name, int32_t label) {
  return w->visit(w, vi, lua_type(w->L, vi), parent, edge, name, label);
}

/* A part of a function (upvalue, prototype) that has no value of its
** own: a record with a size and a label, outside the queue. The walk
** joins the label; the second pass counts a shared one for the row. */
static void part_walk (walker *w, uint32_t r, int32_t label) {
  snap *s = w->s;
  hobj *o = REC(s, r);
  o->label = join(o->label, label);
  if (s->e.run != 0) {  /* from the function expanded now */
    if (o->type == T_PROTO) note_edge(w->L, s, s->e.head + 1, r, E_PROTO, 0);
    else note_edge(w->L, s, s->e.head + 1, r, o->edge, o->name);
  }
}

static void part_row (walker *w, uint32_t r, int32_t label) {
  pass2 *p2 = &w->s->p2;
  const hobj *o = REC(w->s, r);
  (void)label;
  if (o->label == SHARED && p2->seen[r] != (uint32_t)p2->label) {
    p2->seen[r] = (uint32_t)p2->label;
    p2->shared[p2->label] += SIZE(o);
  }
}

/* The walker of the second pass of modules(). */
void memprobe_walker_rows (walker *w) {
  w->visit = visit_row;
  w->part = part_row;
}

/* Counts the bytes lua_dump writes: a measure of a prototype. */
int memprobe_count_writer (lua_State *L, const void *p, size_t sz,
                           void *ud) {
  (void)L; (void)p;
  *(size_t *)ud += sz;
  return 0;
}

static uint32_t protokey (const void *src, int line, int last) {
  return memprobe_mix((uint64_t)(uintptr_t)src ^
                      ((uint64_t)(unsigned)line << 32) ^
                      (uint64_t)(unsigned)last * 0x9e3779b97f4a7c15ULL);
}

static int rehash_proto (const void *owner, uint32_t id, uint32_t *h) {
  const pinfo *q = PROTO((const snap *)owner, id);
  *h = protokey(q->src, q->line, q->last);
  return 1;
}

/*
** The prototype of the Lua function at fi, counted once however many
** closures share it. It is keyed by source, linedefined and
** lastlinedefined: the API gives no pointer to it. Its size is a linear
** function of its lua_dump length, fitted at calibration. Its record, or
** UINT32_MAX when the walk is at max_objects (expand_lfunction's aux + 1
** is then 0: no part).
*/
static uint32_t proto_of (walker *w, int fi, const lua_Debug *ar) {
  lua_State *L = w->L;
  snap *s = w->s;
  uint32_t i, r, h = protokey(ar->source, ar->linedefined,
                              ar->lastlinedefined);
  size_t len = 0;
  pinfo *q;
  MP_PROBE(&s->pindex, h, i) {
    q = PROTO(s, MP_VALUE(s->pindex.v[i]));
    if (q->src == ar->source && q->line == ar->linedefined &&
        q->last == ar->lastlinedefined)
      return q->obj;
  }
  if (full(s)) return UINT32_MAX;
  r = memprobe_newrec(L, s, ar->source, T_PROTO, 0, 0, 0);
  q = (pinfo *)push(L, s, &s->proto, sizeof(pinfo));
  q->src = ar->source;
  q->line = ar->linedefined;
  q->last = ar->lastlinedefined;
  q->obj = r;
  if (!memprobe_index_put(&s->book, &s->pindex, i, h, s->proto.n - 1,
                          s->proto.n, rehash_proto, s))
    memprobe_nomem(L);
  REC(s, r)->parent = (uint32_t)ar->linedefined;  /* protos have no path */
  REC(s, r)->aux = s->proto.n - 1;
  lua_pushvalue(L, fi);
  mp_dump(L, memprobe_count_writer, &len);
  lua_pop(L, 1);
  SETSIZE(REC(s, r), s->m.pbase + s->m.pbyte * (double)len);
  REC(s, r)->name = memprobe_intern(L, s, ar->short_src,
                                    strlen(ar->short_src));
  REC(s, r)->edge = E_PROTO;
  if (memprobe_shared_proto(L, fi)) REC(s, r)->flags |= F_HOST;
  return r;
}

/*
** One unit of work; 0 when the step's budget is spent. A timed step reads
** the clock every 16 units and stops while what is left exceeds the
** longest stretch of 16 units seen in this step and the one before (at
** most a quarter of the step) plus RESERVE, the time its return takes:
** the units under way and the way out fit in the budget.
*/
int memprobe_budget (walker *w) {
  if (w->units >= w->limit) return 0;
  w->units++;
  if (w->deadline > 0 && (w->units & 15) == 0) {
    double t = memprobe_now(), gap = t - w->last, margin;
    w->last = t;
    if (gap > w->gap) w->gap = gap;
    margin = w->gap > w->s->gap ? w->gap : w->s->gap;
    if (t + RESERVE + (margin < w->maxgap ? margin : w->maxgap) >=
        w->deadline) {
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

/* The edge from a table to the value under the key at ki, of type kt (d
** when a number); kr is the key's record, or -1. A string's record keeps the name it is as a key,
** so that each key string is interned once. */
static int keyedge (walker *w, int ki, int kt, lua_Number d, int64_t kr,
                    uint32_t *name) {
  lua_State *L = w->L;
  switch (kt) {
    case LUA_TSTRING: {
      size_t len;
      const char *k;
      if (kr >= 0 && REC(w->s, kr)->aux != 0) {
        *name = REC(w->s, kr)->aux;
        return E_FIELD;
      }
      k = lua_tolstring(L, ki, &len);
      *name = memprobe_intern(L, w->s, k, len);
      if (kr >= 0) REC(w->s, kr)->aux = *name;
      return E_FIELD;
    }
    case LUA_TNUMBER: {
      if (d >= 0 && d < 4294967296.0 && d == floor(d)) {
        *name = (uint32_t)d;
        return E_INDEX;
      }
      *name = 0;
      return E_NUMKEY;
    }
    default:
      *name = (uint32_t)kt;
      return E_OBJKEY;
  }
}

/* Counts the entry whose key is on top - 1 for the table's size: integer
** keys per power of two, as the VM's rehash does. Returns the key as a
** number (0 when it is not one). */
static lua_Number count_key (snap *s, lua_State *L, int kt, int ki) {
  lua_Number d = 0;
  s->nent++;
  if (kt == LUA_TNUMBER) {
    d = lua_tonumber(L, ki);
    if (d >= 1 && d <= 2147483648.0 && d == floor(d)) {
      s->nums[ceillog2((uint32_t)d)]++;
      s->nint++;
    }
  }
  return d;
}

/* Reaches the key and the value on top of the stack, entries of the table
** of record r whose weak mode is 'weak'. */
static void table_entry (walker *w, uint32_t r, int weak, int32_t label) {
  lua_State *L = w->L;
  int top = lua_gettop(L);
  int kt = lua_type(L, top - 1), vt = lua_type(L, top);
  lua_Number d = count_key(w->s, L, kt, top - 1);
  int64_t kr = -1;
  int follow = 1;
  /* strings are values to weak tables: never cleared, always kept */
  if (!(weak & 1) || kt == LUA_TSTRING)
    kr = w->visit(w, top - 1, kt, r + 1, E_KEY, 0, label);
  if ((weak & 2) && vt != LUA_TSTRING) return;
  if ((weak & 1) && LUA_VERSION_NUM >= 502 && memprobe_collectable(kt) &&
      kt != LUA_TSTRING) {
    /* ephemeron: the value lives while the key does */
    int64_t k = memprobe_lookup(w->s, memprobe_ident(L, top - 1, kt));
    follow = k >= 0 && REC(w->s, k)->label != 0;
  }
  if (follow && memprobe_collectable(vt)) {
    uint32_t name;
    int edge = keyedge(w, top - 1, kt, d, kr, &name);
    w->visit(w, top, vt, r + 1, edge, name, label);
  }
}

/*
** Expands a table (at ti, record r) from the key saved in W[-1], if any:
** its metatable first, then its entries, counting integer keys per power
** of two for the size. Returns 0 when the budget ran out mid-way.
*/
static int expand_table (walker *w, int ti, uint32_t r, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  int weak = 0;
  if (lua_getmetatable(L, ti)) {
    int mt = lua_gettop(L);
    weak = weakmode(L, mt);
    if (!s->started) reach(w, mt, r + 1, E_MT, 0, label);
    lua_pop(L, 1);
  }
  if (!s->started) {
    memset(s->nums, 0, sizeof(s->nums));
    s->nint = s->nent = 0;
    s->started = 1;
  }
  if (weak == 1 && LUA_VERSION_NUM >= 502) {  /* an ephemeron table */
    s->e.eph = 1;
    lua_rawgeti(L, w->W, Q_EPHEMERONS);
    lua_pushvalue(L, ti);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
  }
  if (s->keysaved) lua_rawgeti(L, w->W, Q_KEY);
  else lua_pushnil(L);
  for (;;) {
    s->in_next = 1;
    if (!lua_next(L, ti)) break;
    s->in_next = 0;
    table_entry(w, r, weak, label);
    lua_pop(L, 1);
    if (!memprobe_budget(w) && !s->atomic) {
      lua_rawseti(L, w->W, Q_KEY);  /* resume from this key */
      s->keysaved = 1;
      return 0;
    }
  }
  s->in_next = 0;
  if (!(REC(s, r)->flags & F_SIZED)) {
    hobj *o = REC(s, r);
    SETSIZE(o, memprobe_tablebytes(&s->m, lua_topointer(L, ti), s->nums,
                                   s->nint, s->nent));
    o->aux = s->nent;
    o->flags |= F_SIZED;
  }
  return 1;
}

#if defined(MP_HAS_UPVALUEID)
/* Upvalue i of the Lua function at fi (record r): shared upvalues have
** one identity, so they are counted once; their record is made at the
** function's first expansion. */
static void upvalue_part (walker *w, int fi, uint32_t r, int i, int edge,
                          uint32_t name, int32_t label) {
  snap *s = w->s;
  const void *id = lua_upvalueid(w->L, fi, i);
  uint32_t h = memprobe_hashptr(id), slot = 0;
  int64_t u = memprobe_find(s, id, h, &slot);
  if (u < 0 && !(REC(s, r)->flags & F_SIZED)) {
    hobj *uo;
    if (full(s)) return;
    u = memprobe_newrec(w->L, s, id, T_UPVAL, 1, h, slot);
    uo = REC(s, u);
    SETSIZE(uo, s->m.upval);
    uo->parent = r + 1;
    uo->edge = (uint8_t)edge;
    uo->name = name;
  }
  if (u >= 0) w->part(w, (uint32_t)u, label);
}
#endif

/* A Lua function: its prototype (a part), its upvalues (parts and
** values); returns its size. */
static double expand_lfunction (walker *w, int fi, uint32_t r,
                                int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  lua_Debug ar;
  const char *up;
  double ups = 0;
  int i;
  lua_pushvalue(L, fi);
  lua_getinfo(L, ">Su", &ar);
  if (!(REC(s, r)->flags & F_SIZED))  /* its first expansion */
    REC(s, r)->aux = proto_of(w, fi, &ar) + 1;
  if (REC(s, r)->aux) w->part(w, REC(s, r)->aux - 1, label);
  for (i = 1; (up = lua_getupvalue(L, fi, i)) != NULL; i++) {
    int edge = *up ? E_UPVAL : E_UPIDX;
    uint32_t name = *up ? memprobe_intern(L, s, up, strlen(up))
                        : (uint32_t)i;
#if defined(MP_HAS_UPVALUEID)
    upvalue_part(w, fi, r, i, edge, name, label);
#else
    ups += s->m.upval;  /* 5.1 names no upvalue: one per closure */
#endif
    reach(w, -1, r + 1, edge, name, label);
    lua_pop(L, 1);
  }
  return s->m.lcl + s->m.lcl_up * (i - 1) + ups;
}

static void expand_function (walker *w, int fi, uint32_t r, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  double size;
  hobj *o;
  if (lua_iscfunction(L, fi)) {
    int i;
    for (i = 1; lua_getupvalue(L, fi, i) != NULL; i++) {
      reach(w, -1, r + 1, E_UPIDX, (uint32_t)i, label);
      lua_pop(L, 1);
    }
    size = i == 1 ? s->m.ccl0 : s->m.ccl + s->m.ccl_up * (i - 1);
  }
  else
    size = expand_lfunction(w, fi, r, label);
  o = REC(s, r);
  if (!(o->flags & F_SIZED)) SETSIZE(o, size);
#if LUA_VERSION_NUM == 501
  lua_getfenv(L, fi);
  reach(w, -1, r + 1, E_ENV, 0, label);
  lua_pop(L, 1);
#endif
  REC(s, r)->flags |= F_SIZED;
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
    uint32_t off = memprobe_intern(L, s, n, len);
    lua_pop(L, 1);
    return off;
  }
  lua_pop(L, 1);
  for (i = 0; i < s->nreg; i++)
    if (s->reg[i].p == p) return s->reg[i].name;
  return memprobe_intern(L, s, "(unnamed metatable)", 19);
}

static void expand_userdata (walker *w, int ui, uint32_t r, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  hobj *o;
  int n;
  uint32_t tname;
  if (lua_getmetatable(L, ui)) {
    tname = udname(w, lua_gettop(L));
    reach(w, -1, r + 1, E_MT, 0, label);
    lua_pop(L, 1);
  }
  else
    tname = memprobe_intern(L, s, "(no metatable)", 14);
  /* another snapshot's user value is its (spent) queue */
  for (n = 1; !mp_testudata(L, ui, SNAP_MT) &&
              mp_getuv(L, ui, n) != LUA_TNONE; n++) {
    reach(w, -1, r + 1, E_UVALUE, (uint32_t)n, label);
    lua_pop(L, 1);
  }
  if (!mp_testudata(L, ui, SNAP_MT)) lua_pop(L, 1);
#if LUA_VERSION_NUM < 504
  n = 1;  /* the environment or the one user value is part of the block */
#endif
  o = REC(s, r);
  if (!(o->flags & F_SIZED)) {
    SETSIZE(o, (n == 1 ? s->m.ud : s->m.udb + s->m.ud_uv * (n - 1)) +
                         (double)mp_rawlen(L, ui));
    o->aux = tname;
    o->flags |= F_SIZED;
  }
}

/* Whether the function at vi is one of the walk's own: memprobe.heap's
** (opts.own) or the C functions that run it, whose stack holds its queue
** segments. */
static int own_frame (walker *w, int vi) {
  const void *p = lua_topointer(w->L, vi);
  lua_CFunction f = lua_tocfunction(w->L, vi);
  int i;
  if (f == memprobe_step_body || f == memprobe_l_snapshot ||
      f == memprobe_l_step || f == memprobe_l_rows)
    return 1;
  for (i = 0; i < w->s->nown; i++)
    if (w->s->own[i] == p) return 1;
  return 0;
}

/*
** A thread: the function and locals of every frame, and for a thread
** other than the running one the values on its stack. On the thread that
** walks, the frames of the walk's own functions (own_frame) are
** skipped: their locals are the walk's temporaries, garbage once it
** returns, and counting them would make every diff report them as added
** and freed (and let a new object that reuses one's address pass for it).
*/
static int expand_thread (walker *w, int ti, uint32_t r, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  lua_State *co = lua_tothread(L, ti);
  lua_Debug ar;
  int level, i, k;
  const char *name;
  /* lua_getstack walks from the top, so level n costs n: a deep stack is
  ** expanded over several steps, from the level saved in s->tlevel, and
  ** each level costs units in proportion to its depth */
  for (level = s->tlevel; lua_getstack(co, level, &ar); level++) {
    for (k = 0; k <= (level >> 10); k++)
      if (!memprobe_budget(w) && level > s->tlevel) {
        s->tlevel = level;
        return 0;
      }
    if (!lua_checkstack(co, 2)) break;
    lua_getinfo(co, "f", &ar);
    lua_xmove(co, L, 1);
    if (co == L && own_frame(w, -1)) {
      lua_pop(L, 1);
      continue;
    }
    reach(w, -1, r + 1, E_FRAME, (uint32_t)level, label);
    lua_pop(L, 1);
    for (i = 1; (name = lua_getlocal(co, &ar, i)) != NULL; i++) {
      lua_xmove(co, L, 1);
      reach(w, -1, r + 1, E_LOCAL,
                        memprobe_intern(L, w->s, name, strlen(name)), label);
      lua_pop(L, 1);
    }
  }
  s->tlevel = 0;
  if (co != L) {
    int top = lua_gettop(co);
    for (i = 1; i <= top && lua_checkstack(co, 1); i++) {
      lua_pushvalue(co, i);
      lua_xmove(co, L, 1);
      reach(w, -1, r + 1, E_STACK, (uint32_t)i, label);
      lua_pop(L, 1);
    }
  }
#if LUA_VERSION_NUM == 501
  lua_getfenv(L, ti);
  reach(w, -1, r + 1, E_ENV, 0, label);
  lua_pop(L, 1);
#endif
  SETSIZE(REC(w->s, r), w->s->m.thread);
  REC(w->s, r)->flags |= F_SIZED;
  return 1;
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
  if (s->phase != PH_WALK || s->ephpass >= EPHPASSES ||
      s->obj.n == s->ephseen)
    return 0;
  s->ephpass++;
  s->ephseen = s->obj.n;
  lua_rawgeti(L, w->W, Q_EPHEMERONS);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    int64_t r = memprobe_lookup(s, lua_topointer(L, -2));
    lua_pop(L, 1);  /* the key is on top now */
    if (r >= 0) {
      memprobe_enqueue(w, lua_gettop(L), (uint32_t)r, REC(s, r)->label);
      any = 1;
    }
  }
  lua_pop(L, 1);
  return any;
}

/*
** Runs the walk until the queue is empty (returns 1) or the step's budget
** is spent (returns 0). The head of the queue stays in place until it is
** fully expanded.
*/
int memprobe_run (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  int base = lua_gettop(L);
  for (;;) {
    uint32_t r;
    int32_t label;
    int done = 1;
    if (s->qhead == s->qtail) {
      if (!requeue_ephemerons(w)) return 1;
      continue;
    }
    if (!memprobe_budget(w)) return 0;
    queue_head(w, &r, &label);
    if (s->e.on && s->e.run == 0 && !(REC(s, r)->flags & F_EDGES))
      edges_open(L, s, r);
    switch (lua_type(L, -1)) {
      case LUA_TTABLE: done = expand_table(w, base + 1, r, label); break;
      case LUA_TFUNCTION: expand_function(w, base + 1, r, label); break;
      case LUA_TUSERDATA: expand_userdata(w, base + 1, r, label); break;
      case LUA_TTHREAD: done = expand_thread(w, base + 1, r, label); break;
      default: break;
    }
    lua_settop(L, base);
    if (done) {
      if (s->e.run != 0) edges_close(s);
      queue_pop(w);
      if (s->keysaved) {
        lua_pushnil(L);
        lua_rawseti(L, w->W, Q_KEY);
        s->keysaved = 0;
      }
      s->started = 0;
      s->atomic = 0;
    }
  }
}

/* After the walk, the growths of the indexes still under way go on a
** share per unit, so that the old tables are gone when it is done. */
int memprobe_settle (walker *w) {
  snap *s = w->s;
  mp_book *b = &s->book;
  while (!memprobe_index_settle(b, &s->index, s->obj.n, rehash_obj, s) ||
         !memprobe_index_settle(b, &s->nindex, s->names.n, rehash_name, s) ||
         !memprobe_index_settle(b, &s->pindex, s->proto.n, rehash_proto, s))
    if (!memprobe_budget(w)) return 0;
  return 1;
}

/* Prototypes nested in another one from the same chunk are part of its
** dump: count only the outermost seen. A main chunk spans everything. */
static int cmp_proto (const pinfo *x, const pinfo *y) {
  if (x->src != y->src)
    return (uintptr_t)x->src < (uintptr_t)y->src ? -1 : 1;
  if (x->line != y->line) return x->line < y->line ? -1 : 1;
  return x->last > y->last ? -1 : x->last < y->last;
}

/* Starts merging the pair of runs of q->width that begins at lo. */
static void sort_pair (psort *q, uint32_t np, uint32_t lo) {
  q->lo = q->i = q->k = lo;
  q->j = lo + q->width < np ? lo + q->width : np;
}

/* Merges until the sort is done (1) or the budget ran out (0); 'moved'
** counts the prototypes moved in this step, a unit per SORTRUN. */
static int sort_merge (walker *w, psort *q, uint32_t np, uint32_t *moved) {
  snap *s = w->s;
  while (q->width < np) {
    uint32_t mid = q->lo + q->width < np ? q->lo + q->width : np;
    uint32_t hi = mid + q->width < np ? mid + q->width : np;
    while (q->k < hi) {
      if (++*moved % SORTRUN == 0 && !memprobe_budget(w)) return 0;
      if (q->j >= hi || (q->i < mid && cmp_proto(PROTO(s, q->perm[q->i]),
                                                 PROTO(s, q->perm[q->j])) <= 0))
        q->tmp[q->k++] = q->perm[q->i++];
      else
        q->tmp[q->k++] = q->perm[q->j++];
    }
    if (hi < np)
      sort_pair(q, np, hi);
    else {  /* a pass is over: its output is the next one's input */
      uint32_t *t = q->perm;
      q->perm = q->tmp;
      q->tmp = t;
      q->width = q->width > np / 2 ? np : q->width * 2;
      if (q->width < np) sort_pair(q, np, 0);
      else q->k = 1;  /* sorted: the marking starts after the first */
    }
  }
  return 1;
}

/*
** After the walk, sorts the prototypes by source, first and last line,
** and marks those nested in another of the same chunk (their bytes are
** in its dump). A bottom-up merge sort of their numbers whose cursors
** live in the snapshot (psort), so that it goes on where a step's budget
** stopped it: a unit is SORTRUN prototypes moved or marked. Returns 1
** when done.
*/
int memprobe_sort_protos (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  psort *q = &s->sort;
  uint32_t np = s->proto.n, moved = 0;
  if (q->perm == NULL) {
    if (np == 0) return 1;
    q->perm = (uint32_t *)memprobe_xrealloc(L, s, NULL, 0, (size_t)np * 4);
    q->tmp = (uint32_t *)memprobe_xrealloc(L, s, NULL, 0, (size_t)np * 4);
    q->width = 1;
    q->k = 0;
    q->outer = np;  /* filling perm */
  }
  for (; q->outer == np && q->k < np; q->k++) {
    if (++moved % SORTRUN == 0 && !memprobe_budget(w)) return 0;
    q->perm[q->k] = q->k;
  }
  if (q->outer == np) {  /* filled */
    q->outer = 0;
    if (np > 1) sort_pair(q, np, 0);
  }
  if (!sort_merge(w, q, np, &moved)) return 0;
  /* each prototype is nested in the outermost one before it, outer,
  ** when it has the same source and lies within its lines */
  for (; q->k < np; q->k++) {
    const pinfo *o = PROTO(s, q->perm[q->outer]);
    const pinfo *p = PROTO(s, q->perm[q->k]);
    int last = o->line == 0 ? 0x7fffffff : o->last;
    if (++moved % SORTRUN == 0 && !memprobe_budget(w)) return 0;
    if (p->src == o->src && p->line >= o->line && p->last <= last) {
      hobj *r = REC(s, p->obj);
      r->flags |= F_NESTED;
      r->size = 0;
    }
    else
      q->outer = q->k;
  }
  memprobe_xrealloc(L, s, q->perm, (size_t)np * 4, 0);
  memprobe_xrealloc(L, s, q->tmp, (size_t)np * 4, 0);
  q->perm = q->tmp = NULL;
  return 1;
}

/* }====================================================== */
