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

#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>


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

/*
** PUC Lua: the offsets of a Table's sizes (model field puc_layout, found
** by tablayout below). The dummy node that every table with an empty
** hash part points at is a static of the VM: read from a fresh table
** here rather than kept in the model, so that a model is a table of
** small numbers only.
*/
static void readpuc (lua_State *L, int t, model *m) {
  m->pasize = m->plsize = m->pnode = m->pras = -1;
  m->prasbit = 0;
  m->pdummy = NULL;
  lua_getfield(L, t, "puc_layout");
  if (lua_istable(L, -1)) {
    int j = lua_gettop(L);
    double asize = memprobe_getnum(L, j, "asize");
    double lsize = memprobe_getnum(L, j, "lsizenode");
    double node = memprobe_getnum(L, j, "node");
    double ras = memprobe_getnum(L, j, "ras");
    double rasbit = memprobe_getnum(L, j, "rasbit");
    luaL_argcheck(L, asize >= 0 && asize <= 60 && lsize >= 0 && lsize < 64 &&
                  node >= 0 && node + sizeof(void *) <= 64 && ras >= 0 &&
                  ras < 64 && rasbit >= 0 && rasbit < 256, 1,
                  "model's puc_layout out of range");
    m->pasize = (int)asize;
    m->plsize = (int)lsize;
    m->pnode = (int)node;
    m->pras = rasbit > 0 ? (int)ras : -1;
    m->prasbit = (int)rasbit;
    m->pabase = memprobe_getnum(L, j, "array_base");
    m->paslot = memprobe_getnum(L, j, "slot");
    lua_createtable(L, 0, 0);
    memcpy(&m->pdummy, (const char *)lua_topointer(L, -1) + m->pnode,
           sizeof(void *));
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
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
  m->imax = memprobe_getnum(L, t, "intern_max");    /* 0 when absent */
  m->strslot = memprobe_getnum(L, t, "string_table");
  m->jcolo = m->jasize = m->jhmask = -1;
  lua_getfield(L, t, "jit_layout");
  if (lua_istable(L, -1)) {
    int j = lua_gettop(L);
    double colo = memprobe_getnum(L, j, "colo");
    double asize = memprobe_getnum(L, j, "asize");
    double hmask = memprobe_getnum(L, j, "hmask");
    luaL_argcheck(L, colo >= 0 && colo < 64 && asize >= 0 && asize <= 60 &&
                  hmask >= 0 && hmask <= 60, 1, "model's jit_layout out of range");
    m->jcolo = (int)colo;
    m->jasize = (int)asize;
    m->jhmask = (int)hmask;
    m->jslot = memprobe_getnum(L, j, "slot");
    m->jnode = memprobe_getnum(L, j, "node");
  }
  lua_pop(L, 1);
  readpuc(L, t, m);
}

/*
** PUC Lua sizes a table by what built it too: a constructor or
** lua_createtable gives exact parts ({a, b, c, next = x}: 3 slots and
** one node), a rehash powers of two, and a table keeps its parts when
** keys are set to nil. The header holds the array size (5.4: a limit,
** the real size being the next power of two when the flag says so;
** 5.5's array block also holds a tag byte per slot, in pabase and
** paslot) and lsizenode; the hash part is absent while the node pointer
** is the dummy node's.
*/
static double puctablebytes (const model *m, const unsigned char *p) {
  uint32_t asize;
  uint8_t lsize;
  const void *node;
  double bytes = m->tbase;
  memcpy(&asize, p + m->pasize, 4);
  memcpy(&lsize, p + m->plsize, 1);
  memcpy(&node, p + m->pnode, sizeof(void *));
  if (m->pras >= 0 && (p[m->pras] & m->prasbit) && (asize & (asize - 1))) {
    uint32_t real = 1;
    while (real < asize && real < 0x80000000u) real *= 2;
    asize = real;
  }
  if (asize > 0) bytes += m->pabase + (double)asize * m->paslot;
  if (lsize > 0 || node != m->pdummy)
    bytes += part(m->hash, m->nhash, lsize < 32 ? 1u << lsize : 0x80000000u);
  return bytes;
}

/*
** The bytes of the table at t. LuaJIT sizes a table by what built it (a
** constructor gives exact parts, colocated with the header up to 16
** array slots; a rehash gives 2^k + 1; an array that outgrows its
** colocated part moves out and leaves that part in the header's block),
** none of which its keys tell: where the calibration found the header's
** layout, the sizes are read from it. Otherwise, the rule of the keys.
*/
double memprobe_tablebytes (const model *m, const void *t,
                            const uint32_t *nums, uint32_t nint,
                            uint32_t nent) {
  if (m->jasize >= 0 && t != NULL) {
    const char *p = (const char *)t;
    int8_t colo;
    uint32_t asize, hmask;
    double bytes = m->tbase;
    memcpy(&colo, p + m->jcolo, 1);
    memcpy(&asize, p + m->jasize, 4);
    memcpy(&hmask, p + m->jhmask, 4);
    if (colo != 0) bytes += (double)(colo & 0x7f) * m->jslot;
    if (colo <= 0) bytes += (double)asize * m->jslot;
    if (hmask > 0) bytes += ((double)hmask + 1) * m->jnode;
    return bytes;
  }
  if (m->pasize >= 0 && t != NULL)
    return puctablebytes(m, (const unsigned char *)t);
  return tablesize(m, nums, nint, nent);
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

#if !defined(MP_LUAJIT)
/* The 32-bit word at 'off' of a table's header. */
static uint32_t word (const unsigned char *p, int off) {
  uint32_t v;
  memcpy(&v, p + off, 4);
  return v;
}

/*
** PUC Lua: the offsets of a Table's array size (32 bits) and lsizenode
** (a byte), found in tables of known sizes as for LuaJIT: (5, 3) has 5
** slots and lsizenode 2, (40, 17) 40 and 5, (17, 100) 17 and 7; the
** node pointer is the first pointer-aligned word that is the same in
** two tables without a hash part (the dummy node) and differs in two
** with a node of their own, from it and from each other. 5.4 keeps in its array size a limit that lua_rawlen can
** lower, with a flag bit saying so: the byte and the bit that change
** when it does. Pushes { asize, lsizenode, node, ras, rasbit }, or
** nothing when a size is not found or not unique.
*/
static int puclayout (lua_State *L, int header) {
  const unsigned char *x, *y, *z, *e1, *e2, *h1, *h2;
  unsigned char before[64];
  int off, asize = -1, lsize = -1, node = -1, na = 0, nl = 0, ras = 0, rasbit = 0;
  if (header > 64) header = 64;
  lua_createtable(L, 5, 3);
  lua_createtable(L, 40, 17);
  lua_createtable(L, 17, 100);
  lua_createtable(L, 0, 0);
  lua_createtable(L, 0, 0);
  lua_createtable(L, 0, 1);
  lua_createtable(L, 0, 1);
  x = (const unsigned char *)lua_topointer(L, -7);
  y = (const unsigned char *)lua_topointer(L, -6);
  z = (const unsigned char *)lua_topointer(L, -5);
  e1 = (const unsigned char *)lua_topointer(L, -4);
  e2 = (const unsigned char *)lua_topointer(L, -3);
  h1 = (const unsigned char *)lua_topointer(L, -2);
  h2 = (const unsigned char *)lua_topointer(L, -1);
  for (off = 0; off + 4 <= header; off += 4)
    if (word(x, off) == 5 && word(y, off) == 40 && word(z, off) == 17) {
      asize = off;
      na++;
    }
  for (off = 0; off < header; off++) {
    if (na == 1 && off >= asize && off < asize + 4) continue;
    if (x[off] == 2 && y[off] == 5 && z[off] == 7) { lsize = off; nl++; }
  }
  for (off = 0; off + (int)sizeof(void *) <= header && node < 0;
       off += (int)sizeof(void *)) {
    const void *a, *b, *c, *d;
    memcpy(&a, e1 + off, sizeof a);
    memcpy(&b, e2 + off, sizeof b);
    memcpy(&c, h1 + off, sizeof c);
    memcpy(&d, h2 + off, sizeof d);
    if (a != NULL && a == b && c != a && d != a && c != d) node = off;
  }
  lua_pop(L, 7);
  if (na != 1 || nl != 1 || node < 0) return 0;
  lua_createtable(L, 8, 0);
  for (off = 1; off <= 5; off++) {
    lua_pushinteger(L, off);
    lua_rawseti(L, -2, off);
  }
  x = (const unsigned char *)lua_topointer(L, -1);
  memcpy(before, x, (size_t)header);
  (void)mp_rawlen(L, -1);
  if (word(x, asize) == 5) {  /* the limit moved: find its flag */
    int changed = 0;
    for (off = 0; off < header; off++) {
      if (off >= asize && off < asize + 4) continue;
      if (x[off] != before[off]) { ras = off; rasbit = x[off] ^ before[off]; changed++; }
    }
    if (changed != 1 || (rasbit & (rasbit - 1)) != 0 || !(x[ras] & rasbit)) {
      lua_pop(L, 1);
      return 0;
    }
  }
  else if (word(x, asize) != 8) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 5);
  mp_setint(L, "asize", asize);
  mp_setint(L, "lsizenode", lsize);
  mp_setint(L, "node", node);
  mp_setint(L, "ras", ras);
  mp_setint(L, "rasbit", rasbit);
  return 1;
}
#endif

/*
** LuaJIT: the offsets of a table header's colo (int8), asize and hmask
** (uint32), found in two tables of known sizes: lua_createtable(L, 5, 3)
** has asize 6 (slot 0 counts), hmask 3 and colo 6 (colocated);
** (40, 17) has 41, 31 and 0; the header is 'header' bytes (as
** measured). Pushes { colo, asize, hmask }, or nothing
** when the layout is not found or not unique (another build: the model
** then sizes tables by their keys).
*/
static int tablayout (lua_State *L, int header) {
#if defined(MP_LUAJIT)
  const unsigned char *x, *y;
  int off, colo = -1, asize = -1, hmask = -1, na = 0, nh = 0, nc = 0;
  if (header > 64) header = 64;
  lua_createtable(L, 5, 3);
  lua_createtable(L, 40, 17);
  x = (const unsigned char *)lua_topointer(L, -2);
  y = (const unsigned char *)lua_topointer(L, -1);
  for (off = 0; off + 4 <= header; off += 4) {
    uint32_t a, b;
    memcpy(&a, x + off, 4);
    memcpy(&b, y + off, 4);
    if (a == 6 && b == 41) { asize = off; na++; }
    if (a == 3 && b == 31) { hmask = off; nh++; }
  }
  for (off = 0; off < header; off++) {
    if (na == 1 && off >= asize && off < asize + 4) continue;
    if (x[off] == 6 && y[off] == 0) { colo = off; nc++; }
  }
  lua_pop(L, 2);
  if (na == 1 && nh == 1 && nc == 1) {
    lua_createtable(L, 0, 3);
    mp_setint(L, "colo", colo);
    mp_setint(L, "asize", asize);
    mp_setint(L, "hmask", hmask);
    return 1;
  }
  return 0;
#else
  return puclayout(L, header);
#endif
}

/***
One fresh object of a known shape, built without garbage, for calibration.
@function heap_sample
@local
@tparam string kind "string", "userdata", "cclosure", "table", or
"tablayout" (where a table header keeps its sizes, or nothing when not
found)
@tparam[opt] integer a size: bytes, upvalues, array slots
@tparam[opt] integer b string seed, user values (5.4), hash slots
@return the object
*/
/*
** sample(kind, a, b): one fresh object of a known shape, built without
** garbage, so that its cost is the exact change of the heap's size.
** "string" a bytes (b seeds the contents), "userdata" a bytes with b user
** values (5.4), "bigdata" a userdata of a MiB (never touched, so it
** costs address space only), "cclosure" with a upvalues, "table" a
** array and b hash slots (lua_createtable).
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
  else if (strcmp(kind, "bigdata") == 0)  /* a MiB (specs: sizes past 4 GiB) */
    lua_newuserdata(L, (size_t)a << 20);
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
  else if (strcmp(kind, "tablayout") == 0)
    return tablayout(L, a);
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


/*
** {======================================================
** Model jobs: the calibration in a scratch state
** =======================================================
*/

/*
** The size model is a property of the VM build, not of the heap: it is
** measured in a scratch state of the same build (luaL_newstate), where
** memprobe.heapmodel's calibration runs as a coroutine that yields
** between two samples. Its heap holds nothing but the samples, so the
** cost does not grow with the program's heap (full collections of the
** inspected heap cost seconds at a gigabyte), and it is stepped within
** a budget like a walk, so that the first call on a cold state keeps its
** budget too. When it is done the model is copied into the program's
** state (the job's user value) and the scratch state is closed.
*/
/*
** The scratch state's allocator: blocks by 16-byte class up to 4 KiB,
** carved from mapped arenas of 1 MiB and kept on a free list per class
** once freed; larger blocks mapped one each. Never the host's malloc:
** after a collection freed millions of blocks, glibc sorts them at its
** next larger requests, whoever makes them (creating the scratch state
** took 12 ms at 3M objects on 5.4, 0.2 ms on a small heap). LuaJIT's
** luaL_newstate has its own allocator already, and a 64-bit LuaJIT
** refuses another one.
*/
#define SCLASS  16
#define SSMALL  4096
#define SARENA  ((size_t)1 << 20)

typedef struct sarena {
  char *next, *end;                   /* the current arena's free room */
  char *arenas;                       /* the last arena; each starts with
                                         a pointer to the one before */
  void *free[SSMALL / SCLASS + 1];    /* a list of free blocks by class */
} sarena;

#if !defined(MP_LUAJIT)
static size_t sclass (size_t n) { return (n + SCLASS - 1) / SCLASS; }

static void *sget (sarena *a, size_t n) {
  size_t c = sclass(n);
  void *p;
  if (n > SSMALL) {
    p = mmap(NULL, MP_PAGES(n), PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
  }
  if ((p = a->free[c]) != NULL) {
    memcpy(&a->free[c], p, sizeof(void *));
    return p;
  }
  if (a->next == NULL || (size_t)(a->end - a->next) < c * SCLASS) {
    char *r = (char *)mmap(NULL, SARENA, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) return NULL;
    memcpy(r, &a->arenas, sizeof(char *));
    a->arenas = r;
    a->next = r + SCLASS;
    a->end = r + SARENA;
  }
  p = a->next;
  a->next += c * SCLASS;
  return p;
}

static void sput (sarena *a, void *p, size_t n) {
  if (n > SSMALL) munmap(p, MP_PAGES(n));
  else {
    size_t c = sclass(n);
    memcpy(p, &a->free[c], sizeof(void *));
    a->free[c] = p;
  }
}

static void *scratch_alloc (void *ud, void *ptr, size_t osize,
                            size_t nsize) {
  sarena *a = (sarena *)ud;
  void *q = NULL;
  if (ptr == NULL) osize = 0;
  if (ptr != NULL && nsize > 0 &&
      (osize > SSMALL ? nsize > SSMALL && MP_PAGES(osize) == MP_PAGES(nsize)
                      : nsize <= SSMALL && sclass(osize) == sclass(nsize)))
    return ptr;  /* the block it has fits */
  if (nsize > 0) {
    if ((q = sget(a, nsize)) == NULL)
      return nsize <= osize ? ptr : NULL;  /* a shrink does not fail */
    if (ptr != NULL) memcpy(q, ptr, osize < nsize ? osize : nsize);
  }
  if (ptr != NULL) sput(a, ptr, osize);
  return q;
}
#endif

static void sarena_free (sarena *a) {
  while (a->arenas != NULL) {
    char *r = a->arenas;
    memcpy(&a->arenas, r, sizeof(char *));
    munmap(r, SARENA);
  }
  memset(a, 0, sizeof(*a));
}

typedef struct mjob {
  lua_State *S;       /* the scratch state, NULL when done or failed */
  lua_State *co;      /* the calibration, anchored at S's stack index 1 */
  int started, done;
  /* the longest stretch between two yields in this step and in the one
  ** before, seconds: one slow stretch (the host's malloc merging its
  ** free blocks) does not keep every later step to a single stretch */
  double longest, before;
  sarena arena;       /* where S allocates (not on LuaJIT) */
} mjob;

static void mjob_close (mjob *j) {
  if (j->S != NULL) lua_close(j->S);
  j->S = j->co = NULL;
  sarena_free(&j->arena);
}

static int mjob_gc (lua_State *L) {
  mjob_close((mjob *)luaL_checkudata(L, 1, MODELJOB_MT));
  return 0;
}

/* Runs in S, protected: the libraries, the samples' C functions as
** 'core', the chunk at 1 loaded, and the coroutine that will run it. */
static int scratch_setup (lua_State *S) {
  size_t len;
  const char *code = (const char *)lua_touserdata(S, 1);
  lua_State *co;
  len = (size_t)lua_tonumber(S, 2);
  luaL_openlibs(S);
  co = lua_newthread(S);
  if (luaL_loadbuffer(co, code, len, "=memprobe.heapmodel") != 0)
    return lua_error(co);
  lua_createtable(co, 0, 2);  /* core */
  lua_pushcfunction(co, memprobe_l_sample);
  lua_setfield(co, -2, "heap_sample");
  lua_pushcfunction(co, memprobe_l_dumpsize);
  lua_setfield(co, -2, "heap_dumpsize");
  lua_createtable(co, 0, 1);  /* opts */
  lua_getglobal(co, "coroutine");
  lua_getfield(co, -1, "yield");
  lua_setfield(co, -3, "pause");
  lua_pop(co, 1);
  return 1;  /* the thread */
}

/* Copies the table at index i of 'from' (numbers, booleans, tables of
** them, to 'depth' levels) into a new table on 'to'. */
static void copy_table (lua_State *from, int i, lua_State *to, int depth) {
  i = mp_absindex(from, i);
  lua_newtable(to);
  lua_pushnil(from);
  while (lua_next(from, i)) {
    int vt = lua_type(from, -1);
    if ((lua_type(from, -2) == LUA_TNUMBER ||
         lua_type(from, -2) == LUA_TSTRING) &&
        (vt == LUA_TNUMBER || vt == LUA_TBOOLEAN ||
         (vt == LUA_TTABLE && depth > 0))) {
      if (lua_type(from, -2) == LUA_TSTRING)
        lua_pushstring(to, lua_tostring(from, -2));
      else
        lua_pushnumber(to, lua_tonumber(from, -2));
      if (vt == LUA_TTABLE) copy_table(from, -1, to, depth - 1);
      else if (vt == LUA_TBOOLEAN) lua_pushboolean(to, lua_toboolean(from, -1));
      else lua_pushnumber(to, lua_tonumber(from, -1));
      lua_rawset(to, -3);
    }
    lua_pop(from, 1);
  }
}

/*
** Advances the job at stack index ji until it is done (1) or the clock
** passes 'deadline' (0 for none) less the longest stretch between two
** yields of this step and the one before; a step makes one stretch at
** least, so that every step progresses. Raises what the calibration
** raised.
*/
int memprobe_model_step (lua_State *L, int ji, double deadline) {
  mjob *j = (mjob *)luaL_checkudata(L, ji, MODELJOB_MT);
  int first = 1;
  ji = mp_absindex(L, ji);
  j->before = j->longest;
  j->longest = 0;
  while (!j->done) {
    double t0 = memprobe_now();
    double margin = j->longest > j->before ? j->longest : j->before;
    int st, nres = 0;
    if (j->S == NULL) return luaL_error(L, "size model job failed");
    if (!first && deadline > 0 && t0 + margin >= deadline) return 0;
    first = 0;
    st = mp_resume(j->co, j->S, j->started ? 0 : 2, &nres);
    j->started = 1;
    if (memprobe_now() - t0 > j->longest) j->longest = memprobe_now() - t0;
    if (st == LUA_YIELD) {
      lua_pop(j->co, nres);
      continue;
    }
    if (st != 0 || !lua_istable(j->co, -1)) {
      lua_pushfstring(L, "size model: %s", lua_isstring(j->co, -1) ?
                      lua_tostring(j->co, -1) : "no model");
      mjob_close(j);
      return lua_error(L);
    }
    copy_table(j->co, -1, L, 1);
    mp_setuv(L, ji);
    mjob_close(j);
    j->done = 1;
  }
  return 1;
}

/***
Starts measuring the size model in a scratch state of this VM build.
@function heap_model_job
@tparam string chunk memprobe.heapmodel's function, `string.dump`ed
@treturn userdata a job: `step([ms])` true when done, `result()` the model
*/
int memprobe_l_model_job (lua_State *L) {
  size_t len;
  const char *code = luaL_checklstring(L, 1, &len);
  mjob *j = (mjob *)mp_newuserdata(L, sizeof(mjob));
  memset(j, 0, sizeof(*j));
  luaL_getmetatable(L, MODELJOB_MT);
  lua_setmetatable(L, -2);
#if defined(MP_LUAJIT)
  j->S = luaL_newstate();
#else
  j->S = mp_newstate(scratch_alloc, &j->arena);
#endif
  if (j->S == NULL) return luaL_error(L, "not enough memory for the size model");
  lua_pushcfunction(j->S, scratch_setup);
  lua_pushlightuserdata(j->S, (void *)(uintptr_t)code);
  lua_pushnumber(j->S, (lua_Number)len);
  if (lua_pcall(j->S, 2, 1, 0) != 0) {
    lua_pushfstring(L, "size model: %s", lua_tostring(j->S, -1));
    mjob_close(j);
    return lua_error(L);
  }
  j->co = lua_tothread(j->S, -1);
  return 1;
}

/* job:step([ms]) -> done */
static int mjob_step (lua_State *L) {
  double ms = luaL_optnumber(L, 2, 0);
  double deadline = ms > 0 ? memprobe_now() + ms / 1000 : 0;
  lua_pushboolean(L, memprobe_model_step(L, 1, deadline));
  return 1;
}

/* job:result() -> the model table, or nil while it is measured */
static int mjob_result (lua_State *L) {
  mjob *j = (mjob *)luaL_checkudata(L, 1, MODELJOB_MT);
  if (!j->done) return 0;
  mp_getuv(L, 1, 1);
  return 1;
}

void memprobe_open_model (lua_State *L) {
  static const luaL_Reg methods[] = {
    { "result", mjob_result },
    { "step",   mjob_step },
    { NULL, NULL }
  };
  if (luaL_newmetatable(L, MODELJOB_MT)) {
    lua_pushcfunction(L, mjob_gc);
    lua_setfield(L, -2, "__gc");
    lua_createtable(L, 0, 2);
    mp_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, MODELJOB_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
}

/* }====================================================== */
