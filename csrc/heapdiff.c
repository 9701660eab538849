/*
** heapdiff.c: what one finished snapshot holds that another does not,
** as a job that runs in budgeted slices ("memprobe.Added"), so that the
** diff of two walks of ten million objects holds the host no longer than
** a walk's step does.
**
** heap_added(new, old [, top]) starts the job; job:step([ms]) advances
** it and says true when done; job:result() then gives the groups and the
** tables that grew, as snap:added gave them. Its phases:
**   SCAN    one pass over new's records, a unit each (no Lua allocation):
**           each record is looked up in old once; an added record joins
**           the group of its topmost added ancestor, a table in both that
**           grew may enter the 'top' kept in a bounded heap;
**   GROUPS  a Lua table per group, with its path;
**   GROWN   a Lua table per table kept, largest growth first.
** Its buffers are in the C heap, counted with the walks' (heap_bytes).
** Both snapshots are marked busy while a step reads them: a finalizer that
** closes one meanwhile only asks, and the step then fails cleanly.
*/

/***
@submodule memprobe
*/
#include "internal.h"
#include "heap.h"

#include <stdlib.h>
#include <string.h>

#define ADDED_MT  "memprobe.Added"
#define NONE      0xffffffffu
#define CHECK     1024        /* records between two clock reads */

enum { P_SCAN, P_GROUPS, P_GROWN, P_DONE };

typedef struct group {
  uint32_t parent, edge, name;
  double count, bytes;
} group;

typedef struct grew { uint32_t rec; double entries; } grew;

typedef struct added {
  mp_book book;
  uint32_t n;               /* records of new */
  uint32_t at;              /* next record (SCAN), group or grown (output) */
  uint32_t *topof;          /* per record: its group, or NONE */
  uint32_t *gindex, gicap;  /* groups by (parent, edge, name): index + 1 */
  mp_vec g;                 /* group records */
  grew *top;                /* a min-heap of the 'ntop' largest growths */
  int ntop, maxtop, phase, closed;
  int busy, closing;        /* in a step; close() asked for meanwhile */
} added;

/* The uservalue's slots: the two snapshots and the two results. */
enum { U_NEW = 1, U_OLD, U_GROUPS, U_GROWN };

#define GROUP(a, i)  MP_AT(&(a)->g, (i), group)

static void added_free (added *a) {
  if (a->closed) return;
  a->closed = 1;
  memprobe_book_alloc(&a->book, a->topof, (size_t)a->n * 4 + 4, 0);
  memprobe_book_alloc(&a->book, a->gindex, (size_t)a->gicap * 4, 0);
  memprobe_book_alloc(&a->book, a->top,
                      ((size_t)a->maxtop + 1) * sizeof(grew), 0);
  memprobe_vec_free(&a->book, &a->g, sizeof(group));
  a->topof = a->gindex = NULL;
  a->top = NULL;
}

/* close() and __gc. A close from a finalizer inside the job's own step
** waits for the step's end: the step still reads what it holds. */
static int added_gc (lua_State *L) {
  added *a = (added *)luaL_checkudata(L, 1, ADDED_MT);
  if (a->busy) a->closing = 1;
  else added_free(a);
  return 0;
}

/* Does x rank below y among the growths kept (fewer entries, or as many
** and found later)? The heap's root is the lowest. */
static int below (const grew *x, const grew *y) {
  return x->entries < y->entries ||
         (x->entries == y->entries && x->rec > y->rec);
}

static void sift_down (grew *h, int n, int i) {
  for (;;) {
    int l = 2 * i + 1, m = i;
    grew t;
    if (l < n && below(&h[l], &h[m])) m = l;
    if (l + 1 < n && below(&h[l + 1], &h[m])) m = l + 1;
    if (m == i) return;
    t = h[i]; h[i] = h[m]; h[m] = t;
    i = m;
  }
}

/* Offers a growth to the heap of the 'maxtop' largest. */
static void offer (added *a, uint32_t rec, double entries) {
  grew x;
  x.rec = rec;
  x.entries = entries;
  if (a->ntop < a->maxtop) {
    int i = a->ntop++;
    a->top[i] = x;
    while (i > 0 && below(&a->top[i], &a->top[(i - 1) / 2])) {
      grew t = a->top[i];
      a->top[i] = a->top[(i - 1) / 2];
      a->top[(i - 1) / 2] = t;
      i = (i - 1) / 2;
    }
  }
  else if (a->maxtop > 0 && below(&a->top[0], &x)) {
    a->top[0] = x;
    sift_down(a->top, a->ntop, 0);
  }
}

