/*
** tracker.c: the allocator hook. track() puts memprobe_hook in front of
** the state's allocator (lua_getallocf/lua_setallocf); every call is
** forwarded to the previous allocator with its own ud, so allocators that
** hosts install (skynet, OpenResty) keep working under it. The state's ud
** stays the host's: the hook finds its tracker through the ud's cell
** (hookcell.c), which outlives the tracker.
**
** The bookkeeping (mp_tracker) comes from malloc, outside the heap it
** measures, one per lua_State: no C globals, so states in different
** threads never share anything.
**
** Two traps shape the life cycle:
** - lua_close unloads C libraries (the CLIBS finalizer on 5.2+, the
**   library handles on 5.1/LuaJIT) before it frees the last blocks, so a
**   hook that is still installed then jumps into unmapped code. The
**   tracker's userdata is created after memprobe.core was loaded, so its
**   __gc runs before the library's and puts the previous allocator back;
**   the .so is also pinned with RTLD_NODELETE in case an odd finalizer
**   order ever defeats that.
** - LuaJIT frees its arena in lua_close only when it finds its own
**   allocator installed, which the same restore takes care of.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MP_SENTINEL_MT  "memprobe.Sentinel"
#define MP_CLOSE_MT     "memprobe.CloseSentinel"
#define MP_CLOSE_REG    "memprobe.Tracker.close"

#if defined(__GNUC__)
#define mp_unlikely(x)  __builtin_expect(!!(x), 0)
#else
#define mp_unlikely(x)  (x)
#endif


/*
** {======================================================
** The hook: no Lua in here, ever
** =======================================================
*/

/*
** Class k holds sizes in (2^(k-1), 2^k]; sizes 1 and 2 share class 1.
** With MP_NCLASS at 65 no clamp is needed on the hot path.
*/
static unsigned sizeclass (size_t n) {
#if defined(__GNUC__)
  return (unsigned)(64 - __builtin_clzll((unsigned long long)((n - 1) | 1)));
#else
  unsigned k;
  for (k = 1; ((size_t)1 << k) < n; k++) ;
  return k;
#endif
}

/*
** Counts one forwarded call whose result is p (the slow path's
** bookkeeping; the hook below inlines the same for the common cases). A
** block the allocator had before the hook came is freed with its exact
** osize, so 'live' (which started from the collector's own count) stays
** exact. Allocations are counted in the histogram only: allocs is its sum.
*/
static void *account (mp_tracker *t, void *p, void *ptr, size_t osize,
                      size_t nsize) {
  size_t old = (ptr != NULL) ? osize : 0;
  if (nsize == 0) {
    if (ptr != NULL) {
      t->live -= old;
      t->frees++;
    }
    return p;
  }
  if (mp_unlikely(p == NULL)) {
    t->failed++;
    return NULL;
  }
  t->live += nsize - old;  /* modular: right for shrinks too */
  if (t->live > t->peak)
    t->peak = t->live;
  if (ptr == NULL) {
    t->hist[sizeclass(nsize)]++;
#if MP_OSIZE_TAGS
    t->type_n[osize & 0x0F]++;
    t->type_b[osize & 0x0F] += nsize;
#endif
  }
  else
    t->reallocs++;
  return p;
}

/*
** Ledger mode: new blocks are entered in the block table under the
** current tag; a block keeps its tag (and a block without one stays
** without) through reallocs until it is freed, wherever that happens.
** Room is reserved before allocating, so that a full table makes the
** allocation fail instead of losing a block.
*/
static void *ledgered (mp_tracker *t, void *ptr, size_t osize,
                       size_t nsize) {
  unsigned tag;
  void *p;
  if (ptr == NULL) {
    if (nsize == 0 || t->cur == 0)
      return account(t, t->f(t->ud, ptr, osize, nsize), ptr, osize, nsize);
    if (!memprobe_btab_reserve(&t->blocks)) {
      t->failed++;
      return NULL;
    }
    p = account(t, t->f(t->ud, NULL, osize, nsize), NULL, osize, nsize);
    if (p != NULL) {
      memprobe_btab_put(&t->blocks, p, t->cur);
      t->tag_live[t->cur] += (int64_t)nsize;
    }
    return p;
  }
  tag = memprobe_btab_get(&t->blocks, ptr);
  p = account(t, t->f(t->ud, ptr, osize, nsize), ptr, osize, nsize);
  if (tag == 0)
    return p;
  if (nsize == 0) {
    memprobe_btab_del(&t->blocks, ptr);
    t->tag_live[tag] -= (int64_t)osize;
  }
  else if (p != NULL) {
    t->tag_live[tag] += (int64_t)nsize - (int64_t)osize;
    if (p != ptr) {  /* deleting first leaves room for the new key */
      memprobe_btab_del(&t->blocks, ptr);
      memprobe_btab_put(&t->blocks, p, tag);
    }
  }
  return p;
}

