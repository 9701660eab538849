/*
** clock.c: clock(), the monotonic clock for the Lua layer's timings
** (watch samples, console rates). os.time() has one-second steps and
** jumps with the wall clock; rates computed from it are wrong.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <time.h>

/***
Seconds on the monotonic clock (CLOCK_MONOTONIC), with nanosecond
resolution; only differences mean anything.
@function clock
@treturn number seconds
*/
double memprobe_now (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int l_clock (lua_State *L) {
  lua_pushnumber(L, (lua_Number)memprobe_now());
  return 1;
}

static const luaL_Reg funcs[] = {
  {"clock", l_clock},
  {NULL, NULL}
};

void memprobe_open_clock (lua_State *L, mp_ctx *c) {
  (void)c;
  memprobe_register(L, funcs);
}
