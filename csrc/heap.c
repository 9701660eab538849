/*
** heap.c: Snapshot objects and their methods, built on the walk
** (heapwalk.c; heapdiff.c diffs two). Start with heap.h: the records, the
** snapshot, the phases of a walk (PH_*) and the queue's slots (Q_*).
**
** A "memprobe.Snapshot" userdata owns the bookkeeping of one walk, kept
** outside the Lua heap, and its __gc frees it: an error raised anywhere in
** the walk leaks nothing. heap_snapshot starts a walk; each step of it
** runs under lua_pcall (memprobe_step_body), within the budgets given,
** through the phases from where the last step left (run_phase). After
** the walk: the second pass of modules() and the tally, then the methods
** that read them (census, rows, referrers); paths cross to Lua as
** arrays of edges { kind, key, data }.
*/

/***
@submodule memprobe
*/
#include "internal.h"
#include "heap.h"

#include <math.h>
#include <stdio.h>
#include <string.h>


#define STEP_KEY  "memprobe.Snapshot.step"  /* registry: memprobe_step_body */
#define RELEASE   (1u << 20)  /* bytes release() unmaps between clock reads */


/*
** {======================================================
** Snapshot objects
** =======================================================
*/

static snap *checksnap (lua_State *L, int i) {
  snap *s = (snap *)luaL_checkudata(L, i, SNAP_MT);
  luaL_argcheck(L, !s->closed && !s->closing, i, "snapshot is closed");
  luaL_argcheck(L, !s->busy, i, "snapshot is busy (inside its own step)");
  return s;
}

/* The __gc, close() and __close: during a step (a finalizer that the
** step's allocations ran), the buffers go when the step is over. */
static int snap_gc (lua_State *L) {
  snap *s = (snap *)luaL_checkudata(L, 1, SNAP_MT);
  if (s->busy) s->closing = 1;
  else memprobe_snap_free(s);
  return 0;
}

/* Pre-registers the value at vi as a root with a name and a label. */
static void addroot (walker *w, int vi, const char *name, int32_t label) {
  lua_State *L = w->L;
  snap *s = w->s;
  int t = lua_type(L, vi);
  int64_t r;
  const void *p;
  if (!memprobe_collectable(t) || (p = memprobe_ident(L, vi, t)) == NULL)
    return;
  if (memprobe_lookup(s, p) >= 0) return;  /* an alias of an earlier root */
  r = memprobe_discover(w, vi, t, 0, E_ROOT,
                        memprobe_intern(L, s, name, strlen(name)), label);
  if (r >= 0) REC(s, r)->flags |= F_ROOT;
}

/*
** The first phase of a walk: the size model, while its job (Q_MODEL)
** measures it in a scratch state. Returns 0 when the step's time ran out
** first.
*/
static int await_model (walker *w) {
  lua_State *L = w->L;
  int done;
  lua_rawgeti(L, w->W, Q_MODEL);
  done = memprobe_model_step(L, -1, w->deadline);
  if (done) {
    mp_getuv(L, -1, 1);
    memprobe_readmodel(L, lua_gettop(L), &w->s->m);
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawseti(L, w->W, Q_MODEL);
  }
  lua_pop(L, 1);
  return done;
}

static void ignore (walker *w, int vi);

/*
** The second phase: every root of Q_ROOTS ({ value, name, label } each)
** registered, one per unit, before anything is expanded, so that no root
** is first reached as another root's object. Q_ROOTS may hold instead a
** function that lists them in slices: called with the step's deadline
** (memprobe.clock() seconds; nil for none), it returns nil when the time
** ran out first, and the roots once they are all listed. Returns 1 when
** done.
*/
static int add_roots (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  int n;
  lua_rawgeti(L, w->W, Q_ROOTS);
  if (lua_isfunction(L, -1)) {  /* the lister: called until it has them */
    if (!memprobe_budget(w)) { lua_pop(L, 1); return 0; }
    if (w->deadline > 0) lua_pushnumber(L, w->deadline); else lua_pushnil(L);
    lua_call(L, 1, 1);  /* in the lister's place: what it returned */
    if (!lua_istable(L, -1)) { lua_pop(L, 1); return 0; }  /* time ran out */
    ignore(w, -1);  /* the walk's own, like a table given at the start */
    lua_pushvalue(L, -1);
    lua_rawseti(L, w->W, Q_ROOTS);
  }
  n = (int)mp_rawlen(L, -1);
  for (; s->nextroot <= (uint32_t)n; s->nextroot++) {
    lua_Integer label;
    if (!memprobe_budget(w)) { lua_pop(L, 1); return 0; }
    lua_rawgeti(L, -1, (int)s->nextroot);
    if (!lua_istable(L, -1))
      luaL_error(L, "heap walk: roots are {value, name, label}");
    lua_rawgeti(L, -1, 1);
    lua_rawgeti(L, -2, 2);
    lua_rawgeti(L, -3, 3);
    label = lua_tointeger(L, -1);
    if (label < 0 || label > 0x7ffffff0)
      luaL_error(L, "heap walk: root label out of range");
    addroot(w, -3, lua_isstring(L, -2) ? lua_tostring(L, -2) : "?",
            (int32_t)label);
    if (label > s->nroots) s->nroots = (int)label;
    lua_pop(L, 4);
  }
  lua_pop(L, 1);
  if (!s->t.rows) {  /* the second pass of modules() walks from them again */
    lua_pushnil(L);
    lua_rawseti(L, w->W, Q_ROOTS);
  }
  return 1;
}

static int second_pass (walker *w);
static int run_tally (walker *w);
static int build_functions (walker *w);

