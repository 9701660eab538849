/*
** core.c: luaopen_memprobe_core. Creates the per-state context (the
** upvalue of every function) and lets each concern file register its
** functions into the module table.
*/
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memprobe.h"

mp_ctx *memprobe_ctx (lua_State *L) {
  return (mp_ctx *)lua_touserdata(L, lua_upvalueindex(1));
}

/* Module table at -2, context at -1: registers l with the context as the
** only upvalue and leaves the stack as it was. */
void memprobe_register (lua_State *L, const luaL_Reg *l) {
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);
  mp_setfuncs(L, l, 1);
  lua_pop(L, 1);
}

/* __gc of the context; idempotent. */
static int ctx_gc (lua_State *L) {
  mp_ctx *c = (mp_ctx *)luaL_checkudata(L, 1, MP_CTX_MT);
  memprobe_closeall(c);
  memprobe_freebufs(c);
  memprobe_unwatch_fork(c);
  return 0;
}

static mp_ctx *new_ctx (lua_State *L) {
  mp_ctx *c = (mp_ctx *)mp_newuserdata(L, sizeof(mp_ctx));
  int i;
  memset(c, 0, sizeof(*c));
  for (i = 0; i < MP_NSLOTS; i++)
    c->slot[i].fd = -1;
  c->down = memprobe_stack_down();
  c->pagesize = sysconf(_SC_PAGESIZE);
  if (luaL_newmetatable(L, MP_CTX_MT)) {
    lua_pushcfunction(L, ctx_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushliteral(L, "memprobe.Context");
    lua_setfield(L, -2, "__name");
  }
  lua_setmetatable(L, -2);
  memprobe_watch_fork(c);  /* after the __gc that undoes it */
  return c;
}

MEMPROBE_API int luaopen_memprobe_core (lua_State *L) {
  mp_ctx *c;
  lua_newtable(L);
  c = new_ctx(L);
  memprobe_open_procfs(L, c);
  memprobe_open_meminfo(L, c);
  memprobe_open_zones(L, c);
  memprobe_open_sysvm(L, c);
  memprobe_open_slab(L, c);
  memprobe_open_vmalloc(L, c);
  memprobe_open_dropcaches(L, c);  /* after meminfo: it keeps free() */
  memprobe_open_tracker(L, c);
  memprobe_open_ledger(L, c);
  memprobe_open_process(L, c);
  memprobe_open_cgroup(L, c);
  memprobe_open_heap(L, c);
  memprobe_open_clock(L, c);
  memprobe_open_textfile(L, c);
  memprobe_open_pids(L, c);
  memprobe_open_profile(L, c);
  lua_pop(L, 1);  /* the context stays alive as an upvalue */
  lua_pushliteral(L, MEMPROBE_VERSION);
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