/*
** The slow path: a growth that would take live past the guard, ledger
** mode, or an odd call. Refuses a growth past the limit (Lua then
** collects and retries on 5.2+, or raises "not enough memory"); notes a
** watermark crossing for the next safe point.
*/
static void *slow (mp_tracker *t, void *ptr, size_t osize, size_t nsize) {
  size_t old = (ptr != NULL) ? osize : 0;
  void *p;
  memprobe_rearm(t);  /* the sampling clock learns what the fast path took */
  if (nsize > old && t->live + (nsize - old) > t->limit) {
    t->failed++;
    return NULL;
  }
  if (t->ledger)
    p = ledgered(t, ptr, osize, nsize);
  else
    p = account(t, t->f(t->ud, ptr, osize, nsize), ptr, osize, nsize);
  if (p != NULL && t->live > t->mark) {
    t->marked = 1;
    t->crossed = t->live;
    t->mark = SIZE_MAX;
    memprobe_guard(t);
  }
  if (t->prof != NULL)
    memprobe_prof_note(t, p, ptr, osize, nsize);
  memprobe_rearm(t);
  return p;
}

/*
** Growth below the guard: a new block or a realloc. Kept out of the hook
** so that frees, the other half of all calls, need no stack frame. One
** countdown, 'left', says how many bytes may grow before the slow path
** must look: the room below the guard or the bytes to the profiler's next
** sample, whichever is less (memprobe_rearm). Frees do not give room
** back to it; the slow path recomputes it when it runs out.
*/
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void *grow (mp_tracker *t, void *ptr, size_t osize, size_t nsize) {
  void *p;
  if (ptr == NULL) {  /* osize is a type tag (5.2+) or 0 */
    if (mp_unlikely(nsize >= t->left))
      return slow(t, ptr, osize, nsize);
    if (mp_unlikely((p = t->f(t->ud, NULL, osize, nsize)) == NULL)) {
      t->failed++;
      return NULL;
    }
    t->live += nsize;
    if (t->live > t->peak)
      t->peak = t->live;
    t->hist[sizeclass(nsize)]++;
#if MP_OSIZE_TAGS
    t->type_n[osize & 0x0F]++;
    t->type_b[osize & 0x0F] += nsize;
#endif
    t->left -= nsize;
    return p;
  }
  if (mp_unlikely(t->freeslow || (nsize > osize && nsize - osize >= t->left)))
    return slow(t, ptr, osize, nsize);
  if (mp_unlikely((p = t->f(t->ud, ptr, osize, nsize)) == NULL)) {
    t->failed++;
    return NULL;
  }
  t->live += nsize - osize;  /* modular: right for shrinks too */
  if (t->live > t->peak)
    t->peak = t->live;
  t->reallocs++;
  if (nsize > osize)
    t->left -= nsize - osize;
  return p;
}