/* Runs the phase s->phase within the step's budget: 1 when it is over. */
static int run_phase (walker *w) {
  snap *s = w->s;
  switch (s->phase) {
    case PH_MODEL: return await_model(w);
    case PH_ROOTS: return add_roots(w);
    case PH_WALK: return memprobe_run(w);
    case PH_SETTLE: return memprobe_settle(w);
    case PH_SORT: return memprobe_sort_protos(w);
    case PH_DFS: case PH_PREDS: case PH_SEMI: case PH_IDOM: case PH_RETAIN:
      return memprobe_dom_step(w);
    case PH_PASS2: return !s->t.rows || second_pass(w);
    case PH_TALLY: return (!s->t.rows && s->t.top < 0) || run_tally(w);
    case PH_OUTPUT: return s->t.rows || s->t.top < 0 || build_functions(w);
    default: return 1;
  }
}

/* Protected body of a step: snapshot at 1, its start time at 2, ms at
** 3, units at 4. Runs the phases (PH_*) from where the last step left. */
int memprobe_step_body (lua_State *L) {
  walker w;
  snap *s = (snap *)lua_touserdata(L, 1);
  lua_settop(L, 4);
  mp_getuv(L, 1, 1);
  if (!lua_istable(L, -1))
    return luaL_error(L, "heap walk: its queue is gone");
  memprobe_walker_init(&w, L, s, 1, lua_gettop(L));
  if (lua_isnumber(L, 4)) w.limit = (uint64_t)lua_tonumber(L, 4);
  if (lua_isnumber(L, 3)) {
    w.last = lua_tonumber(L, 2);
    w.deadline = w.last + lua_tonumber(L, 3) / 1000;
    w.maxgap = lua_tonumber(L, 3) / 4000;
  }
  while (s->phase < PH_DONE && run_phase(&w)) s->phase++;
  s->gap = w.gap;
  s->units += (double)w.units;
  s->steps++;
  if ((double)w.units > s->maxunits) s->maxunits = (double)w.units;
  return 0;
}

/* The walk is over: the queue's memory goes back, C and Lua; the
** census's functions table stays. */
static void finish (lua_State *L, int ud, snap *s) {
  memprobe_queue_free(s);
  mp_getuv(L, ud, 1);
  lua_createtable(L, 0, 2);
  lua_newtable(L);
  lua_rawseti(L, -2, Q_EPHEMERONS);
  if (lua_istable(L, -2)) {  /* the census's functions, if built */
    lua_rawgeti(L, -2, Q_FUNCTIONS);
    lua_rawseti(L, -2, Q_FUNCTIONS);
  }
  mp_setuv(L, ud);
  lua_pop(L, 1);
}

/*
** Runs one step of the walk, which began at 'start', under lua_pcall.
** When the program changed a table between steps so that lua_next no
** longer knows the saved key, that table's expansion starts over (what it
** already found stays found); the second time the same table does so, it
** is expanded in one go, so that a program that rebuilds a table between
** every two steps cannot keep the walk from finishing. Any other error
** frees the buffers and is raised again. A close() that a finalizer runs
** during the step takes effect when the step is over.
*/
static void step (lua_State *L, int ud, double start, double ms,
                  double units) {
  snap *s = (snap *)lua_touserdata(L, ud);
  int tries, status = 0;
  s->busy = 1;
  for (tries = 0; tries < 4; tries++) {
    /* made once per state: on 5.1 and LuaJIT every lua_pushcfunction
    ** allocates a closure, garbage the walk must not make */
    lua_getfield(L, LUA_REGISTRYINDEX, STEP_KEY);
    lua_pushvalue(L, ud);
    lua_pushnumber(L, start);
    if (ms > 0) lua_pushnumber(L, ms); else lua_pushnil(L);
    if (units > 0) lua_pushnumber(L, units); else lua_pushnil(L);
    status = lua_pcall(L, 4, 0, 0);
    if (status == 0 || !s->in_next) break;
    lua_pop(L, 1);
    s->in_next = 0;
    s->started = 0;
    s->keysaved = 0;
    s->e.run = 0;  /* the expansion's edges start over in a new run */
    s->restarts++;
    s->atomic = s->qhead == s->restarted && s->restarts > 1;
    s->restarted = s->qhead;
    mp_getuv(L, ud, 1);
    lua_pushnil(L);
    lua_rawseti(L, -2, Q_KEY);
    lua_pop(L, 1);
  }
  s->busy = 0;
  if (status == 0 && !s->closing) {
    if (DONE(s)) finish(L, ud, s);
    return;
  }
  memprobe_snap_free(s);
  if (status != 0) lua_error(L);
}

static void ignore (walker *w, int vi) {
  snap *s = w->s;
  const void *p = lua_topointer(w->L, vi);
  uint32_t h = memprobe_hashptr(p), slot = 0;
  int64_t r = memprobe_find(s, p, h, &slot);
  if (r < 0) r = memprobe_newrec(w->L, s, p, lua_type(w->L, vi), 1, h, slot);
  REC(s, r)->flags |= F_IGNORE;
}

/* A count option: absent (dflt), or an integer in 1..max. */
static double countopt (lua_State *L, int t, const char *k, double max,
                        double dflt) {
  double v;
  lua_getfield(L, t, k);
  if (lua_isnil(L, -1)) { lua_pop(L, 1); return dflt; }
  v = lua_tonumber(L, -1);
  if (!lua_isnumber(L, -1) || !(v >= 1 && v <= max) || v != floor(v))
    luaL_error(L, "bad option '%s' (an integer in 1..%.0f expected)", k, max);
  lua_pop(L, 1);
  return v;
}

/* A time option: absent (0) or a number of milliseconds > 0. */
static double msopt (lua_State *L, double v, int given, const char *k) {
  if (!given) return 0;
  if (!(v > 0 && v <= 1e9))
    luaL_error(L, "bad option '%s' (milliseconds > 0 expected)", k);
  return v;
}

