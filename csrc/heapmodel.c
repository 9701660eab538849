/*
** heapmodel.c: the size model of the heap walk, and the samples it is
** calibrated with. memprobe.heap measures the running VM by creating
** objects of known shapes and reading the exact change of live bytes
** (see docs/heap.md); memprobe_readmodel reads the table it builds, by
** which the walk sizes every object (tables and strings with the inline
** functions of heap.h). Nothing here knows a struct layout.
*/
/***
@submodule memprobe
*/
#include "internal.h"
#include "heap.h"

#include <stdlib.h>
#include <string.h>


/*
** {======================================================
** The size model
** =======================================================
*/

double memprobe_getnum (lua_State *L, int t, const char *k) {
  double v;
  lua_getfield(L, t, k);
  v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}

static int getlist (lua_State *L, int t, const char *k, double *v) {
  int n = 0;
  lua_getfield(L, t, k);
  luaL_argcheck(L, lua_istable(L, -1), 1, "model lacks a size list");
  while (n < NCAL) {
    lua_rawgeti(L, -1, n + 1);
    if (!lua_isnumber(L, -1)) { lua_pop(L, 1); break; }
    v[n++] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  luaL_argcheck(L, n >= 2, 1, "model size list too short");
  return n;
}

/* Reads the model that memprobe.heap calibrated (a table at index t). */
void memprobe_readmodel (lua_State *L, int t, model *m) {
  int i;
  luaL_checktype(L, t, LUA_TTABLE);
  m->tbase = memprobe_getnum(L, t, "table");
  m->narr = getlist(L, t, "array", m->arr);
  m->nhash = getlist(L, t, "hash", m->hash);
  lua_getfield(L, t, "string");
  luaL_argcheck(L, lua_istable(L, -1), 1, "model lacks string sizes");
  for (i = 0; i <= 64; i++) {
    lua_rawgeti(L, -1, i + 1);
    m->str[i] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  m->slong = memprobe_getnum(L, t, "string_long");
  m->sfirst = memprobe_getnum(L, t, "string_first");
  m->salign = memprobe_getnum(L, t, "string_align");
  if (m->salign < 1) m->salign = 1;
  m->lcl = memprobe_getnum(L, t, "lclosure");
  m->lcl_up = memprobe_getnum(L, t, "lclosure_up");
  m->upval = memprobe_getnum(L, t, "upvalue");
  m->ccl0 = memprobe_getnum(L, t, "cclosure0");
  m->ccl = memprobe_getnum(L, t, "cclosure");
  m->ccl_up = memprobe_getnum(L, t, "cclosure_up");
  m->ud = memprobe_getnum(L, t, "userdata");
  m->ud_uv = memprobe_getnum(L, t, "userdata_uv");
  m->udb = memprobe_getnum(L, t, "userdata_uvbase");
  m->thread = memprobe_getnum(L, t, "thread");
  m->cdata = memprobe_getnum(L, t, "cdata");
  m->pbase = memprobe_getnum(L, t, "proto_base");
  m->pbyte = memprobe_getnum(L, t, "proto_byte");
}

/* }====================================================== */


/*
** {======================================================
** Calibration samples
** =======================================================
*/

static int sample_cfunction (lua_State *L) {
  lua_pushinteger(L, lua_gettop(L));
  return 1;
}

/***
One fresh object of a known shape, built without garbage, for calibration.
@function heap_sample
@local
@tparam string kind "string", "userdata", "cclosure" or "table"
@tparam[opt] integer a size: bytes, upvalues, array slots
@tparam[opt] integer b string seed, user values (5.4), hash slots
@return the object
*/
/*
** sample(kind, a, b): one fresh object of a known shape, built without
** garbage, so that its cost is the exact change of the heap's size.
** "string" a bytes (b seeds the contents), "userdata" a bytes with b user
** values (5.4), "cclosure" with a upvalues, "table" a array and b hash
** slots (lua_createtable).
*/
int memprobe_l_sample (lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  int a = (int)luaL_optinteger(L, 2, 0), b = (int)luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, a >= 0 && a <= (1 << 20), 2, "size out of range");
  luaL_argcheck(L, b >= 0 && b <= (1 << 20), 3, "size out of range");
  if (strcmp(kind, "string") == 0) {
    /* malloc, not a Lua buffer: no garbage beside the string */
    char *p = (char *)malloc((size_t)a + 1);
    int i;
    if (p == NULL) return luaL_error(L, "not enough memory");
    for (i = 0; i < a; i++)
      p[i] = (char)('a' + (((unsigned)b * 7919u + (unsigned)i * 31u +
                            ((unsigned)b >> (i % 13))) % 26u));  /* no int overflow */
    if (a >= 4) memcpy(p, &b, 4);
    lua_pushlstring(L, p, (size_t)a);
    free(p);
  }
  else if (strcmp(kind, "userdata") == 0) {
#if LUA_VERSION_NUM >= 504
    lua_newuserdatauv(L, (size_t)a, b);
#else
    lua_newuserdata(L, (size_t)a);
#endif
  }
  else if (strcmp(kind, "cclosure") == 0) {
    int i;
    luaL_argcheck(L, a <= 200, 2, "too many upvalues");
    for (i = 0; i < a; i++) lua_pushboolean(L, 1);
    lua_pushcclosure(L, sample_cfunction, a);
  }
  else if (strcmp(kind, "table") == 0)
    lua_createtable(L, a, b);
  else
    return luaL_argerror(L, 1, "unknown sample kind");
  return 1;
}

/***
Bytes `lua_dump` writes for a Lua function (counted, nothing allocated).
@function heap_dumpsize
@local
@tparam function f a Lua function
@treturn integer bytes
*/
int memprobe_l_dumpsize (lua_State *L) {
  size_t len = 0;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_argcheck(L, !lua_iscfunction(L, 1), 1, "Lua function expected");
  lua_settop(L, 1);
  mp_dump(L, memprobe_count_writer, &len);
  mp_pushint(L, len);
  return 1;
}

/***
The running thread, which Lua 5.1 code cannot get on the main thread.
@function heap_thread
@local
@treturn thread
*/
int memprobe_l_thread (lua_State *L) {
  lua_pushthread(L);
  return 1;
}

/***
The monotonic clock the heap walk's time budgets are read on.
@function heap_clock
@local
@treturn number seconds
*/
int memprobe_l_clock (lua_State *L) {
  lua_pushnumber(L, memprobe_now());
  return 1;
}

/***
Bytes of C buffers that the heap walks of this state hold now.
@function heap_walk_buffers
@local
@treturn integer bytes
*/
int memprobe_l_walk_buffers (lua_State *L) {
  mp_pushint(L, memprobe_ctx(L)->heap_bytes);
  return 1;
}

/* }====================================================== */