/*
** The hook. Its cost is what every program under track() pays: the
** cell's lookup, then a free is two counters and a tail call to the
** allocator, a growth below the guard goes to grow(), everything else to
** slow(). The guard is 0 in ledger mode, which sends every allocation to
** the slow path; frees of blocks (and reallocs) check one flag
** themselves, 'freeslow': ledger mode, or sampled blocks to forget. A retired cell's tracker (untracked, or its state closing)
** has no limit, mark or ledger: it only forwards.
*/
static inline void *hook (mp_tracker *t, void *ptr, size_t osize,
                          size_t nsize) {
  if (nsize != 0)
    return grow(t, ptr, osize, nsize);
  if (ptr != NULL) {  /* free(NULL), which 5.4 does, counts for nothing */
    if (mp_unlikely(t->freeslow)) {
      if (t->ledger)
        return slow(t, ptr, osize, 0);
      if (t->pseen[memprobe_seenslot(ptr)])
        memprobe_prof_forget(t, ptr);
    }
    t->live -= osize;
    t->frees++;
  }
  return t->f(t->ud, ptr, osize, 0);
}

/* Installed with the host's ud, which is the key of the state's cell. */
void *memprobe_hook (void *ud, void *ptr, size_t osize, size_t nsize) {
  return hook(&memprobe_cell_find(ud)->tr, ptr, osize, nsize);
}

/* Installed with the cell as ud: a second tracked state on the same ud. */
void *memprobe_hook_boxed (void *ud, void *ptr, size_t osize, size_t nsize) {
  return hook(&((mp_cell *)ud)->tr, ptr, osize, nsize);
}

/* Recomputes the guard after limit, mark or ledger changed. */
void memprobe_guard (mp_tracker *t) {
  t->guard = t->ledger ? 0 : (t->limit < t->mark) ? t->limit : t->mark;
  memprobe_rearm(t);
}

/*
** Resets the fast path's countdown: first the sampling clock is told
** what the fast path took since the last reset (left ran down from
** 'armed'; 'sample' >= armed, so it cannot wrap), then left becomes the
** room below the guard or the bytes to the next sample, the smaller.
** Also sets freeslow. Called by the slow path, at its start and end,
** and by whatever changes the guard, the clock or the sampled blocks.
*/
void memprobe_rearm (mp_tracker *t) {
  size_t room = (t->guard > t->live) ? t->guard - t->live : 0;
  if (t->sample != SIZE_MAX)
    t->sample -= t->armed - t->left;
  t->left = t->armed = (room < t->sample) ? room : t->sample;
  t->freeslow = t->ledger || t->pseen != NULL;
}

/* }====================================================== */


uint64_t memprobe_allocs (const mp_tracker *t) {
  uint64_t n = 0;
  unsigned i;
  for (i = 0; i < MP_NCLASS; i++)
    n += t->hist[i];
  return n;
}

/* A tracker over the allocator (f, ud), counting from zero. */
void memprobe_tracker_init (mp_tracker *t, lua_Alloc f, void *ud) {
  memset(t, 0, sizeof(*t));
  t->f = f;
  t->ud = ud;
  t->guard = t->limit = t->mark = SIZE_MAX;
  t->left = t->armed = t->sample = SIZE_MAX;
}

/*
** Frees what the tracker holds besides itself (it lives in its cell) and
** leaves it forwarding: no limit, mark or ledger.
*/
void memprobe_tracker_clear (mp_tracker *t) {
  memprobe_prof_detach(t);
  memprobe_btab_free(&t->blocks);
  free(t->tag_live);
  t->tag_live = NULL;
  t->ntags = t->tagcap = t->cur = 0;
  t->ledger = t->marked = t->sentinel = t->host = 0;
  t->guard = t->limit = t->mark = SIZE_MAX;
  memprobe_rearm(t);
}

/* The state's cell, or NULL when the hook is not the allocator. */
static mp_cell *current_cell (lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  if (f == memprobe_hook)
    return memprobe_cell_get(ud);
  return (f == memprobe_hook_boxed) ? (mp_cell *)ud : NULL;
}

/* The state's tracker, or NULL when it is not tracked. */
mp_tracker *memprobe_current (lua_State *L) {
  mp_cell *c = current_cell(L);
  return (c != NULL) ? c->t : NULL;
}