/* Reads the options of heap_snapshot (a table at index o). */
static void readopts (lua_State *L, snap *s, int o, double *ms,
                      double *units, double *started) {
  int i;
  s->max_objects = (uint32_t)countopt(L, o, "max_objects", MAXOBJECTS,
                                      MAXOBJECTS);
  *units = countopt(L, o, "max_units", 9007199254740992.0, 0);
  lua_getfield(L, o, "max_ms");
  *ms = msopt(L, lua_tonumber(L, -1), !lua_isnil(L, -1), "max_ms");
  lua_getfield(L, o, "fail_after");
  s->failafter = (int)lua_tointeger(L, -1);
  lua_getfield(L, o, "target");
  if (memprobe_collectable(lua_type(L, -1)))
    s->refs.target = memprobe_ident(L, -1, lua_type(L, -1));
  lua_getfield(L, o, "own");
  if (lua_istable(L, -1)) {
    for (i = 1; i <= NOWN; i++) {
      lua_rawgeti(L, -1, i);
      if (lua_isfunction(L, -1)) s->own[s->nown++] = lua_topointer(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_getfield(L, o, "started");
  *started = lua_tonumber(L, -1);
  lua_pop(L, 5);
  /* the tally the walk ends with: census(top), or rows */
  s->t.top = -1;
  lua_getfield(L, o, "census");
  if (lua_isnumber(L, -1)) {
    double top = lua_tonumber(L, -1);
    if (!(top >= 0 && top <= 1000))
      luaL_error(L, "bad option 'census' (top must be 0..1000)");
    s->t.top = (int)top;
  }
  lua_getfield(L, o, "rows");
  s->t.rows = lua_toboolean(L, -1);
  lua_getfield(L, o, "edges");
  s->e.on = lua_toboolean(L, -1);
  lua_pop(L, 3);
}

/* The registry's tables by name: the names of the types of userdata
** whose metatable has no __name (luaL_newmetatable stores it there). */
static void scan_registry (lua_State *L, snap *s) {
  lua_pushnil(L);
  while (lua_next(L, LUA_REGISTRYINDEX)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_istable(L, -1)) {
      size_t len;
      const char *k = lua_tolstring(L, -2, &len);
      uint32_t name = memprobe_intern(L, s, k, len);
      if (s->nreg == s->regcap) {  /* doubling: a realloc per entry was
                                   ** quadratic once the block is mapped */
        uint32_t cap = s->regcap ? s->regcap * 2 : 16;
        s->reg = memprobe_xrealloc(L, s, s->reg, s->regcap * sizeof(*s->reg),
                                   cap * sizeof(*s->reg));
        s->regcap = cap;
      }
      s->reg[s->nreg].p = lua_topointer(L, -1);
      s->reg[s->nreg++].name = name;
    }
    lua_pop(L, 1);
  }
}

/***
The heap walk behind `heap()`, `modules()`, `snapshot()` and `path()`:
starts a `memprobe.Snapshot` over the given roots with the given size
model, and runs its first step within the budgets. Methods: `step([ms [,
units]])`, `stats()`, `census([top])`, `rows(roots)`, `referrers()`,
`close()` (heap_added diffs two).
@function heap_snapshot
@local
@param model the size model (a table, or the job measuring it)
@tparam table|function roots array of `{ value, name, label }`, or a
function that lists them in the first steps: called with a deadline
(`clock()` seconds, or nil), it returns nil until it returns the array
@tparam table opts `max_objects`, `max_ms`, `max_units`, `target`, `own`
(functions whose frames on the walking thread are not roots), `started`
(a `clock()` reading the first slice counts from)
@treturn userdata the snapshot
*/
/*
** snapshot(model, roots, opts) -> snapshot. roots is an array of
** { value, name, label }; label 0 gives each root its own row. Runs the
** first step within opts.max_ms / opts.max_units (all of it without).
** The model may be the job measuring it: the first steps wait for it.
*/
/* A new snapshot userdata on top, empty and owned (its __gc frees). */
static snap *snap_new (lua_State *L) {
  mp_ctx *c = memprobe_ctx(L);
  snap *s = (snap *)mp_newuserdata(L, sizeof(snap));
  memset(s, 0, sizeof(*s));
  s->closed = 1;
  luaL_getmetatable(L, SNAP_MT);
  lua_setmetatable(L, -2);
  s->ctx = c;
  s->book.total = &c->heap_bytes;
  s->closed = 0;
  if (!memprobe_index_init(&s->book, &s->index, 1024) ||
      !memprobe_index_init(&s->book, &s->pindex, 256) ||
      !memprobe_index_init(&s->book, &s->nindex, 256))
    memprobe_nomem(L);
  return s;
}

/* The queue of the snapshot at ud (its user value), on top: the roots at
** Q_ROOTS (the table at 2) and, while it is measured, the model's job at
** Q_MODEL (1). The walk's own objects are ignored: not the program's. */
static void queue_new (lua_State *L, snap *s, int ud) {
  walker w;
  lua_createtable(L, 0, 4);
  lua_newtable(L);
  lua_rawseti(L, -2, Q_EPHEMERONS);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, Q_ROOTS);
  if (s->phase == PH_MODEL) {
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, Q_MODEL);
  }
  lua_pushvalue(L, -1);
  mp_setuv(L, ud);
  memprobe_walker_init(&w, L, s, ud, lua_gettop(L));
  ignore(&w, ud);
  ignore(&w, w.W);
  ignore(&w, 1);
  ignore(&w, 2);
  ignore(&w, 3);
  lua_rawgeti(L, w.W, Q_EPHEMERONS);
  ignore(&w, -1);
  lua_pop(L, 1);
}

