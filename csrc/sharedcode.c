/*
** sharedcode.c: whether a Lua function runs code its host shares between
** states. skynet's Lua (its 3rd/lua, which defines LUA_CACHELIB in
** lualib.h) loads each file once into a cache state and gives every
** service a closure over that one prototype (lua_clonefunction). The
** prototype, its constants and its names are then neither in the
** service's allocator nor in its collector's count, and the heap walk
** must not charge them to the service. skynet marks such objects with
** the age G_SHARED (isshared in its lgc.h), which no public API exposes:
** this file alone reads its internal headers, which that build has on
** the include path. Every other Lua shares nothing.
*/
#include "heap.h"
#include "lualib.h"

#if defined(LUA_CACHELIB)
#include "lobject.h"
#include "lgc.h"
#endif

int memprobe_shared_proto (lua_State *L, int fi) {
#if defined(LUA_CACHELIB)
  const LClosure *cl;
  if (lua_type(L, fi) != LUA_TFUNCTION || lua_iscfunction(L, fi)) return 0;
  cl = (const LClosure *)lua_topointer(L, fi);
  return isshared(cl->p);
#else
  (void)L; (void)fi;
  return 0;
#endif
}