/*
** Keeps this .so mapped until the process ends: dlclose then never unmaps
** the code a late allocator call might still reach.
*/
static void pin_library (void) {
  static const char anchor = 0;
  Dl_info di;
  if (dladdr(&anchor, &di) != 0 && di.dli_fname != NULL &&
      di.dli_fname[0] != '\0')
    (void)dlopen(di.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
}

/*
** A handle names a tracker by its cell and the cell's generation: a
** handle of a tracker that was untracked, or replaced by a newer handle
** (the registry entry was cleared through debug), no longer matches, and
** cells never go away, so no handle reaches freed memory.
*/
typedef struct mp_handle {
  mp_cell *cell;          /* NULL until bound */
  unsigned gen;
} mp_handle;

static mp_handle *new_handle (lua_State *L) {
  mp_handle *h = (mp_handle *)mp_newuserdata(L, sizeof(mp_handle));
  h->cell = NULL;
  h->gen = 0;
  luaL_getmetatable(L, MP_TRACKER_MT);
  lua_setmetatable(L, -2);
  return h;
}

/* The handle's tracker, or NULL when the handle is stale. */
static mp_tracker *handle_tracker (const mp_handle *h) {
  if (h->cell == NULL || h->cell->gen != h->gen)
    return NULL;
  return h->cell->t;
}

/* Makes h the one handle of t: every older one goes stale. */
static void bind_handle (mp_handle *h, mp_tracker *t) {
  t->cell->gen++;
  h->cell = t->cell;
  h->gen = t->cell->gen;
}

/*
** The state's close sentinel, made once: a userdata kept in the registry
** whose finalizer runs in lua_close, and whose address names the state
** to its cells (a cell of a closed state may go to another state).
*/
static const void *close_sentinel (lua_State *L) {
  const void *p;
  lua_getfield(L, LUA_REGISTRYINDEX, MP_CLOSE_REG);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    mp_newuserdata(L, 1);
    luaL_getmetatable(L, MP_CLOSE_MT);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, MP_CLOSE_REG);
  }
  p = lua_topointer(L, -1);
  lua_pop(L, 1);
  return p;
}

static int close_gc (lua_State *L) {
  memprobe_cell_closing(lua_topointer(L, 1));
  return 0;
}

/*
** Pushes the registry table that holds the tracker's Lua side: 'handle'
** (the userdata), 'watermark' (the function), 'ids'/'names' (ledger tags).
** Pushes nil when the state is not tracked from Lua.
*/
static void push_state (lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, MP_TRACKER_REG);
}