int memprobe_l_snapshot (lua_State *L) {
  double start = memprobe_now(), ms, units, started;
  snap *s;
  int ud;
  if (!mp_testudata(L, 1, MODELJOB_MT)) luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isfunction(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  s = snap_new(L);
  ud = lua_gettop(L);
  readopts(L, s, 3, &ms, &units, &started);
  if (started > 0 && started < start) start = started;
  if (lua_istable(L, 1)) {  /* a model: the walk starts with the roots */
    memprobe_readmodel(L, 1, &s->m);
    s->phase = PH_ROOTS;
  }
  s->nextroot = 1;
  queue_new(L, s, ud);
  scan_registry(L, s);
  lua_settop(L, ud);
  step(L, ud, start, ms, units);
  lua_settop(L, ud);
  return 1;
}

/* snap:step([ms [, units]]) -> done */
int memprobe_l_step (lua_State *L) {
  double start = memprobe_now();
  snap *s = checksnap(L, 1);
  double ms = msopt(L, luaL_optnumber(L, 2, 0), !lua_isnoneornil(L, 2), "ms");
  double units = luaL_optnumber(L, 3, 0);
  luaL_argcheck(L, lua_isnoneornil(L, 3) ||
                (units > 0 && units <= 9007199254740992.0), 3,
                "units must be > 0");
  units = ceil(units);
  lua_settop(L, 1);
  if (!DONE(s)) step(L, 1, start, ms, units);
  lua_pushboolean(L, DONE(s));
  return 1;
}


/*
** snap:release([ms]) -> true once the snapshot is closed: close() in
** pieces of a budget, for a walk of millions of objects, whose buffers
** take tens of milliseconds to give back at once. The records go a chunk
** at a time from the end, the index a megabyte at a time.
*/
static int l_release (lua_State *L) {
  snap *s = (snap *)luaL_checkudata(L, 1, SNAP_MT);
  double ms = luaL_optnumber(L, 2, 0), start = memprobe_now();
  pass2 *p2 = &s->p2;
  int work = 0;  /* since the last clock read, in chunks of records */
  luaL_argcheck(L, !s->busy, 1, "snapshot is busy (inside its own step)");
  if (!s->closed) s->closing = 1;  /* no method reads it from now on */
  /* a turn frees a chunk of records (128 KB: 1) or a megabyte (8); the
  ** clock is read every 16, and half the budget is for the caller */
  while (!s->closed) {
    if (work >= 16) {
      if (ms > 0 && memprobe_now() - start >= ms / 2000) break;
      work = 0;
    }
    if (!memprobe_dom_release(s, RELEASE)) work += 8;  /* dominators */
    else if (p2->seensize > 0) {  /* the per-record buffer first, from its end */
      size_t n = p2->seensize < RELEASE ? p2->seensize : RELEASE;
      p2->seensize -= n;
      memprobe_book_unmap(&s->book, (char *)p2->seen + p2->seensize, n);
      if (p2->seensize == 0) p2->seen = NULL;
      work += 8;
    }
    else if (s->t.sum != NULL &&
             s->t.nsum * sizeof(double) >= MP_MAPPED + RELEASE) {
      /* the row sums (mapped: 11 MB at 70000 rows), a megabyte at a time
      ** from the end of their pages, until what is left is freed whole */
      size_t size = s->t.nsum * sizeof(double);
      memprobe_book_unmap(&s->book, (char *)s->t.sum + MP_PAGES(size) - RELEASE,
                          RELEASE);
      s->t.nsum -= RELEASE / sizeof(double);
      work += 8;
    }
    else if (!memprobe_index_release(&s->book, &s->index)) work += 8;
    else if (s->e.log.n > 0) {
      memprobe_vec_pop_chunk(&s->book, &s->e.log, sizeof(mp_edge));
      work++;
    }
    else if (s->obj.n > 0) {
      memprobe_vec_pop_chunk(&s->book, &s->obj, sizeof(hobj));
      if (s->e.off.n > 0)
        memprobe_vec_pop_chunk(&s->book, &s->e.off, sizeof(uint32_t));
      work++;
    }
    else memprobe_snap_free(s);
  }
  lua_pushboolean(L, s->closed);
  return 1;
}

static int l_tostring (lua_State *L) {
  snap *s = (snap *)luaL_checkudata(L, 1, SNAP_MT);
  if (s->closed)
    lua_pushliteral(L, "memprobe.Snapshot (closed)");
  else
    lua_pushfstring(L, "memprobe.Snapshot (%d objects%s)", (int)s->obj.n,
                    DONE(s) ? "" : ", walking");
  return 1;
}

/* Pushes v: an integer on 5.3+ when whole, as sizes and counts are. */
void memprobe_pushnum (lua_State *L, double v) {
#if LUA_VERSION_NUM >= 503
  if (v == floor(v) && fabs(v) < 9007199254740992.0)
    lua_pushinteger(L, (lua_Integer)v);
  else
#endif
    lua_pushnumber(L, v);
}

/* Sets field k of the table on top to v (memprobe_pushnum). */
static void setnum (lua_State *L, const char *k, double v) {
  memprobe_pushnum(L, v);
  lua_setfield(L, -2, k);
}

static const char *const phases[] = {
  "model", "roots", "walk", "settle", "sort", "dfs", "preds", "semi",
  "idom", "retain", "rows", "tally", "output", "done"
};

/* snap:stats() -> { objects, done, truncated, steps, units, max_units,
** restarts, bookkeeping, queued, phase } */
static int l_stats (lua_State *L) {
  snap *s = checksnap(L, 1);
  double book = (double)s->book.bytes;
  lua_createtable(L, 0, 9);
  setnum(L, "objects", s->obj.n);
  setnum(L, "steps", s->steps);
  setnum(L, "units", s->units);
  setnum(L, "max_units", s->maxunits);
  setnum(L, "restarts", s->restarts);
  setnum(L, "bookkeeping", book);
  setnum(L, "queued", s->qtail - s->qhead);
  if (s->e.on) {  /* the edges, and the bytes of their log and offsets */
    setnum(L, "edges", s->e.edges);
    setnum(L, "edge_bytes", (double)s->e.log.n * sizeof(mp_edge) +
                            (double)s->e.off.n * sizeof(uint32_t));
    lua_pushboolean(L, s->e.full);
    lua_setfield(L, -2, "edges_truncated");
  }
  lua_pushstring(L, phases[s->phase]);
  lua_setfield(L, -2, "phase");
  lua_pushboolean(L, DONE(s));
  lua_setfield(L, -2, "done");
  lua_pushboolean(L, s->truncated);
  lua_setfield(L, -2, "truncated");
  return 1;
}

static const char *const tnames[T_NTYPES] = {
  "nil", "boolean", "lightuserdata", "number", "string", "table",
  "function", "userdata", "thread", "proto", "cdata", "proto", "upvalue"
};

const char *memprobe_typename (int t) {
  return tnames[t >= 0 && t < T_NTYPES ? t : 0];
}

/* edge.kind by E_*: E_UPVAL and E_UPIDX are both "upvalue" (a name or a
** number as key). */
static const char *const ekinds[] = {
  "root", "field", "index", "numkey", "objkey", "key", "metatable",
  "upvalue", "upvalue", "uservalue", "env", "local", "frame", "stack",
  "proto"
};

/*
** Pushes an edge as Lua sees it: { kind, key, data }. key is the edge's
** argument: a root's name, a field's name, an index, a local's or an
** upvalue's name (or number), a level, a slot, a key's type; absent for
** the edges that have none. data is true for a data-like edge
** (memprobe_datalike), which a pattern shows as [*].
*/
void memprobe_pushedge (lua_State *L, const snap *s, int edge,
                        uint32_t name, int data) {
  lua_createtable(L, 0, 3);
  lua_pushstring(L, ekinds[edge <= E_PROTO ? edge : E_PROTO]);
  lua_setfield(L, -2, "kind");
  switch (edge) {
    case E_ROOT: case E_FIELD: case E_UPVAL: case E_LOCAL:
      lua_pushstring(L, memprobe_name_of(s, name));
      break;
    case E_INDEX: case E_UPIDX: case E_UVALUE: case E_FRAME: case E_STACK:
      mp_pushint(L, name);
      break;
    case E_OBJKEY:
      lua_pushstring(L, tnames[name < T_NTYPES ? name : 0]);
      break;
    default: lua_pushnil(L); break;
  }
  lua_setfield(L, -2, "key");
  if (data) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "data");
  }
}

