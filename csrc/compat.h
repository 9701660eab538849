/*
** compat.h: the only place that knows the differences between Lua 5.1,
** 5.2, 5.3, 5.4, 5.5 and LuaJIT 2.1. The rest of the C core is written
** against the 5.4 API; gates compare with >= so that a newer version gets
** the newer behaviour; every shim carries the memprobe prefix so that it never
** collides with a definition the host's headers already provide (LuaJIT
** 2.1 ships luaL_setfuncs, luaL_testudata and luaL_newlib).
*/
#ifndef MEMPROBE_COMPAT_H
#define MEMPROBE_COMPAT_H

#include "lua.h"
#include "lauxlib.h"

#if !defined(LUA_VERSION_NUM)
#error "unsupported Lua version"
#elif LUA_VERSION_NUM == 501

#define mp_rawlen(L, i)     lua_objlen(L, (i))
#define mp_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)

/* LuaJIT 2.1 has luaL_setfuncs; PUC 5.1 does not. One shim for both. */
void mp_setfuncs (lua_State *L, const luaL_Reg *l, int nup);
void *mp_testudata (lua_State *L, int i, const char *tname);

#elif LUA_VERSION_NUM >= 502 && LUA_VERSION_NUM <= 505

#define mp_rawlen(L, i)     lua_rawlen(L, (i))
#define mp_absindex(L, i)   lua_absindex(L, (i))
#define mp_setfuncs(L, l, n)  luaL_setfuncs(L, (l), (n))
#define mp_testudata(L, i, t) luaL_testudata(L, (i), (t))

#else
#error "unsupported Lua version"
#endif

/* Integers: 5.3+ has a 64-bit lua_Integer; 5.1/5.2/LuaJIT push doubles,
** exact up to 2^53, which covers every byte count a machine can have. */
#if LUA_VERSION_NUM >= 503
#define mp_pushint(L, v)    lua_pushinteger(L, (lua_Integer)(v))
#define mp_isint(L, i, v) \
  (lua_isinteger(L, (i)) && lua_tointeger(L, (i)) == (lua_Integer)(v))
#else
#define mp_pushint(L, v)    lua_pushnumber(L, (lua_Number)(v))
#define mp_isint(L, i, v) \
  (lua_type(L, (i)) == LUA_TNUMBER && \
   lua_tonumber(L, (i)) == (lua_Number)(v))
#endif
/* t[k] = v for the table on top of the stack */
#define mp_setint(L, k, v) \
  do { mp_pushint(L, v); lua_setfield(L, -2, (k)); } while (0)

/* 5.5's lua_newstate takes a seed for string hashing as well. */
#if LUA_VERSION_NUM >= 505
#define mp_newstate(f, ud)  lua_newstate((f), (ud), luaL_makeseed(NULL))
#else
#define mp_newstate(f, ud)  lua_newstate((f), (ud))
#endif

/*
** 5.5: a luaL_Buffer result over LUAL_BUFFERSIZE becomes an external
** string, which keeps the (f, ud) current when it was made and frees its
** bytes through it when it dies, whatever the allocator is by then. Its
** bytes come from the allocator but are not in LUA_GCCOUNT.
*/
#if LUA_VERSION_NUM >= 505
#define MP_EXTSTRINGS  1
#else
#define MP_EXTSTRINGS  0
#endif

/* Full userdata: 5.4 takes a count of user values. */
#if LUA_VERSION_NUM >= 504
#define mp_newuserdata(L, sz)  lua_newuserdatauv(L, (sz), 1)
#else
#define mp_newuserdata(L, sz)  lua_newuserdata(L, (sz))
#endif

/*
** On 5.2+ the allocator's osize carries the type of a new object (variant
** bits folded away by & 0x0F); 5.1 and LuaJIT pass 0. The two internal
** types after the public ones swapped places in 5.4.
*/
#if LUA_VERSION_NUM >= 502
#define MP_OSIZE_TAGS  1
#else
#define MP_OSIZE_TAGS  0
#endif
#if LUA_VERSION_NUM >= 504
#define MP_TAG9   "upvalue"
#define MP_TAG10  "proto"
#else
#define MP_TAG9   "proto"
#define MP_TAG10  "upvalue"
#endif

/*
** Heap walk (heap*.c). LuaJIT 2.1 reports 5.1 but defines LUA_OK, and has
** lua_upvalueid; PUC 5.1 has neither. User values: 5.4 has several per
** userdata, 5.2/5.3 one, 5.1 and LuaJIT an environment table instead.
*/
#if LUA_VERSION_NUM == 501 && defined(LUA_OK)
#define MP_LUAJIT           1
#endif
#if LUA_VERSION_NUM >= 502 || defined(MP_LUAJIT)
#define MP_HAS_UPVALUEID    1
#endif
#if LUA_VERSION_NUM >= 503
#define mp_dump(L, w, d)    lua_dump(L, (w), (d), 0)
#else
#define mp_dump(L, w, d)    lua_dump(L, (w), (d))
#endif
/* Resumes co with n arguments; its results are on its stack. */
#if LUA_VERSION_NUM >= 504
#define mp_resume(co, from, n, nres)  lua_resume(co, from, n, nres)
#elif LUA_VERSION_NUM >= 502
#define mp_resume(co, from, n, nres) \
  (*(nres) = 0, lua_resume(co, from, n))
#else
#define mp_resume(co, from, n, nres)  ((void)(from), *(nres) = 0, \
                                       lua_resume(co, n))
#endif
#if LUA_VERSION_NUM >= 504
#define mp_getuv(L, i, n)   lua_getiuservalue(L, (i), (n))
#define mp_setuv(L, i)      lua_setiuservalue(L, (i), 1)
#elif LUA_VERSION_NUM >= 502
#define mp_getuv(L, i, n) \
  ((n) == 1 ? (lua_getuservalue(L, (i)), lua_type(L, -1)) \
            : (lua_pushnil(L), LUA_TNONE))
#define mp_setuv(L, i)      lua_setuservalue(L, (i))
#else
#define mp_getuv(L, i, n) \
  ((n) == 1 ? (lua_getfenv(L, (i)), lua_type(L, -1)) \
            : (lua_pushnil(L), LUA_TNONE))
#define mp_setuv(L, i)      lua_setfenv(L, (i))
#endif

#endif