/*
** Installs the hook unless it is there already, and makes sure the Lua
** side exists. Every Lua allocation happens before the collector's count
** is read, so that 'live' starts equal to it.
*/
mp_tracker *memprobe_track (lua_State *L) {
  mp_tracker *t = memprobe_current(L);
  mp_handle *h;
  void *ud, *hud;
  lua_Alloc f, hf;
  const void *owner;
  push_state(L);
  if (t != NULL && lua_istable(L, -1)) {
    lua_pop(L, 1);
    return t;
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 5);
  /* A tracker of this state is still there, under another allocator
  ** installed over it: the new tracker nests over both, and keeps the
  ** outer one's Lua side ('outer') for untrack() to put back. Dropped, its
  ** handle would be collected while its hook cannot be removed, and once
  ** that allocator went the hook would run again with nothing left to
  ** free it when the state closes. */
  push_state(L);
  lua_setfield(L, -2, "outer");
  h = new_handle(L);
  lua_setfield(L, -2, "handle");
  lua_newtable(L);
  lua_setfield(L, -2, "ids");
  lua_newtable(L);
  lua_setfield(L, -2, "names");
  if (t == NULL) {  /* not installed by the host: install now */
    owner = close_sentinel(L);
    f = lua_getallocf(L, &ud);
    if ((t = memprobe_cell_claim(f, ud, owner, &hf, &hud)) == NULL)
      luaL_error(L, "not enough memory");
    pin_library();
    lua_setfield(L, LUA_REGISTRYINDEX, MP_TRACKER_REG);
    t->live = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
              (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    t->peak = t->live;
    memprobe_rearm(t);
    lua_setallocf(L, hf, hud);
  }
  else
    lua_setfield(L, LUA_REGISTRYINDEX, MP_TRACKER_REG);
  bind_handle(h, t);
  return t;
}

static void push_handle (lua_State *L) {
  push_state(L);
  lua_getfield(L, -1, "handle");
  lua_remove(L, -2);
}

/* Methods work on a tracker that is still installed. */
static mp_tracker *check_tracker (lua_State *L) {
  mp_handle *h = (mp_handle *)luaL_checkudata(L, 1, MP_TRACKER_MT);
  mp_tracker *t = handle_tracker(h);
  if (t == NULL)
    luaL_error(L, "tracker was untracked");
  return t;
}

static size_t check_size (lua_State *L, int arg) {
  lua_Number n = luaL_checknumber(L, arg);
  luaL_argcheck(L, n >= 0 && n < 9.0e15, arg, "size must be 0 or more bytes");
  return (size_t)n;
}


/*
** {======================================================
** Watermark: called at safe points only
** =======================================================
*/

/*
** A sentinel is a finalizable userdata that nothing references: it dies
** in the next collection cycle, and its __gc (run by the collector at a
** safe point, never inside the allocator) checks the watermark and makes
** a new sentinel while one is still set.
*/
static void arm_sentinel (lua_State *L, mp_tracker *t) {
  if (t->sentinel)
    return;
  mp_newuserdata(L, 1);
  luaL_getmetatable(L, MP_SENTINEL_MT);
  lua_setmetatable(L, -2);
  lua_pop(L, 1);
  t->sentinel = 1;
}

/*
** Calls the watermark function once after live crossed its mark, with
** live as it was just after the crossing. From a
** finalizer it runs protected and keeps an error as
** stats().watermark_error; from a method, errors propagate.
*/
void memprobe_safepoint (lua_State *L, mp_tracker *t, int protect) {
  if (!t->marked)
    return;
  t->marked = 0;
  push_state(L);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_getfield(L, -1, "watermark");
  lua_pushnil(L);
  lua_setfield(L, -3, "watermark");  /* one shot */
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 2);
    return;
  }
  mp_pushint(L, t->crossed);
  if (!protect)
    lua_call(L, 1, 0);
  else if (lua_pcall(L, 1, 0, 0) != 0)
    lua_setfield(L, -2, "watermark_error");
  lua_pop(L, 1);
}

static int sentinel_gc (lua_State *L) {
  mp_tracker *t = memprobe_current(L);
  if (t == NULL)
    return 0;
  t->sentinel = 0;
  memprobe_safepoint(L, t, 1);
  if ((t = memprobe_current(L)) != NULL && t->mark != SIZE_MAX)
    arm_sentinel(L, t);
  return 0;
}

/* }====================================================== */


/***
Installs the allocator hook on the running state (once: calling again
returns the same tracker). From then on `tracker:stats().live` equals
`collectgarbage("count") * 1024`. Methods: `stats()`, `reset_peak([floor])`,
`limit(bytes|nil)`, `watermark(bytes, fn)`, `untrack()`.
@function track
@tparam[opt] table opts `limit` (bytes): as `tracker:limit(bytes)`
@treturn userdata the tracker (`memprobe.Tracker`)
*/
static int l_track (lua_State *L) {
  mp_tracker *t;
  size_t limit = SIZE_MAX;
  /* Options are read raw, and all of them before the hook goes in: a
  ** metamethod could run Lua that untracks under our feet. */
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
      if (strcmp(k, "limit") != 0)
        return luaL_argerror(L, 1, "unknown option (limit)");
      limit = check_size(L, -1);
      lua_pop(L, 1);
    }
  }
  t = memprobe_track(L);
  if (limit != SIZE_MAX) {  /* nothing ran Lua since memprobe_track */
    t->limit = limit;
    memprobe_guard(t);
  }
  push_handle(L);
  return 1;
}

/***
The tracker of the running state when it is tracked (by `track()` or by
a host's `memprobe_newstate`), or nil; never installs the hook.
@function tracker
@treturn userdata|nil the tracker
*/
static int l_tracker (lua_State *L) {
  if (memprobe_current(L) == NULL)
    lua_pushnil(L);
  else {
    memprobe_track(L);
    push_handle(L);
  }
  return 1;
}