/* Pushes the path of record r: its edges from the root, an array. A
** prototype has no referrer of its own (its parent field holds its
** line): its path is one root edge that names it, "(proto src:line)". */
void memprobe_pushpath (lua_State *L, const snap *s, uint32_t r) {
  uint32_t chain[256], k = 0, i;
  if (REC(s, r)->type == T_PROTO) {
    lua_createtable(L, 1, 0);
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "root");
    lua_setfield(L, -2, "kind");
    lua_pushfstring(L, "(proto %s:%d)", memprobe_name_of(s, REC(s, r)->name),
                    (int)REC(s, r)->parent);
    lua_setfield(L, -2, "key");
    lua_rawseti(L, -2, 1);
    return;
  }
  while (k < 256) {
    chain[k++] = r;
    if (REC(s, r)->parent == 0) break;
    r = REC(s, r)->parent - 1;
  }
  lua_createtable(L, (int)k, 0);
  for (i = k; i-- > 0;) {
    const hobj *o = REC(s, chain[i]);
    memprobe_pushedge(L, s, o->edge, o->name,
                      memprobe_datalike(s, o->edge, o->parent));
    lua_rawseti(L, -2, (int)(k - i));
  }
}

/* memprobe_pushpath into field 'path' of the table on top. */
static void setpath (lua_State *L, const snap *s, uint32_t r) {
  memprobe_pushpath(L, s, r);
  lua_setfield(L, -2, "path");
}

/* Pushes { [type] = { count, bytes } } for the types of n[] with a count. */
static void push_bytype (lua_State *L, const double *n, const double *b) {
  int t;
  lua_createtable(L, 0, 4);
  for (t = 0; t < T_NTYPES; t++) {
    if (n[t] == 0) continue;
    lua_createtable(L, 0, 2);
    setnum(L, "count", n[t]);
    setnum(L, "bytes", b[t]);
    lua_setfield(L, -2, tnames[t]);
  }
}

/*
** {======================================================
** The tally and the second pass of modules()
** =======================================================
*/

static acc *acc_slot (const acctab *t, uint32_t key) {
  uint32_t i;
  for (i = memprobe_mix(key) & t->mask; t->a[i].key != 0 && t->a[i].key != key;
       i = (i + 1) & t->mask) ;
  return &t->a[i];
}

static void acc_init (lua_State *L, snap *s, acctab *t, uint32_t cap) {
  t->a = (acc *)memprobe_xrealloc(L, s, NULL, 0, cap * sizeof(acc));
  memset(t->a, 0, cap * sizeof(acc));
  t->mask = cap - 1;
  t->n = 0;
}

static void acc_free (snap *s, acctab *t) {
  if (t->a != NULL)
    memprobe_book_alloc(&s->book, t->a, ((size_t)t->mask + 1) * sizeof(acc), 0);
  t->a = NULL;
}

/* Adds to key's entry; at load 1/2 the table doubles (its keys are
** names and prototypes, far fewer than the records). */
static void acc_add (lua_State *L, snap *s, acctab *t, uint32_t key,
                     double bytes) {
  acc *e = acc_slot(t, key);
  if (e->key == 0) {
    if ((t->n + 1) * 2 > t->mask + 1) {
      acctab old = *t;
      uint32_t i;
      acc_init(L, s, t, (old.mask + 1) * 2);
      for (i = 0; i <= old.mask; i++)
        if (old.a[i].key != 0) *acc_slot(t, old.a[i].key) = old.a[i];
      t->n = old.n;
      acc_free(s, &old);
      e = acc_slot(t, key);
    }
    e->key = key;
    t->n++;
  }
  e->count++;
  e->bytes += bytes;
}

void memprobe_tally_free (snap *s) {
  tally *t = &s->t;
  acc_free(s, &t->uds);
  acc_free(s, &t->fns);
  if (t->big != NULL)
    memprobe_book_alloc(&s->book, t->big, ((size_t)t->top + 1) * 4, 0);
  if (t->sum != NULL)
    memprobe_book_alloc(&s->book, t->sum, t->nsum * sizeof(double), 0);
  memset(t, 0, sizeof(*t));
}

