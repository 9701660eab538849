/*
** ledger.c: attribution by scope. scope(tag, fn, ...) runs fn with new
** blocks charged to tag; ledger() tells the live bytes per tag. The hook
** (tracker.c) keeps block -> tag in a C-heap table (blocktab.c), so a
** block stays charged to its tag until it is freed, wherever that is.
** Tag names live in the tracker's registry table: 'ids' (name -> id) and
** 'names' (id -> name); the bytes per id in the tracker itself.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <stdlib.h>

/* The id of the tag at index 'arg', made on first use. */
static unsigned tag_id (lua_State *L, mp_tracker *t, int arg) {
  unsigned id;
  lua_getfield(L, LUA_REGISTRYINDEX, MP_TRACKER_REG);
  lua_getfield(L, -1, "ids");
  lua_pushvalue(L, arg);
  lua_rawget(L, -2);
  id = (unsigned)lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (id == 0) {
    if (t->ntags + 1 >= t->tagcap) {
      unsigned cap = t->tagcap ? t->tagcap * 2 : 16;
      int64_t *v = (int64_t *)realloc(t->tag_live, cap * sizeof(int64_t));
      if (v == NULL)
        luaL_error(L, "not enough memory");
      t->tag_live = v;
      t->tagcap = cap;
    }
    id = t->ntags + 1;
    lua_pushvalue(L, arg);
    lua_pushnumber(L, (lua_Number)id);
    lua_rawset(L, -3);
    lua_getfield(L, -2, "names");
    lua_pushvalue(L, arg);
    lua_rawseti(L, -2, (int)id);
    lua_pop(L, 1);
    t->tag_live[id] = 0;
    t->ntags = id;  /* only now: the hook may read tag_live[id] */
  }
  lua_pop(L, 2);
  return id;
}

/***
Runs `fn(...)` with every new block charged to `tag` until it is freed,
wherever that happens. An error in fn propagates unchanged, with the
outer tag restored. The tag belongs to the state, not to a coroutine,
and fn cannot yield across scope. Installs the tracker if needed; from
the first scope on, the hook runs in ledger mode (slower: every block is
looked up in the address table).
@function scope
@tparam string tag
@tparam function fn
@param ... fn's arguments
@return fn's results
*/
static int l_scope (lua_State *L) {
  int n = lua_gettop(L), status;
  mp_tracker *t;
  mp_cell *c;
  unsigned id, prev, gen;
  luaL_checktype(L, 1, LUA_TSTRING);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  t = memprobe_track(L);
  t->ledger = 1;
  memprobe_guard(t);
  id = tag_id(L, t, 1);
  prev = t->cur;
  t->cur = id;
  c = t->cell;  /* cells outlive trackers: safe to read after fn */
  gen = c->gen;
  status = lua_pcall(L, n - 2, LUA_MULTRET, 0);
  /* fn may have untracked (t is freed) or even tracked anew (a new
  ** tracker may sit at t's address): the generation tells */
  if (c->gen == gen && c->t == t)
    t->cur = prev;
  if (status != 0)
    return lua_error(L);
  return lua_gettop(L) - 1;
}

/***
Live bytes per scope tag (and per module loaded under
`account_requires`), exact: tags whose blocks were all freed show 0.
@function ledger
@treturn table `{ [tag] = live bytes }`
*/
static int l_ledger (lua_State *L) {
  mp_tracker *t = memprobe_current(L);
  unsigned i;
  lua_newtable(L);
  lua_getfield(L, LUA_REGISTRYINDEX, MP_TRACKER_REG);
  if (t == NULL || !lua_istable(L, -1)) {
    lua_pop(L, 1);
    return 1;
  }
  lua_getfield(L, -1, "names");
  for (i = 1; i <= t->ntags; i++) {
    int64_t v = t->tag_live[i];
    lua_rawgeti(L, -1, (int)i);
    mp_pushint(L, v);
    lua_rawset(L, -5);
  }
  lua_pop(L, 2);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"ledger", l_ledger},
  {"scope",  l_scope},
  {NULL, NULL}
};

void memprobe_open_ledger (lua_State *L, mp_ctx *c) {
  (void)c;
  memprobe_register(L, funcs);
}