/* The group of a record that hangs from an old object: found or made. */
static uint32_t group_of (lua_State *L, added *a, const snap *s,
                          const hobj *o) {
  uint32_t gp = o->parent, ge = o->edge, gn = memprobe_datalike(s, o->edge, o->parent) ? 0 : o->name;
  uint32_t h = memprobe_mix(((uint64_t)gp << 32) ^ ((uint64_t)ge << 24) ^ gn);
  uint32_t slot;
  group *x;
  for (slot = h & (a->gicap - 1); a->gindex[slot] != 0;
       slot = (slot + 1) & (a->gicap - 1)) {
    x = GROUP(a, a->gindex[slot] - 1);
    if (x->parent == gp && x->edge == ge && x->name == gn)
      return a->gindex[slot] - 1;
  }
  x = (group *)memprobe_vec_push(&a->book, &a->g, sizeof(group));
  if (x == NULL) memprobe_nomem(L);
  x->parent = gp; x->edge = ge; x->name = gn;
  x->count = x->bytes = 0;
  a->gindex[slot] = a->g.n;
  return a->g.n - 1;
}

/*
** One stretch of the pass over new's records, until the deadline (0:
** none). An object of new is old when old has one of the same identity
** and type that it counted: the records old ignores are its walk's own
** objects (queue, roots and options tables), garbage once it finished,
** whose addresses new objects may take; only its first, old's own
** userdata, lives on. Records are in discovery order, so a parent always
** precedes its children. Returns 1 when the pass is over.
*/
static int scan (lua_State *L, added *a, const snap *s, const snap *old,
                 double deadline) {
  uint32_t from = a->at;  /* each stretch does at least one record */
  for (; a->at < a->n; a->at++) {
    uint32_t i = a->at, t;
    const hobj *o = REC(s, i);
    int64_t j;
    if (deadline > 0 && (i & (CHECK - 1)) == 0 && i != from &&
        memprobe_now() >= deadline)
      return 0;
    a->topof[i] = NONE;
    if (!counted(o) || o->type == T_PROTO) continue;
    j = memprobe_lookup(old, o->p);
    if (j >= 0 && REC(old, j)->type == o->type &&
        (counted(REC(old, j)) || j == 0)) {  /* record 0: old itself */
      const hobj *b = REC(old, j);
      if (o->type == LUA_TTABLE && j != 0 && o->aux > b->aux)
        offer(a, i, (double)o->aux - b->aux);
      continue;
    }
    t = o->parent ? a->topof[o->parent - 1] : NONE;
    if (t == NONE) t = group_of(L, a, s, o);  /* hangs from an old object */
    a->topof[i] = t;
    GROUP(a, t)->count++;
    GROUP(a, t)->bytes += SIZE(o);
  }
  return 1;
}

#define setnum memprobe_setnum

/* Appends group gi of new's groups to the array at index out. */
static void push_group (lua_State *L, added *a, const snap *s, int out,
                        uint32_t gi) {
  group x = *GROUP(a, gi);  /* a copy: the calls below allocate */
  lua_createtable(L, 0, 4);
  setnum(L, "count", x.count);
  setnum(L, "bytes", x.bytes);
  if (x.parent) memprobe_pushpath(L, s, x.parent - 1);
  else lua_newtable(L);
  memprobe_pushedge(L, s, (int)x.edge, x.name,
                    memprobe_datalike(s, (int)x.edge, x.parent));
  lua_rawseti(L, -2, (int)mp_rawlen(L, -2) + 1);
  lua_setfield(L, -2, "path");
  lua_rawseti(L, out, (int)gi + 1);
}

/* Appends the k-th largest growth (from 1) to the array at index out. */
static void push_grown (lua_State *L, const snap *s, const snap *old,
                        int out, grew x, int k) {
  const hobj *o = REC(s, x.rec);
  const hobj *b = REC(old, memprobe_lookup(old, o->p));
  double before = b->aux, after = o->aux, bytes = SIZE(o) - SIZE(b);
  lua_createtable(L, 0, 5);
  setnum(L, "before", before);
  setnum(L, "after", after);
  setnum(L, "entries", after - before);
  setnum(L, "bytes", bytes);
  memprobe_pushpath(L, s, x.rec);
  lua_setfield(L, -2, "path");
  lua_rawseti(L, out, k);
}