/* Row of a label in the sums: rows 1..nroots, SHARED at nroots + 1, the
** host's shared code at nroots + 2; -1 for none. */
static int64_t sumrow (const snap *s, const hobj *o) {
  if (o->flags & F_IGNORE) return -1;
  if (o->flags & F_HOST) return s->nroots + 2;
  if (o->label == SHARED) return s->nroots + 1;
  if (o->label <= 0 || o->label > s->nroots) return -1;
  return o->label;
}

/* One record into the census: by type, type name, prototype, and the
** short sorted list of the largest containers; the host's shared code
** by type apart. */
static void census_add (lua_State *L, snap *s, uint32_t i) {
  tally *t = &s->t;
  const hobj *o = REC(s, i);
  int k;
  if ((o->flags & F_HOST) && !(o->flags & F_IGNORE)) {
    t->hn[o->type]++;
    t->hb[o->type] += SIZE(o);
  }
  if (!counted(o)) return;
  t->n[o->type]++;
  t->b[o->type] += SIZE(o);
  t->total += SIZE(o);
  t->objects++;
  if (o->type == LUA_TUSERDATA)
    acc_add(L, s, &t->uds, o->aux, SIZE(o));
  else if (o->type == LUA_TFUNCTION)  /* by prototype, or [C] */
    acc_add(L, s, &t->fns, o->aux ? REC(s, o->aux - 1)->aux + 1 : 0xffffffffu,
            SIZE(o));
  if (t->top > 0 && (o->type == LUA_TTABLE || o->type == LUA_TUSERDATA) &&
      (t->nbig < t->top || SIZE(o) > SIZE(REC(s, t->big[t->nbig - 1])))) {
    k = t->nbig < t->top ? t->nbig++ : t->nbig - 1;
    while (k > 0 && SIZE(REC(s, t->big[k - 1])) < SIZE(o)) {
      t->big[k] = t->big[k - 1];
      k--;
    }
    t->big[k] = i;
  }
}

/*
** The tally phase: every record once, a unit each. With t->rows it adds
** up by row and type (modules()), else the census (heap()). Returns 1
** when done.
*/
static int run_tally (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  tally *t = &s->t;
  if (!t->started) {
    if (t->rows) {
      t->nsum = ((size_t)s->nroots + 3) * T_NTYPES * 2;
      /* zeroed pages past 64 KiB: the sums of 70000 rows are 11 MB,
      ** whose memset took 11 ms in one step */
      t->sum = (double *)memprobe_book_zalloc(&s->book,
                                              t->nsum * sizeof(double));
      if (t->sum == NULL) memprobe_nomem(L);
    }
    else {
      acc_init(L, s, &t->uds, 16);
      acc_init(L, s, &t->fns, 64);
      t->big = (uint32_t *)memprobe_xrealloc(L, s, NULL, 0,
                                             ((size_t)t->top + 1) * 4);
    }
    t->started = 1;
  }
  for (; t->at < s->obj.n; t->at++) {
    if (!memprobe_budget(w)) return 0;
    if (t->rows) {
      const hobj *o = REC(s, t->at);
      int64_t row = sumrow(s, o);
      if (row >= 0) {
        size_t at = ((size_t)row * T_NTYPES + o->type) * 2;
        t->sum[at]++;
        t->sum[at + 1] += SIZE(o);
      }
    }
    else
      census_add(L, s, t->at);
  }
  t->done = 1;
  return 1;
}

/* Queues the roots of row 'row' (consecutive in Q_ROOTS, on top) from
** p2.rootj on; the walk of the row follows. */
static void queue_row (walker *w, int n, lua_Integer row) {
  lua_State *L = w->L;
  snap *s = w->s;
  pass2 *p2 = &s->p2;
  for (; p2->rootj <= (uint32_t)n; p2->rootj++) {
    int64_t r;
    int t;
    lua_rawgeti(L, -1, (int)p2->rootj);
    lua_rawgeti(L, -1, 3);
    if (lua_tointeger(L, -1) != row) { lua_pop(L, 2); break; }
    lua_rawgeti(L, -2, 1);
    t = lua_type(L, -1);
    if (row > 0 && memprobe_collectable(t) && t != LUA_TSTRING &&
        (r = memprobe_lookup(s, memprobe_ident(L, -1, t))) >= 0 &&
        REC(s, r)->label == row) {
      p2->seen[r] = (uint32_t)row;
      memprobe_enqueue(w, -1, (uint32_t)r, (int32_t)row);
    }
    lua_pop(L, 3);
  }
}

/*
** The second pass of modules() (pass2), a phase of its walk: for each row
** in turn, from its roots (Q_ROOTS, in label order: one pass over them),
** the walk again with the row's visit (memprobe_walker_rows). seen is
** mapped zeroed pages, which the kernel clears as they are first
** touched: clearing 4 bytes per record at once would not fit a slice.
** Returns 1 when done.
*/
static int second_pass (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  pass2 *p2 = &s->p2;
  int n;
  if (p2->seen == NULL) {
    p2->seensize = MP_PAGES(((size_t)s->obj.n + 1) * 4);
    p2->seen = (uint32_t *)memprobe_book_map(&s->book, p2->seensize);
    if (p2->seen == NULL) memprobe_nomem(L);
    p2->shared =
      (double *)memprobe_xrealloc(L, s, NULL, 0,
                                  (size_t)(s->nroots + 1) * sizeof(double));
    memset(p2->shared, 0, (size_t)(s->nroots + 1) * sizeof(double));
    p2->rootj = 1;
    p2->label = 0;
  }
  memprobe_walker_rows(w);
  lua_rawgeti(L, w->W, Q_ROOTS);
  n = (int)mp_rawlen(L, -1);
  for (;;) {
    lua_Integer row;
    if (p2->rowopen) {
      if (!memprobe_run(w)) { lua_pop(L, 1); return 0; }
      p2->rowopen = 0;
    }
    if (p2->rootj > (uint32_t)n) break;
    /* a unit per row: 70000 rows whose roots enqueue nothing made 12 ms
    ** of this loop without a clock read */
    if (!memprobe_budget(w)) { lua_pop(L, 1); return 0; }
    lua_rawgeti(L, -1, (int)p2->rootj);
    lua_rawgeti(L, -1, 3);
    row = lua_tointeger(L, -1);
    lua_pop(L, 2);
    if (row < p2->label)
      luaL_error(L, "heap walk: roots are not in label order");
    p2->label = (int32_t)row;
    queue_row(w, n, row);
    p2->rowopen = 1;
  }
  lua_pop(L, 1);
  p2->done = 1;
  return 1;
}

