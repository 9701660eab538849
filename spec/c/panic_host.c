/*
** panic_host.c: a minimal C host for the tracker's unprotected-call
** caveat, built against each runtime's library for the specs only.
**
** It loads memprobe through LUA_PATH and LUA_CPATH, puts a limit a
** little above the live bytes, and runs a chunk that keeps allocating:
** first under lua_pcall, which must return LUA_ERRMEM and leave the state
** usable, then under lua_call, where nothing catches the error and the
** runtime hands it to the panic handler. The handler prints the message;
** what the runtime does after it returns (end the process) is the
** caveat's other half, which the spec checks through the exit status.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

static const char setup[] =
  "local t = require 'memprobe'.track()\n"
  "collectgarbage()\n"
  "t:limit(collectgarbage('count') * 1024 + 64 * 1024)\n";

static const char grow[] =
  "local q = {}\n"
  "for i = 1, 1e7 do q[i] = { i } end\n";

/* Only a string is printed: converting the number 5.2 passes would
** allocate, past the limit when the last refused block was a small one,
** and raise again into this handler until the C stack overflows. */
static int panic (lua_State *L) {
  const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                    : NULL;
  printf("panic: %s\n", msg != NULL ? msg : "(no message)");
  fflush(stdout);
  return 0;  /* the runtime ends the process */
}

static void load (lua_State *L, const char *code, const char *name) {
  if (luaL_loadbuffer(L, code, strlen(code), name) != 0) {
    printf("load: %s\n", lua_tostring(L, -1));
    exit(2);
  }
}

int main (void) {
  lua_State *L;
  int status;
  if ((L = luaL_newstate()) == NULL)
    return 2;
  luaL_openlibs(L);
  lua_atpanic(L, panic);
  load(L, setup, "=setup");
  if (lua_pcall(L, 0, 0, 0) != 0) {
    printf("setup: %s\n", lua_tostring(L, -1));
    return 2;
  }
  load(L, grow, "=grow");
  status = lua_pcall(L, 0, 0, 0);
  printf("pcall: %s %s\n", status == LUA_ERRMEM ? "LUA_ERRMEM" : "other",
         lua_tostring(L, -1));
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT, 0);
  load(L, "return 'usable'", "=after");
  status = lua_pcall(L, 0, 1, 0);
  printf("after: %s\n", status == 0 ? lua_tostring(L, -1) : "failed");
  lua_pop(L, 1);
  fflush(stdout);
  load(L, grow, "=grow");
  lua_call(L, 0, 0);  /* unprotected: the memory error goes to panic() */
  printf("returned\n");
  lua_close(L);
  return 0;
}