/* The snapshot in uservalue slot k, checked as the job resumes (by
** l_step, which then marks it busy). */
static snap *snap_at (lua_State *L, int uv, int k, int busy) {
  snap *s;
  lua_rawgeti(L, uv, k);
  s = (snap *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (s == NULL || s->closed || s->closing || s->busy != busy || !DONE(s))
    luaL_error(L, "heap diff: a snapshot was closed or is busy");
  return s;
}

/* Runs the phases until the deadline (0: none); returns 1 when all are
** done. */
static int advance (lua_State *L, added *a, snap *s, snap *old, int uv,
                    double deadline) {
  uint32_t from = a->at;  /* each stretch makes at least one table */
  if (a->phase == P_SCAN) {
    int n = a->ntop;
    if (!scan(L, a, s, old, deadline)) return 0;
    /* heap sort: taking the lowest to the end leaves the largest first */
    for (n = a->ntop; n > 1; n--) {
      grew t = a->top[0];
      a->top[0] = a->top[n - 1];
      a->top[n - 1] = t;
      sift_down(a->top, n - 1, 0);
    }
    a->phase = P_GROUPS;
    a->at = 0;
    from = NONE;
  }
  if (a->phase == P_GROUPS) {
    lua_rawgeti(L, uv, U_GROUPS);
    for (; a->at < a->g.n; a->at++) {
      if (deadline > 0 && (a->at & 63) == 0 && a->at != from &&
          memprobe_now() >= deadline)
        return 0;
      push_group(L, a, s, uv + 1, a->at);
    }
    lua_pop(L, 1);
    a->phase = P_GROWN;
    a->at = 0;
    from = NONE;
  }
  if (a->phase == P_GROWN) {
    lua_rawgeti(L, uv, U_GROWN);
    for (; a->at < (uint32_t)a->ntop; a->at++) {
      if (deadline > 0 && (a->at & 63) == 0 && a->at != from &&
          memprobe_now() >= deadline)
        return 0;
      push_grown(L, s, old, uv + 1, a->top[a->at], (int)a->at + 1);
    }
    lua_pop(L, 1);
    a->phase = P_DONE;
    added_free(a);
  }
  return 1;
}

/* Protected body of a step: the job at 1, its deadline at 2 (0: none);
** pushes whether it is done. */
static int step_body (lua_State *L) {
  added *a = (added *)lua_touserdata(L, 1);
  int uv;
  mp_getuv(L, 1, 1);
  uv = lua_gettop(L);
  lua_pushboolean(L, advance(L, a, snap_at(L, uv, U_NEW, 1),
                             snap_at(L, uv, U_OLD, 1), uv, lua_tonumber(L, 2)));
  return 1;
}

#define STEP_KEY  "memprobe.Added.step"  /* registry: step_body */

/*
** job:step([ms]) -> done. Both snapshots are busy meanwhile: a close()
** from a finalizer that the step's allocations run waits for its end,
** and then the job fails, freeing what it holds.
*/
static int l_step (lua_State *L) {
  added *a = (added *)luaL_checkudata(L, 1, ADDED_MT);
  double start = memprobe_now(), ms = luaL_optnumber(L, 2, 0);
  int status, uv;
  snap *s, *old;
  luaL_argcheck(L, lua_isnoneornil(L, 2) || ms > 0, 2, "ms must be > 0");
  lua_settop(L, 1);
  if (a->phase == P_DONE) { lua_pushboolean(L, 1); return 1; }
  luaL_argcheck(L, !a->closed, 1, "job is closed");
  mp_getuv(L, 1, 1);
  uv = lua_gettop(L);
  s = snap_at(L, uv, U_NEW, 0);
  old = snap_at(L, uv, U_OLD, 0);
  s->busy = old->busy = a->busy = 1;
  lua_getfield(L, LUA_REGISTRYINDEX, STEP_KEY);
  lua_pushvalue(L, 1);
  lua_pushnumber(L, ms > 0 ? start + ms / 1000 : 0);
  status = lua_pcall(L, 2, 1, 0);
  s->busy = old->busy = a->busy = 0;
  if (status != 0 || s->closing || old->closing) {
    if (s->closing) memprobe_snap_free(s);
    if (old->closing && old != s) memprobe_snap_free(old);
    added_free(a);
    if (status != 0) return lua_error(L);
    return luaL_error(L, "heap diff: a snapshot was closed during the diff");
  }
  if (a->closing) {  /* closed from inside: nothing is left to do */
    added_free(a);
    lua_pushboolean(L, 1);
  }
  return 1;
}

/* job:result() -> groups, grown once done; nil before. */
static int l_result (lua_State *L) {
  added *a = (added *)luaL_checkudata(L, 1, ADDED_MT);
  if (a->phase != P_DONE) return 0;
  mp_getuv(L, 1, 1);
  lua_rawgeti(L, -1, U_GROUPS);
  lua_rawgeti(L, -2, U_GROWN);
  return 2;
}

/* job:progress() -> records scanned, records of new. */
static int l_progress (lua_State *L) {
  added *a = (added *)luaL_checkudata(L, 1, ADDED_MT);
  double n = a->n;
  lua_pushnumber(L, a->phase == P_SCAN ? (double)a->at : n);
  lua_pushnumber(L, n);
  return 2;
}

/***
Starts what snap:diff reads: the objects of `new` that `old` lacks,
grouped, and the `top` tables in both that grew most. Runs nothing yet:
`job:step([ms])` advances it, `job:result()` gives `groups, grown`.
@function heap_added
@local
@param new a finished snapshot
@param old a finished snapshot
@tparam[opt=20] integer top tables that grew to keep (0: none)
@treturn userdata the job
*/
static int l_added (lua_State *L) {
  snap *s = memprobe_checksnap(L, 1), *old = memprobe_checksnap(L, 2);
  lua_Integer top = luaL_optinteger(L, 3, 20);
  added *a;
  luaL_argcheck(L, DONE(s), 1, "walk not finished");
  luaL_argcheck(L, DONE(old), 2, "walk not finished");
  luaL_argcheck(L, top >= 0 && top <= 1000000, 3, "top must be in 0..1000000");
  lua_settop(L, 2);
  a = (added *)mp_newuserdata(L, sizeof(added));
  memset(a, 0, sizeof(*a));
  a->closed = 1;
  luaL_getmetatable(L, ADDED_MT);
  lua_setmetatable(L, -2);
  a->book.total = &memprobe_ctx(L)->heap_bytes;
  a->closed = 0;
  lua_createtable(L, 4, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, U_NEW);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, U_OLD);
  lua_newtable(L);
  lua_rawseti(L, -2, U_GROUPS);
  lua_newtable(L);
  lua_rawseti(L, -2, U_GROWN);
  mp_setuv(L, 3);
  a->n = s->obj.n;
  for (a->gicap = 1024; a->gicap <= a->n; a->gicap *= 2) {}
  a->maxtop = (int)top;
  /* zeroed by the kernel, touched only where groups go */
  a->gindex = (uint32_t *)memprobe_book_zalloc(&a->book, (size_t)a->gicap * 4);
  a->topof = (uint32_t *)memprobe_book_alloc(&a->book, NULL, 0,
                                             (size_t)a->n * 4 + 4);
  a->top = (grew *)memprobe_book_alloc(&a->book, NULL, 0,
                                       ((size_t)a->maxtop + 1) * sizeof(grew));
  if (a->gindex == NULL || a->topof == NULL || a->top == NULL) {
    added_free(a);
    memprobe_nomem(L);
  }
  return 1;
}

void memprobe_open_heapdiff (lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "heap_added", l_added },
    { NULL, NULL }
  };
  static const luaL_Reg methods[] = {
    { "close",    added_gc },
    { "progress", l_progress },
    { "result",   l_result },
    { "step",     l_step },
    { NULL, NULL }
  };
  if (luaL_newmetatable(L, ADDED_MT)) {
    lua_pushcfunction(L, added_gc);
    lua_setfield(L, -2, "__gc");
    lua_createtable(L, 0, 4);
    mp_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, ADDED_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, step_body);
  lua_setfield(L, LUA_REGISTRYINDEX, STEP_KEY);
  memprobe_register(L, funcs);
}