/* Runs the phases after the walk of a finished snapshot to their end, in
** one go (for census() and rows() on a snapshot walked without them). */
static void tally_now (lua_State *L, int ud, int rows, int top) {
  snap *s = (snap *)lua_touserdata(L, ud);
  walker w;
  if (s->t.done && s->t.rows == rows && (rows || s->t.top == top)) return;
  memprobe_tally_free(s);
  s->t.rows = rows;
  s->t.top = rows ? -1 : top;
  mp_getuv(L, ud, 1);
  if (!lua_istable(L, -1))
    luaL_error(L, "heap walk: its queue was changed from outside");
  if (rows && !s->p2.done) {  /* the queue's Q_ROOTS is gone: from arg 2 */
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, Q_ROOTS);
  }
  memprobe_walker_init(&w, L, s, ud, lua_gettop(L));
  s->busy = 1;
  if (rows && !s->p2.done) second_pass(&w);
  run_tally(&w);
  s->busy = 0;
  memprobe_queue_free(s);
  lua_settop(L, ud);
}

/* Sets field 'shared_code' = { count, bytes, by_type } of the table on
** top: the objects the host shares between states (sharedcode.c). */
static void set_sharedcode (lua_State *L, const double *n, const double *b) {
  double count = 0, bytes = 0;
  int t;
  for (t = 0; t < T_NTYPES; t++) { count += n[t]; bytes += b[t]; }
  lua_createtable(L, 0, 3);
  setnum(L, "count", count);
  setnum(L, "bytes", bytes);
  push_bytype(L, n, b);
  lua_setfield(L, -2, "by_type");
  lua_setfield(L, -2, "shared_code");
}

/* Pushes { [key] = { count, bytes } } for the type names of t. */
static void push_byname (lua_State *L, const snap *s, const acctab *t) {
  uint32_t i;
  lua_newtable(L);
  for (i = 0; i <= t->mask; i++) {
    const acc *e = &t->a[i];
    if (e->key == 0) continue;
    lua_createtable(L, 0, 2);
    setnum(L, "count", e->count);
    setnum(L, "bytes", e->bytes);
    lua_setfield(L, -2, memprobe_name_of(s, e->key));
  }
}

/* Pushes { ["source:line"] = { count, bytes, proto } } for t. */
/* Adds entry e of the functions' sums to the table on top, under
** "source:line". */
static void add_byproto (lua_State *L, const snap *s, const acc *e) {
  char key[NAMEMAX + 32];
  const hobj *pr = NULL;
  if (e->key == 0) return;
  if (e->key == 0xffffffffu)
    strcpy(key, "[C]");
  else {
    pr = REC(s, PROTO(s, e->key - 1)->obj);
    snprintf(key, sizeof(key), "%s:%d", memprobe_name_of(s, pr->name),
             (int)pr->parent);
  }
  lua_getfield(L, -1, key);  /* two chunks may share a name and line */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, key);
    setnum(L, "count", 0);
    setnum(L, "bytes", 0);
    if (pr != NULL) setnum(L, "proto", SIZE(pr));
  }
  setnum(L, "count", memprobe_getnum(L, -1, "count") + e->count);
  setnum(L, "bytes", memprobe_getnum(L, -1, "bytes") + e->bytes);
  lua_pop(L, 1);
}

/*
** The census's functions table, in Q_FUNCTIONS: an entry of the sums per
** unit, so that 50000 prototypes (150 ms of tables) do not make one step.
** Returns 1 when done.
*/
static int build_functions (walker *w) {
  lua_State *L = w->L;
  snap *s = w->s;
  tally *t = &s->t;
  lua_rawgeti(L, w->W, Q_FUNCTIONS);
  if (!lua_istable(L, -1)) {  /* sized at once: no rehash as it fills */
    lua_pop(L, 1);
    lua_createtable(L, 0, (int)t->fns.n);
    lua_pushvalue(L, -1);
    lua_rawseti(L, w->W, Q_FUNCTIONS);
    t->out = 0;
  }
  for (; t->out <= t->fns.mask; t->out++) {
    if (!memprobe_budget(w)) { lua_pop(L, 1); return 0; }
    add_byproto(L, s, &t->fns.a[t->out]);
  }
  lua_pop(L, 1);
  return 1;
}

/* Pushes { ["source:line"] = { count, bytes, proto } }: the table the
** walk's last phase built (handed over once), else built now. */
static void push_functions (lua_State *L, const snap *s, const tally *t) {
  uint32_t i;
  mp_getuv(L, 1, 1);
  lua_rawgeti(L, -1, Q_FUNCTIONS);
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    lua_rawseti(L, -3, Q_FUNCTIONS);
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 2);
  lua_createtable(L, 0, (int)t->fns.n);
  for (i = 0; i <= t->fns.mask; i++) add_byproto(L, s, &t->fns.a[i]);
}

/* Pushes { { bytes, entries, type, path } } for the largest containers. */
static void push_largest (lua_State *L, const snap *s, const tally *t) {
  int k;
  lua_createtable(L, t->nbig, 0);
  for (k = 0; k < t->nbig; k++) {
    const hobj *o = REC(s, t->big[k]);
    lua_createtable(L, 0, 4);
    setnum(L, "bytes", SIZE(o));
    setnum(L, "entries", o->type == LUA_TTABLE ? o->aux : 0);
    lua_pushstring(L, tnames[o->type]);
    lua_setfield(L, -2, "type");
    setpath(L, s, t->big[k]);
    lua_rawseti(L, -2, k + 1);
  }
}