#if MP_OSIZE_TAGS
static const char *const typename_[MP_NTAGS] = {
  "other", NULL, NULL, NULL, "string", "table", "function", "userdata",
  "thread", MP_TAG9, MP_TAG10, NULL, NULL, NULL, NULL, NULL
};
#endif

/*
** stats(): the counters as they were when it was called (copied before
** the result table is allocated), and 'gc', the collector's count read
** at the same instant: the two are equal. A collectgarbage("count") taken
** in Lua just before the call can differ when the call grows the stack.
*/
static int l_stats (lua_State *L) {
  mp_tracker s;
  uint64_t gc;
  unsigned i;
  check_tracker(L);
  memprobe_safepoint(L, check_tracker(L), 0);
  memcpy(&s, check_tracker(L), sizeof(s));
  /* the collector's own count at the same instant: calling a function
  ** from Lua can grow the stack, so a count read there may differ */
  gc = (uint64_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
       (uint64_t)lua_gc(L, LUA_GCCOUNTB, 0);
  lua_createtable(L, 0, 14);
  mp_setint(L, "live", s.live);
  mp_setint(L, "gc", gc);
  /* what live holds that the collector does not count: 5.5's external
  ** strings and luaL_Buffer boxes in progress (negative when blocks made
  ** before track() that the collector never counted were freed since) */
  mp_pushint(L, (int64_t)s.live - (int64_t)gc);
  lua_setfield(L, -2, "uncounted");
  mp_setint(L, "peak", s.peak);
  mp_setint(L, "allocs", memprobe_allocs(&s));
  mp_setint(L, "frees", s.frees);
  mp_setint(L, "reallocs", s.reallocs);
  mp_setint(L, "failed", s.failed);
  if (s.limit != SIZE_MAX)
    mp_setint(L, "limit", s.limit);
  lua_newtable(L);
  for (i = 0; i < 64; i++)  /* class 64 (over 2^63 bytes) cannot occur */
    if (s.hist[i] != 0) {
      mp_pushint(L, (uint64_t)1 << i);
      mp_pushint(L, s.hist[i]);
      lua_rawset(L, -3);
    }
  lua_setfield(L, -2, "histogram");
#if MP_OSIZE_TAGS
  lua_newtable(L);
  for (i = 0; i < MP_NTAGS; i++)
    if (s.type_n[i] != 0) {
      lua_createtable(L, 0, 2);
      mp_setint(L, "allocs", s.type_n[i]);
      mp_setint(L, "bytes", s.type_b[i]);
      lua_setfield(L, -2, typename_[i] != NULL ? typename_[i] : "other");
    }
  lua_setfield(L, -2, "by_type");
#endif
  push_state(L);
  lua_getfield(L, -1, "watermark_error");
  lua_setfield(L, -3, "watermark_error");
  lua_pop(L, 1);
  return 1;
}

/*
** reset_peak([floor]): peak becomes max(live, floor); returns the peak it
** replaced (nested measurements save and restore it this way).
*/
static int l_reset_peak (lua_State *L) {
  mp_tracker *t = check_tracker(L);
  size_t floor = lua_isnoneornil(L, 2) ? 0 : check_size(L, 2);
  size_t prev = t->peak;
  t->peak = (t->live > floor) ? t->live : floor;
  mp_pushint(L, prev);
  return 1;
}

/* limit(bytes|nil): returns the previous limit (nil when there was none). */
static int l_limit (lua_State *L) {
  mp_tracker *t = check_tracker(L);
  size_t prev = t->limit;
  size_t n = SIZE_MAX;
  if (!lua_isnoneornil(L, 2))
    n = check_size(L, 2);
  else
    luaL_argcheck(L, !lua_isnone(L, 2), 2, "bytes or nil expected");
  t->limit = n;
  memprobe_guard(t);
  if (prev == SIZE_MAX)
    lua_pushnil(L);
  else
    mp_pushint(L, prev);
  return 1;
}

/*
** watermark(bytes, fn): fn(live) is called once, at the first safe point
** after live went past bytes: the end of a collection cycle (sentinel
** finalizer) or the next tracker method call. watermark(nil) clears it.
** When live is past bytes already, fn runs before this returns.
*/
static int l_watermark (lua_State *L) {
  mp_tracker *t = check_tracker(L);
  size_t n = SIZE_MAX;
  lua_settop(L, 3);
  if (!lua_isnil(L, 2)) {
    n = check_size(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
  }
  push_state(L);
  lua_pushvalue(L, 3);
  lua_setfield(L, -2, "watermark");
  lua_pop(L, 1);
  t->marked = 0;
  t->mark = n;
  memprobe_guard(t);
  if (n != SIZE_MAX) {
    if (t->live > n) {
      t->marked = 1;
      t->crossed = t->live;
      t->mark = SIZE_MAX;
      memprobe_guard(t);
      memprobe_safepoint(L, t, 0);
    }
    else
      arm_sentinel(L, t);
  }
  return 0;
}

/*
** Ends tracker t: its cell forwards from now on (blocks made through the
** hook may still come back to it, see hookcell.c).
*/
static void retire (mp_tracker *t) {
  memprobe_cell_retire(t->cell, 0);
}

/*
** untrack(): puts the previous allocator back, and the Lua side of a
** tracker it was made over (see memprobe_track). Idempotent. Fails (nil,
** message, 0) when the host installed the hook or another hook was
** chained over this one: removing it would cut that chain.
*/
static int l_untrack (lua_State *L) {
  mp_handle *h = (mp_handle *)luaL_checkudata(L, 1, MP_TRACKER_MT);
  mp_tracker *t = handle_tracker(h);
  if (t != NULL) {
    if (t->host)
      return memprobe_result(L, 0,
                             "the host installed this tracker (memprobe_newstate)");
    if (memprobe_current(L) != t)
      return memprobe_result(L, 0,
                             "another allocator was installed over the tracker");
    push_state(L);
    lua_getfield(L, -1, "outer");  /* the tracker it nested over, if any */
    lua_setfield(L, LUA_REGISTRYINDEX, MP_TRACKER_REG);
    lua_pop(L, 1);
    lua_setallocf(L, t->f, t->ud);
    retire(t);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/*
** __gc: runs in lua_close before the library is unloaded (see the top of
** this file), or earlier for a handle that is stale. If another hook sits
** over ours, the hook stays in that chain and its cell forwards.
*/
static int l_gc (lua_State *L) {
  mp_handle *h = (mp_handle *)luaL_checkudata(L, 1, MP_TRACKER_MT);
  mp_tracker *t = handle_tracker(h);
  h->cell = NULL;
  if (t != NULL && !t->host) {
    if (memprobe_current(L) == t)
      lua_setallocf(L, t->f, t->ud);
    retire(t);
  }
  return 0;
}

static int l_tostring (lua_State *L) {
  mp_handle *h = (mp_handle *)luaL_checkudata(L, 1, MP_TRACKER_MT);
  mp_tracker *t = handle_tracker(h);
  if (t == NULL)
    lua_pushliteral(L, "memprobe.Tracker (untracked)");
  else
    lua_pushfstring(L, "memprobe.Tracker (%f KiB live)",
                    (lua_Number)t->live / 1024);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"track",      l_track},
  {"tracker",    l_tracker},
  {NULL, NULL}
};

static const luaL_Reg methods[] = {
  {"limit",      l_limit},
  {"reset_peak", l_reset_peak},
  {"stats",      l_stats},
  {"untrack",    l_untrack},
  {"watermark",  l_watermark},
  {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
  {"__close",    l_untrack},
  {"__gc",       l_gc},
  {"__tostring", l_tostring},
  {NULL, NULL}
};

void memprobe_open_tracker (lua_State *L, mp_ctx *c) {
  (void)c;
  if (luaL_newmetatable(L, MP_TRACKER_MT)) {
    mp_setfuncs(L, metamethods, 0);
    lua_newtable(L);
    mp_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, MP_TRACKER_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, MP_SENTINEL_MT)) {
    lua_pushcfunction(L, sentinel_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, MP_CLOSE_MT)) {
    lua_pushcfunction(L, close_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  memprobe_register(L, funcs);
}
