/*
** fill.c: the key strings of the refilling readers (meminfo, vmstat,
** process), kept by line so that a warm call interns nothing.
**
** A reader's keys table holds at [i] the Lua string of the key of its
** i-th field last time, and at [0] a userdata that points to a C copy
** of each (length and bytes, in the C heap), so that a key is checked
** against the line without a Lua call. Interning the ~60 keys of meminfo
** was most of a call's cost; a warm call now does one lua_rawgeti per
** field. meminfo keeps in each entry the whole line it last parsed too,
** with its value (memprobe_parse_kv_seq); a new key drops it.
**
** The table and its copies are shared by every call of the reader,
** those a finalizer starts in the middle of another's parse included.
** The userdata is never replaced (its array grows with realloc, which
** runs no finalizer), and an entry is written after its string, with no
** Lua allocation in between: a nested call may rewrite entries, but
** each as a whole.
*/
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define KEYS_MT  "memprobe.Keys"

static int keys_gc (lua_State *L) {
  mp_keys *k = (mp_keys *)luaL_checkudata(L, 1, KEYS_MT);
  free(k->e);
  k->e = NULL;
  k->cap = 0;
  return 0;
}

/* Pushes a new keys table. */
void memprobe_fill_keys (lua_State *L) {
  mp_keys *k;
  lua_createtable(L, 64, 1);
  k = (mp_keys *)mp_newuserdata(L, sizeof(mp_keys));
  k->cap = 0;
  k->e = NULL;
  if (luaL_newmetatable(L, KEYS_MT)) {
    lua_pushcfunction(L, keys_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawseti(L, -2, 0);
}

/* Starts a refill of the table at t (pushed last) with the keys table at
** keys, which is pushed above it: a stack slot is cheaper to reach than
** an upvalue, once per field. */
void memprobe_fill_start (mp_fill *f, lua_State *L, int t, int keys) {
  lua_pushvalue(L, keys);
  f->L = L;
  f->t = t;
  f->keys = lua_gettop(L);
  f->n = 0;
  lua_rawgeti(L, f->keys, 0);
  f->k = (mp_keys *)lua_touserdata(L, -1);
  lua_pop(L, 1);  /* the keys table keeps it */
}

/* Makes room for entry i; 0 when there is no memory (it is not kept). */
static int reserve (mp_keys *k, size_t i) {
  size_t cap = k->cap ? k->cap : 64;
  mp_key *e;
  if (i < k->cap)
    return 1;
  while (cap <= i)
    cap *= 2;
  if ((e = (mp_key *)realloc(k->e, cap * sizeof(mp_key))) == NULL)
    return 0;
  memset(e + k->cap, 0, (cap - k->cap) * sizeof(mp_key));
  k->e = e;
  k->cap = cap;
  return 1;
}

/*
** Pushes the key of the next field, key[0..klen-1]: the string of last
** time when it is the same.
*/
void memprobe_fill_key (mp_fill *f, const char *key, size_t klen) {
  lua_State *L = f->L;
  mp_keys *k = f->k;
  size_t i = (size_t)f->n++;
  if (i < k->cap && k->e[i].n == klen && memcmp(k->e[i].k, key, klen) == 0) {
    lua_rawgeti(L, f->keys, (lua_Integer)i + 1);
    return;
  }
  lua_pushlstring(L, key, klen);
  if (klen == 0 || klen > MP_LINEMAX)  /* too long to keep */
    return;
  lua_pushvalue(L, -1);
  lua_rawseti(L, f->keys, (lua_Integer)i + 1);
  if (reserve(k, i)) {  /* no Lua allocation from here */
    k->e[i].n = (unsigned char)klen;
    k->e[i].len = 0;  /* the line kept was another key's */
    memcpy(k->e[i].k, key, klen);
  }
}