/*
** snap:census(top) -> { by_type, userdata, functions, largest, total,
** objects, shared_code }: the raw census memprobe.heap() dresses, from the
** tally (the walk's last phase when it was asked for, else now).
*/
static int l_census (lua_State *L) {
  snap *s = checksnap(L, 1);
  int top = (int)luaL_optinteger(L, 2, 10);
  const tally *t = &s->t;
  luaL_argcheck(L, DONE(s), 1, "walk not finished");
  luaL_argcheck(L, top >= 0 && top <= 1000, 2, "top must be 0..1000");
  lua_settop(L, 2);
  tally_now(L, 1, 0, top);
  lua_createtable(L, 0, 7);
  push_bytype(L, t->n, t->b);
  lua_setfield(L, -2, "by_type");
  push_byname(L, s, &t->uds);
  lua_setfield(L, -2, "userdata");
  push_functions(L, s, t);
  lua_setfield(L, -2, "functions");
  push_largest(L, s, t);
  lua_setfield(L, -2, "largest");
  setnum(L, "total", t->total);
  setnum(L, "objects", t->objects);
  set_sharedcode(L, t->hn, t->hb);
  return 1;
}

/*
** snap:rows(roots [, first, last]) -> { [label] = { exclusive, shared,
** objects, by_type }, shared_code = { count, bytes, by_type } }.
** Exclusive bytes are those of objects only one root reaches; the shared
** bytes of a row come from the second pass (roots at 2, as given to
** heap_snapshot). With first and last, the rows of those labels only
** (the shared row and shared_code are labels nroots + 1 and + 2), so
** that a caller can build 70000 rows a few hundred at a time.
*/
int memprobe_l_rows (lua_State *L) {
  snap *s = checksnap(L, 1);
  int row, first, last;
  const double *sum;
  luaL_argcheck(L, DONE(s), 1, "walk not finished");
  luaL_checktype(L, 2, LUA_TTABLE);
  first = (int)luaL_optinteger(L, 3, 1);
  last = (int)luaL_optinteger(L, 4, s->nroots + 2);
  luaL_argcheck(L, first >= 1, 3, "first label must be at least 1");
  if (last > s->nroots + 2) last = s->nroots + 2;
  lua_settop(L, 2);
  tally_now(L, 1, 1, -1);
  sum = s->t.sum;
  lua_newtable(L);
  for (row = first; row <= last; row++) {
    double n[T_NTYPES], b[T_NTYPES], bytes = 0, objects = 0;
    int t;
    for (t = 0; t < T_NTYPES; t++) {
      n[t] = sum[((size_t)row * T_NTYPES + t) * 2];
      b[t] = sum[((size_t)row * T_NTYPES + t) * 2 + 1];
      objects += n[t];
      bytes += b[t];
    }
    if (row == s->nroots + 2) { set_sharedcode(L, n, b); break; }
    if (row > s->nroots && objects == 0) continue;  /* nothing shared */
    lua_createtable(L, 0, 4);
    setnum(L, "exclusive", bytes);
    setnum(L, "objects", objects);
    setnum(L, "shared", row <= s->nroots ? s->p2.shared[row] : 0);
    push_bytype(L, n, b);
    lua_setfield(L, -2, "by_type");
    lua_rawseti(L, -2, row <= s->nroots ? row : SHARED);
  }
  return 1;
}

/* }====================================================== */

/*
** snap:referrers() -> array of { path, wide } ending with the edge to the
** target given as opts.target: every referrer the walk met, shortest
** first (each referrer's own path is a shortest one).
*/
static int l_referrers (lua_State *L) {
  snap *s = checksnap(L, 1);
  int i;
  const referrers *f = &s->refs;
  lua_createtable(L, f->n, 0);
  for (i = 0; i < f->n; i++) {
    lua_createtable(L, 0, 1);
    memprobe_pushpath(L, s, f->rec[i] - 1);
    memprobe_pushedge(L, s, (int)f->edge[i], f->name[i],
                      memprobe_datalike(s, (int)f->edge[i], f->rec[i]));
    lua_rawseti(L, -2, (int)mp_rawlen(L, -2) + 1);
    lua_setfield(L, -2, "path");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* For heapdiff.c, which builds snap:diff on these. */
snap *memprobe_checksnap (lua_State *L, int i) { return checksnap(L, i); }
void memprobe_setnum (lua_State *L, const char *k, double v) {
  setnum(L, k, v);
}

/* }====================================================== */


void memprobe_open_heap (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "heap_dumpsize",     memprobe_l_dumpsize },
    { "heap_model_job",    memprobe_l_model_job },
    { "heap_sample",       memprobe_l_sample },
    { "heap_snapshot",     memprobe_l_snapshot },
    { "heap_thread",       memprobe_l_thread },
    { "heap_walk_buffers", memprobe_l_walk_buffers },
    { NULL, NULL }
  };
  static const luaL_Reg methods[] = {
    { "census",    l_census },
    { "close",     snap_gc },
    { "referrers", l_referrers },
    { "release",   l_release },
    { "rows",      memprobe_l_rows },
    { "stats",     l_stats },
    { "step",      memprobe_l_step },
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
  memprobe_open_model(L);
  memprobe_open_heapdiff(L);
  memprobe_open_heapdom(L);
  memprobe_open_heapsnapshot(L);
  lua_pushcfunction(L, memprobe_step_body);
  lua_setfield(L, LUA_REGISTRYINDEX, STEP_KEY);
  lua_pushnumber(L, MAXOBJECTS);  /* the Lua layer checks against it */
  lua_setfield(L, -3, "heap_max_objects");
  memprobe_register(L, funcs);
}
