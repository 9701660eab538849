/*
** testalloc.c: a failing allocator for the fault-injection spec, built
** as memprobe_testalloc.so for the specs only (it is not in the rockspec).
** It wraps the running state's allocator; once armed with k, the k-th
** growing allocation and every one after it return NULL until disarmed,
** which is how Lua's own test suite checks its out-of-memory paths.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lua.h"
#include "lauxlib.h"

typedef struct failing {
  lua_Alloc f;     /* the allocator wrapped */
  void *ud;
  long count;      /* growing allocations since arm() */
  long failat;     /* 0: never fail */
  long failed;     /* allocations refused since arm() */
  struct failing *next;  /* on the spent list, once removed */
} failing;

/*
** Wrappers are never freed. On Lua 5.5 a string made while one was
** installed (a luaL_Buffer result over 1 KiB: an external string) keeps
** (failing_alloc, wrapper) and frees through it whenever it dies, after
** remove() and in lua_close too. Removed wrappers stay on this list, one
** per install(), reachable for valgrind; never reused, since a reused one
** would forward those frees to another allocator. (Spec code: the one
** mutable static, for one state per process.)
*/
static failing *spent;

/* Frees and shrinks never fail: Lua 5.1 asserts that they cannot. */
static void *failing_alloc (void *ud, void *p, size_t osize, size_t nsize) {
  failing *a = (failing *)ud;
  if (nsize > 0 && (p == NULL || nsize > osize)) {
    a->count++;
    if (a->failat > 0 && a->count >= a->failat) {
      a->failed++;
      return NULL;
    }
  }
  return a->f(a->ud, p, osize, nsize);
}

#define REGKEY  "memprobe_testalloc"

/* The wrapper of this state, found through the registry and not through
** lua_getallocf: another hook may have been stacked on top of it, and
** disarm() must work even then. */
static failing *get (lua_State *L) {
  failing *a;
  lua_getfield(L, LUA_REGISTRYINDEX, REGKEY);
  a = (failing *)lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (a == NULL)
    luaL_error(L, "testalloc: install() first");
  return a;
}

/*
** The wrapper lives in this .so; if lua_close unloaded it while the state
** still used failing_alloc, the last frees would jump into unmapped code.
** Pinning the library (RTLD_NODELETE) removes that hazard.
*/
static const char anchor = 0;  /* any address inside this library */

static void pin (void) {
  Dl_info info;
  if (dladdr(&anchor, &info) && info.dli_fname != NULL)
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}

static int l_install (lua_State *L) {
  void *ud;
  lua_Alloc f = lua_getallocf(L, &ud);
  failing *a;
  if (f == failing_alloc)
    return 0;
  a = (failing *)malloc(sizeof(*a));
  if (a == NULL)
    return luaL_error(L, "testalloc: no memory");
  a->f = f;
  a->ud = ud;
  a->count = a->failat = a->failed = 0;
  a->next = NULL;
  pin();
  lua_pushlightuserdata(L, a);  /* before the switch: it may allocate */
  lua_setfield(L, LUA_REGISTRYINDEX, REGKEY);
  lua_setallocf(L, failing_alloc, a);
  return 0;
}

/* remove() -> true, or false when another hook sits on top of the
** wrapper: it then stays in the chain, disarmed, and is never freed. */
static int l_remove (lua_State *L) {
  void *ud;
  if (lua_getallocf(L, &ud) == failing_alloc) {
    failing *a = (failing *)ud;
    lua_setallocf(L, a->f, a->ud);
    a->failat = 0;
    a->next = spent;
    spent = a;
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, REGKEY);
    lua_pushboolean(L, 1);
  }
  else {
    lua_getfield(L, LUA_REGISTRYINDEX, REGKEY);
    if (lua_touserdata(L, -1) != NULL)
      ((failing *)lua_touserdata(L, -1))->failat = 0;
    lua_pushboolean(L, 0);
  }
  return 1;
}

/* arm(k): from now, allocation k and the later ones fail (k >= 1). */
static int l_arm (lua_State *L) {
  long k = (long)luaL_checknumber(L, 1);
  failing *a = get(L);
  luaL_argcheck(L, k >= 1, 1, "k must be at least 1");
  a->count = 0;
  a->failed = 0;
  a->failat = k;
  return 0;
}

/* disarm() -> allocations seen, allocations refused since arm(). */
static int l_disarm (lua_State *L) {
  failing *a = get(L);
  a->failat = 0;
  lua_pushnumber(L, (lua_Number)a->count);
  lua_pushnumber(L, (lua_Number)a->failed);
  return 2;
}

/*
** fork() runs fn in a child and returns its exit status: 0 when fn
** returned true. For the specs of what a forked child reads (memprobe's
** kept /proc/self files), on runtimes without an FFI.
*/
static int l_fork (lua_State *L) {
  pid_t pid;
  int status = 0;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if ((pid = fork()) < 0)
    return luaL_error(L, "fork failed");
  if (pid == 0) {
    int ok = lua_pcall(L, 0, 1, 0) == 0 && lua_toboolean(L, -1);
    _exit(ok ? 0 : 1);
  }
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
    return luaL_error(L, "waitpid failed");
  lua_pushinteger(L, WEXITSTATUS(status));
  return 1;
}

__attribute__((visibility("default")))
int luaopen_memprobe_testalloc (lua_State *L);

int luaopen_memprobe_testalloc (lua_State *L) {
  const luaL_Reg *l;
  static const luaL_Reg funcs[] = {
    { "arm",     l_arm },
    { "disarm",  l_disarm },
    { "fork",    l_fork },
    { "install", l_install },
    { "remove",  l_remove },
    { NULL, NULL }
  };
  lua_newtable(L);
  for (l = funcs; l->name != NULL; l++) {
    lua_pushcfunction(L, l->func);
    lua_setfield(L, -2, l->name);
  }
  return 1;
}
