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
**
** A refill of meminfo may leave a field alone: when its line is the one
** kept, and the table is the one the last whole refill filled, which put
** the kept value there (memprobe_fill_again). That refill's table is at
** [LAST][1], held weakly, so that another table at its address is not
** taken for it. Most of meminfo's lines are the same from one tick to the
** next, and a table write was most of a warm call. Only a refill that
** runs inside no other reader, and inside which no other refill starts,
** is whole: a finalizer's refill halfway through another leaves the
** outer one to change the entries after it, or to raise before its end.
** A refill that another starts halfway through leaves alone nothing more
** from then on.
*/
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define KEYS_MT  "memprobe.Keys"
#define LAST     (-1)  /* keys table slot of the weak table of the last */

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
  memset(k, 0, sizeof(*k));
  if (luaL_newmetatable(L, KEYS_MT)) {
    lua_pushcfunction(L, keys_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  lua_rawseti(L, -2, 0);
  lua_createtable(L, 1, 0);  /* [1]: the table of the last whole refill */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawseti(L, -2, LAST);
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
  f->again = 0;
  f->fill = 0;
  f->nested = 0;  /* the reader says (memprobe_fill_again's callers) */
  lua_rawgeti(L, f->keys, 0);
  f->k = (mp_keys *)lua_touserdata(L, -1);
  lua_pop(L, 1);  /* the keys table keeps it */
}

/* Sets [LAST][1] to the value at the top, which is popped. */
static void set_last (mp_fill *f) {
  lua_rawgeti(f->L, f->keys, LAST);
  lua_insert(f->L, -2);
  lua_rawseti(f->L, -2, 1);  /* its array slot: no allocation */
  lua_pop(f->L, 1);
}

/*
** Makes the refill started leave alone each of its first fields whose
** line is the one kept (memprobe_fill_kept), when the table is the one
** of the last whole refill and no two of its keys are the same (the
** last one's value wins). Until memprobe_fill_done, no refill is whole:
** a field written, or an error, makes the table differ from the lines.
*/
void memprobe_fill_again (mp_fill *f) {
  lua_State *L = f->L;
  mp_keys *k = f->k;
  int same;
  lua_rawgeti(L, f->keys, LAST);
  lua_rawgeti(L, -1, 1);
  same = lua_rawequal(L, -1, f->t);
  lua_pop(L, 2);
  f->again = same && !k->repeats ? k->whole : 0;
  lua_pushnil(L);
  set_last(f);
  k->whole = 0;
  f->fill = ++k->fills;
}

/* Leaves nothing alone when the table's first field is not the kept
** line's value (kB times kb): the program emptied the table, or filled
** it with something else. */
void memprobe_fill_check (mp_fill *f, int64_t kb) {
  lua_State *L = f->L;
  const mp_key *e = f->k->cap > 0 ? &f->k->e[0] : NULL;
  if (f->again == 0)
    return;
  if (e == NULL || e->len == 0) {
    f->again = 0;
    return;
  }
  lua_rawgeti(L, f->keys, 1);
  lua_rawget(L, f->t);
  if (!mp_isint(L, -1, memprobe_bytes(e->v, e->kb ? kb : 1)))
    f->again = 0;
  lua_pop(L, 1);
}

/* Whether two of the first n entries have the same key. */
static int repeats (const mp_keys *k, size_t n) {
  size_t i, j;
  for (i = 1; i < n && i < k->cap; i++)
    for (j = 0; j < i; j++)
      if (k->e[i].n == k->e[j].n && memcmp(k->e[i].k, k->e[j].k, k->e[i].n) == 0)
        return 1;
  return 0;
}

/* Ends the refill memprobe_fill_again started: it is whole when it ran
** inside no other reader and no other refill started in the middle of
** it. */
void memprobe_fill_done (mp_fill *f) {
  mp_keys *k = f->k;
  size_t n = (size_t)f->n;
  if (f->nested || k->fills != f->fill) {
    k->whole = 0;
    lua_pushnil(f->L);
    set_last(f);
    return;
  }
  if (k->rekeyed || k->counted != n) {
    k->repeats = repeats(k, n);
    k->counted = n;
    k->rekeyed = 0;
  }
  k->whole = n;
  lua_pushvalue(f->L, f->t);
  set_last(f);
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
    k->e[i].len = 0;  /* its value may not be the kept line's */
    lua_rawgeti(L, f->keys, (lua_Integer)i + 1);
    return;
  }
  k->rekeyed = 1;
  lua_pushlstring(L, key, klen);
  if (klen == 0 || klen > MP_LINEMAX) {  /* too long to keep */
    if (i < k->cap)
      k->e[i].n = k->e[i].len = 0;  /* e[i] is no longer field i */
    return;
  }
  lua_pushvalue(L, -1);
  lua_rawseti(L, f->keys, (lua_Integer)i + 1);
  if (reserve(k, i)) {  /* no Lua allocation from here */
    k->e[i].n = (unsigned char)klen;
    k->e[i].len = 0;  /* the line kept was another key's */
    memcpy(k->e[i].k, key, klen);
  }
}
