/*
** sharedcode.c: what the host shares between states, which the heap walk
** must not charge to the state it walks. skynet's Lua (its 3rd/lua, whose
** lualib.h defines LUA_CACHELIB) loads each file once into a cache state
** and gives every service a closure over that one prototype
** (lua_clonefunction); the prototype's constants and names are shared
** strings, and skynet.sharetable hands out shared tables. Such objects
** are in neither the service's allocator nor its collector's count.
** skynet marks them with the age G_SHARED (isshared in its lgc.h), which
** no public API exposes: this file alone reads its internal headers, on
** the include path of that build. Every other Lua shares nothing.
*/
#include "heap.h"
#include "lualib.h"

#if defined(LUA_CACHELIB)
#include "lobject.h"
#include "lgc.h"
#endif

/* The Lua function at fi runs a prototype the host shares. */
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

/* The string or table at i (of type t) is itself the host's. */
int memprobe_shared_object (lua_State *L, int i, int t) {
#if defined(LUA_CACHELIB)
  const GCObject *o;
  if (t != LUA_TSTRING && t != LUA_TTABLE) return 0;
  o = (const GCObject *)lua_topointer(L, i);  /* 5.5: strings too */
  return o != NULL && isshared(o);
#else
  (void)L; (void)i; (void)t;
  return 0;
#endif
}
