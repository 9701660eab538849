/*
** ud_host.c: a C host whose allocator ud is its own per-state struct and
** which reads it back with lua_getallocf, as skynet's service_snlua.c
** does in lua_resumeX and signal_hook. Built for the specs only, against
** each runtime's library; memprobe is loaded through LUA_PATH/LUA_CPATH.
**
** Each check prints one line; the spec compares the output. The host's
** allocator keeps its own byte counter (skynet's per-service 'mem'), the
** independent truth for the tracker's live bytes.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#define MAGIC  0x736e6c75L

typedef struct host {
  long magic;       /* overwritten if anyone but us writes here */
  size_t bytes;     /* live bytes through this allocator */
} host;

static void *host_alloc (void *ud, void *p, size_t osize, size_t nsize) {
  host *h = (host *)ud;
  if (h->magic != MAGIC) {
    fprintf(stderr, "allocator called with a foreign ud\n");
    abort();
  }
  if (p == NULL)
    osize = 0;
  h->bytes += nsize - osize;  /* modular: right for shrinks too */
  if (nsize == 0) {
    free(p);
    return NULL;
  }
  return realloc(p, nsize);
}

/* hostbytes(): the host's count, for Lua to read next to the tracker's. */
static int hostbytes (lua_State *L) {
  host *h = (host *)lua_touserdata(L, lua_upvalueindex(1));
  lua_pushnumber(L, (lua_Number)h->bytes);
  return 1;
}

static lua_State *open (host *h) {
  lua_State *L;
#if LUA_VERSION_NUM >= 505
  L = lua_newstate(host_alloc, h, luaL_makeseed(NULL));
#else
  L = lua_newstate(host_alloc, h);
#endif
  if (L == NULL)
    exit(2);
  luaL_openlibs(L);
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, hostbytes, 1);
  lua_setglobal(L, "hostbytes");
  return L;
}

/* Runs code; its one result, when it has one, must be an integer. */
static long run (lua_State *L, const char *code) {
  long r;
  if (luaL_loadstring(L, code) != 0 || lua_pcall(L, 0, 1, 0) != 0) {
    printf("error: %s\n", lua_tostring(L, -1));
    exit(3);
  }
  r = (long)lua_tonumber(L, -1);
  lua_pop(L, 1);
  return r;
}

static int ud_is (lua_State *L, host *h) {
  void *ud;
  (void)lua_getallocf(L, &ud);
  return ud == (void *)h;
}

static const char track[] =
  "_G.t = require 'memprobe'.track() return 0";
/*
** Grows and drops data (with strings over 1 KiB: external on 5.5, which
** the collector does not count) and returns how far the change in the
** tracker's live bytes is from the change in the host's count: 0. Each
** count is read right after the host's, with nothing left to collect.
*/
static const char work[] =
  "local function both()\n"
  "  collectgarbage() collectgarbage()\n"
  "  local b = hostbytes()\n"
  "  return t:stats().live, b\n"
  "end\n"
  "both()\n"
  "local l0, b0 = both()\n"
  "local keep = {} for i = 1, 2000 do keep[i] = { i, tostring(i) } end\n"
  "keep.s = string.rep('x', 100000)\n"
  "_G.kept = keep.s keep = nil\n"
  "local l1, b1 = both()\n"
  "return (l1 - l0) - (b1 - b0)";

/* The tracker's live bytes and the host's count move together. */
static void agree (lua_State *L, const char *what) {
  long d = run(L, work);
  printf("%s: %s\n", what, d == 0 ? "counts agree" : "counts differ");
  if (d != 0)
    printf("  by %ld bytes\n", d);
}

int main (void) {
  host h1 = { MAGIC, 0 }, h2 = { MAGIC, 0 };
  lua_State *A, *B, *C, *D;
  void *ud;

  A = open(&h1);
  run(A, track);
  printf("track: %s\n", ud_is(A, &h1) ? "ud kept" : "ud replaced");
  agree(A, "track");
  run(A, "assert(t:untrack()) return 0");
  printf("untrack: %s\n", lua_getallocf(A, &ud) == host_alloc &&
                          ud == (void *)&h1 ? "allocator back" : "not back");
  run(A, "_G.t = require 'memprobe'.track() "  /* tracked again, and an */
         "_G.s = string.rep('y', 50000) return 0");  /* external string */
  lua_close(A);                             /* dies after the tracker */

  /* skynet hands a new service's struct out at a freed one's address */
  B = open(&h1);
  run(B, track);
  printf("same ud, next state: %s\n", ud_is(B, &h1) ? "ud kept" : "ud replaced");
  agree(B, "next state");

  /* two states tracked at once, each with its own ud */
  C = open(&h2);
  run(C, track);
  printf("second state: %s\n", ud_is(C, &h2) ? "ud kept" : "ud replaced");
  agree(C, "second state");
  agree(B, "first state");

  /* a third sharing the second's ud: boxed, and still forwarded to it */
  D = open(&h2);
  run(D, track);
  printf("shared ud: %s\n", ud_is(D, &h2) ? "ud kept" : "boxed");
  agree(D, "shared ud");
  printf("shared ud, first: %s\n", ud_is(C, &h2) ? "ud kept" : "ud replaced");

  lua_close(D);
  lua_close(C);
  lua_close(B);
  printf("closed: %lu %lu\n", (unsigned long)h1.bytes, (unsigned long)h2.bytes);
  return 0;
}
