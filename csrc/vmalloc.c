/*
** vmalloc.c: /proc/vmallocinfo summed by kind, by caller and by module,
** and /proc/allocinfo (memory allocation profiling, Linux 6.10+) per call
** site.
*/
/***
@submodule memprobe
*/
#include "internal.h"

#include <stdlib.h>
#include <string.h>


/* A word of a line: [s, s + n). */
typedef struct word { const char *s; size_t n; } word;

static int is (word w, const char *lit) {
  return strlen(lit) == w.n && memcmp(w.s, lit, w.n) == 0;
}

static int prefix (word w, const char *lit) {
  size_t n = strlen(lit);
  return w.n >= n && memcmp(w.s, lit, n) == 0;
}

static const char *next_word (const char *s, const char *end, word *w) {
  s = memprobe_skipspace(s, end);
  w->s = s;
  while (s < end && *s != ' ' && *s != '\t')
    s++;
  w->n = (size_t)(s - w->s);
  return s;
}

/*
** The flag words mm/vmalloc.c prints after the caller, pages= and phys=,
** in the order it prints them; the first one present names the kind.
*/
static const char *const flagword[] = {
  "ioremap", "sparse", "vmalloc", "vmap", "user", "dma-coherent", "vpages",
  "vm_map_ram", NULL
};

static int flag_index (word w) {
  int i;
  for (i = 0; flagword[i] != NULL; i++)
    if (is(w, flagword[i]))
      return i;
  return -1;
}

/* "N0=513": a NUMA node's page count. */
static int is_node (word w) {
  size_t i = 1;
  if (w.n < 3 || w.s[0] != 'N')
    return 0;
  while (i < w.n && w.s[i] >= '0' && w.s[i] <= '9')
    i++;
  return i > 1 && i < w.n && w.s[i] == '=';
}

static int parse_area (const char *s, const char *eol, mp_vmarea *a) {
  word w;
  const char *p;
  int i;
  memset(a, 0, sizeof(*a));
  a->pages = -1;
  p = next_word(s, eol, &w);
  if (w.n < 5 || !prefix(w, "0x") || memchr(w.s, '-', w.n) == NULL)
    return 0;
  a->addr = w.s;
  a->alen = w.n;
  p = memprobe_skipspace(p, eol);
  if ((p = memprobe_int64(p, eol, &a->size)) == NULL || a->size < 0 ||
      (p < eol && *p != ' ' && *p != '\t'))
    return 0;
  while ((p = next_word(p, eol, &w)), w.n > 0) {
    if (is(w, "unpurged")) {
      a->kind = "unpurged";
      a->flags |= MP_VM_UNPURGED;
      p = next_word(p, eol, &w);  /* "vm_area" */
    }
    else if ((i = flag_index(w)) >= 0) {
      a->flags |= 1u << i;
      if (a->kind == NULL && i != MP_VM_IVPAGES)
        a->kind = flagword[i];
    }
    else if (prefix(w, "pages=")) {
      const char *q = memprobe_int64(w.s + 6, w.s + w.n, &a->pages);
      if (q != w.s + w.n || a->pages < 0)
        return 0;
    }
    else if (prefix(w, "phys=")) {
      a->phys = w.s + 5;
      a->plen = w.n - 5;
    }
    else if (is_node(w)) {
      int64_t v;
      const char *eq = (const char *)memchr(w.s, '=', w.n);
      const char *q = memprobe_int64(eq + 1, w.s + w.n, &v);
      if (q != w.s + w.n)
        return 0;
    }
    else if (w.n > 2 && w.s[0] == '[' && w.s[w.n - 1] == ']' &&
             a->caller != NULL) {
      a->module = w.s + 1;
      a->mlen = w.n - 2;
    }
    else if (a->caller == NULL) {
      const char *plus = memchr(w.s, '+', w.n);
      a->caller = w.s;
      a->clen = w.n;
      a->flen = plus ? (size_t)(plus - w.s) : w.n;
    }
    else
      return 0;  /* a second caller: not a line we know */
  }
  if (a->kind == NULL)
    a->kind = "other";
  return 1;
}

/*
** Parses /proc/vmallocinfo, every line variant of 2.6 to 6.18:
**   0x..-0x.. 20480 kernel_clone+0xb8/0x400 pages=4 vmalloc N0=4
**   0x..-0x.. 2105344 htab_map_alloc+0x2e4/0x5a0 pages=513 vmalloc vpages N0=513
**   0x..-0x.. 8192 acpi_os_map_iomem+0x1bc/0x1e0 phys=0x..a0000 ioremap
**   0x..-0x.. 16384 f+0x1/0x2 [module] pages=3 vmalloc
**   0x..-0x.. 20480 unpurged vm_area
**   0x..-0x.. 65536 vm_map_ram
** NUMA counts (N0=) are absent on older kernels and without NUMA. Returns
** the number of areas reported; other lines go to *skipped.
*/
int memprobe_parse_vmallocinfo (const char *s, size_t len, int *skipped,
                                mp_vmarea_cb cb, void *ud) {
  const char *end = s + len, *line, *eol;
  int n = 0;
  *skipped = 0;
  while ((line = memprobe_dataline(&s, end, 0, &eol)) != NULL) {
    mp_vmarea a;
    if (parse_area(line, eol, &a)) {
      cb(ud, &a);
      n++;
    }
    else
      (*skipped)++;
  }
  return n;
}


/* Sums of one caller, module or kind. */
typedef struct agg {
  const char *name, *module;
  size_t nlen, mlen;
  int64_t count, size, pages;
  int64_t key;
  size_t seq;              /* order of first appearance, for ties */
} agg;

typedef struct summer {
  lua_State *L;
  int index;               /* table: key string -> position in the arrays */
  int areas;               /* table of areas, or 0 */
  agg *caller, *module;
  size_t ncaller, nmodule, cap;
  agg kind[16];
  size_t nkind;
  int64_t count, size, pages, vmalloc_pages;
  long pagesize;
} summer;

static void add (agg *g, const mp_vmarea *a) {
  g->count++;
  g->size = memprobe_add(g->size, a->size);
  if (a->pages > 0)
    g->pages = memprobe_add(g->pages, a->pages);
}

/* Finds or makes the entry for key in arr (n entries, index in S). */
static agg *find (summer *S, agg *arr, size_t *n, const char *key,
                  size_t klen) {
  lua_State *L = S->L;
  agg *g;
  lua_pushlstring(L, key, klen);
  lua_rawget(L, S->index);
  if (lua_isnumber(L, -1)) {
    g = &arr[(size_t)lua_tonumber(L, -1)];
    lua_pop(L, 1);
    return g;
  }
  lua_pop(L, 1);
  if (*n >= S->cap)
    return NULL;
  g = &arr[*n];
  memset(g, 0, sizeof(*g));
  g->seq = *n;
  lua_pushlstring(L, key, klen);
  lua_pushinteger(L, (lua_Integer)*n);
  lua_rawset(L, S->index);
  (*n)++;
  return g;
}

static void set_str (lua_State *L, const char *k, const char *s, size_t n) {
  if (s != NULL) {
    lua_pushlstring(L, s, n);
    lua_setfield(L, -2, k);
  }
}

static void push_area (summer *S, const mp_vmarea *a) {
  lua_State *L = S->L;
  const char *dash = memchr(a->addr, '-', a->alen);
  lua_createtable(L, 0, 9);
  set_str(L, "start", a->addr, (size_t)(dash - a->addr));
  set_str(L, "end", dash + 1, a->alen - (size_t)(dash + 1 - a->addr));
  mp_setint(L, "virtual", a->size);
  set_str(L, "caller", a->caller, a->clen);
  set_str(L, "func", a->caller, a->flen);
  set_str(L, "module", a->module, a->mlen);
  if (a->pages >= 0)
    mp_setint(L, "pages", a->pages);
  set_str(L, "phys", a->phys, a->plen);
  set_str(L, "kind", a->kind, strlen(a->kind));
  lua_pushboolean(L, (a->flags & (1u << MP_VM_IVPAGES)) != 0);
  lua_setfield(L, -2, "vpages");
  lua_rawseti(L, S->areas, (int)S->count);
}

/* The kernel image is named as perf names it. */
#define BUILTIN  "vmlinux"

static void sum_area (void *ud, const mp_vmarea *a) {
  summer *S = (summer *)ud;
  lua_State *L = S->L;
  agg *g;
  size_t i;
  S->count++;
  S->size = memprobe_add(S->size, a->size);
  if (a->pages > 0) {
    S->pages = memprobe_add(S->pages, a->pages);
    if (a->flags & (1u << MP_VM_IVMALLOC))
      S->vmalloc_pages = memprobe_add(S->vmalloc_pages, a->pages);
  }
  for (i = 0; i < S->nkind && strcmp(S->kind[i].name, a->kind) != 0; i++)
    ;
  if (i == S->nkind && i < sizeof(S->kind) / sizeof(S->kind[0])) {
    memset(&S->kind[i], 0, sizeof(agg));
    S->kind[i].name = a->kind;
    S->nkind++;
  }
  if (i < S->nkind)
    add(&S->kind[i], a);
  if (S->areas)
    push_area(S, a);
  if (a->caller != NULL) {
    luaL_Buffer b;
    const char *key;
    size_t klen;
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, a->caller, a->flen);
    luaL_addchar(&b, ' ');
    luaL_addlstring(&b, a->module ? a->module : BUILTIN,
                    a->module ? a->mlen : strlen(BUILTIN));
    luaL_pushresult(&b);
    key = lua_tolstring(L, -1, &klen);
    if ((g = find(S, S->caller, &S->ncaller, key, klen)) != NULL) {
      g->name = a->caller;
      g->nlen = a->flen;
      g->module = a->module;
      g->mlen = a->mlen;
      add(g, a);
    }
    lua_pop(L, 1);
    /* module keys start with a space: no caller key can */
    lua_pushliteral(L, " ");
    lua_pushlstring(L, a->module ? a->module : BUILTIN,
                    a->module ? a->mlen : strlen(BUILTIN));
    lua_concat(L, 2);
    key = lua_tolstring(L, -1, &klen);
    if ((g = find(S, S->module, &S->nmodule, key, klen)) != NULL) {
      g->module = a->module;
      g->mlen = a->mlen;
      add(g, a);
    }
    lua_pop(L, 1);
  }
}

/* Larger key first; ties keep the order of first appearance. */
static int by_key (const void *a, const void *b) {
  const agg *x = (const agg *)a, *y = (const agg *)b;
  if (x->key != y->key)
    return x->key < y->key ? 1 : -1;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

static int64_t pick (const agg *g, int sort) {
  return sort == 'p' ? g->pages : sort == 'c' ? g->count : g->size;
}

static void push_sums (lua_State *L, const agg *g, long pagesize) {
  mp_setint(L, "count", g->count);
  mp_setint(L, "virtual", g->size);
  mp_setint(L, "pages", g->pages);
  mp_setint(L, "bytes", memprobe_bytes(g->pages, pagesize));
}

/* Pushes arr sorted as an array of tables, at most top of them. */
static void push_list (lua_State *L, agg *arr, size_t n, int sort,
                       lua_Integer top, int callers, long pagesize) {
  size_t i;
  for (i = 0; i < n; i++)
    arr[i].key = pick(&arr[i], sort);
  qsort(arr, n, sizeof(agg), by_key);
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n && (top < 0 || (lua_Integer)i < top); i++) {
    lua_createtable(L, 0, 6);
    if (callers)
      set_str(L, "caller", arr[i].name, arr[i].nlen);
    if (arr[i].module)
      set_str(L, "module", arr[i].module, arr[i].mlen);
    else
      set_str(L, "module", BUILTIN, strlen(BUILTIN));
    push_sums(L, &arr[i], pagesize);
    lua_rawseti(L, -2, (int)i + 1);
  }
}

typedef struct vmopts { int sort; lua_Integer top; int areas; } vmopts;

/* opts: sort = "virtual"|"pages"|"count", top = N, areas = true. */
static void check_opts (lua_State *L, vmopts *o, int areas_ok) {
  o->sort = 'v';
  o->top = -1;
  o->areas = 0;
  if (lua_isnoneornil(L, 1))
    return;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                   : NULL;
    if (k != NULL && strcmp(k, "sort") == 0 && areas_ok) {
      const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                     : "";
      if (strcmp(v, "virtual") != 0 && strcmp(v, "pages") != 0 &&
          strcmp(v, "count") != 0)
        luaL_argerror(L, 1, "sort must be 'virtual', 'pages' or 'count'");
      o->sort = v[0];
    }
    else if (k != NULL && strcmp(k, "top") == 0) {
      lua_Number n = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= 1e9) ||
          n != (lua_Integer)n)
        luaL_argerror(L, 1, "top must be a positive integer");
      o->top = (lua_Integer)n;
    }
    else if (k != NULL && strcmp(k, "areas") == 0 && areas_ok)
      o->areas = lua_toboolean(L, -1);
    else
      luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'",
                    k ? k : luaL_typename(L, -2)));
    lua_pop(L, 1);
  }
}

/*
** vmallocinfo([opts]): { totals, by_kind, by_caller, by_module [, areas] }.
** by_caller and by_module are arrays, largest first; by_kind is keyed by
** kind. 'bytes' is pages * page size: memory behind the area, which for
** vmalloc areas is what meminfo's VmallocUsed counts. 'virtual' is
** address space, guard page included (the kernel's size column).
*/
/***
/proc/vmallocinfo summed. `totals`: `count virtual pages bytes
vmalloc_pages vmalloc_bytes` (virtual = address space, guard pages
included; bytes = pages * page size, the memory behind it; vmalloc_bytes
is what meminfo's VmallocUsed counts); `by_kind`: keyed by vmalloc,
ioremap, vmap, user, vm_map_ram, unpurged ...; `by_caller`: `{ caller,
module, count, virtual, pages, bytes }` largest first (built-in code is
module "vmlinux");
`by_module`: the same per module. Needs root or CAP_DAC_READ_SEARCH.
@function vmallocinfo
@tparam[opt] table opts `sort` ("virtual", the default, "pages" or
"count"), `top` (N callers and modules), `areas` (true adds every area:
`start end virtual caller func module pages phys kind vpages`)
@treturn table the sums, or nil, message, errno
*/
MP_READER(l_vmallocinfo) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len, i;
  summer S;
  vmopts o;
  int err, skipped, t;
  check_opts(L, &o, 1);
  lua_settop(L, 1);
  if ((err = memprobe_read(c, MP_PROC, "vmallocinfo", &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, "vmallocinfo", err);
  memset(&S, 0, sizeof(S));
  S.L = L;
  S.pagesize = c->pagesize;
  S.cap = memprobe_countlines(data, len);
  S.caller = (agg *)mp_newuserdata(L, S.cap * sizeof(agg));
  S.module = (agg *)mp_newuserdata(L, S.cap * sizeof(agg));
  lua_newtable(L);
  S.index = lua_gettop(L);
  if (o.areas) {
    lua_newtable(L);
    S.areas = lua_gettop(L);
  }
  memprobe_parse_vmallocinfo(data, len, &skipped, sum_area, &S);
  lua_createtable(L, 0, 6);
  t = lua_gettop(L);
  lua_createtable(L, 0, 6);
  mp_setint(L, "count", S.count);
  mp_setint(L, "virtual", S.size);
  mp_setint(L, "pages", S.pages);
  mp_setint(L, "bytes", memprobe_bytes(S.pages, c->pagesize));
  mp_setint(L, "vmalloc_pages", S.vmalloc_pages);
  mp_setint(L, "vmalloc_bytes", memprobe_bytes(S.vmalloc_pages, c->pagesize));
  lua_setfield(L, t, "totals");
  lua_createtable(L, 0, (int)S.nkind);
  for (i = 0; i < S.nkind; i++) {
    lua_createtable(L, 0, 4);
    push_sums(L, &S.kind[i], c->pagesize);
    lua_setfield(L, -2, S.kind[i].name);
  }
  lua_setfield(L, t, "by_kind");
  push_list(L, S.caller, S.ncaller, o.sort, o.top, 1, c->pagesize);
  lua_setfield(L, t, "by_caller");
  push_list(L, S.module, S.nmodule, o.sort, o.top, 0, c->pagesize);
  lua_setfield(L, t, "by_module");
  if (o.areas) {
    lua_pushvalue(L, S.areas);
    lua_setfield(L, t, "areas");
  }
  if (skipped > 0) {
    mp_pushint(L, skipped);
    lua_setfield(L, t, "skipped");
  }
  return 1;
}


/*
** One /proc/allocinfo line:
**   <bytes> <calls> <file>:<line> [<module>] func:<function> [accurate:no]
** Returns 0 for lines that are not sites (header, comments).
*/
static int parse_site (const char *s, const char *eol, mp_allocsite *o) {
  const char *p, *colon;
  word w;
  memset(o, 0, sizeof(*o));
  o->accurate = -1;
  p = memprobe_skipspace(s, eol);
  if ((p = memprobe_int64(p, eol, &o->bytes)) == NULL ||
      (p = memprobe_int64(memprobe_skipspace(p, eol), eol, &o->calls)) == NULL
      || o->bytes < 0 || o->calls < 0)
    return 0;
  p = next_word(p, eol, &w);
  colon = w.n ? (const char *)memchr(w.s, ':', w.n) : NULL;
  while (colon != NULL) {  /* the last colon: file names may hold one */
    const char *more = memchr(colon + 1, ':', w.n - (size_t)(colon + 1 - w.s));
    if (more == NULL)
      break;
    colon = more;
  }
  if (colon == NULL || colon == w.s ||
      memprobe_int64(colon + 1, w.s + w.n, &o->line) != w.s + w.n)
    return 0;
  o->file = w.s;
  o->flen = (size_t)(colon - w.s);
  while ((p = next_word(p, eol, &w)), w.n > 0) {
    if (w.n > 2 && w.s[0] == '[' && w.s[w.n - 1] == ']') {
      o->module = w.s + 1;
      o->mlen = w.n - 2;
    }
    else if (prefix(w, "func:")) {
      o->func = w.s + 5;
      o->fnlen = w.n - 5;
    }
    else if (is(w, "accurate:no"))
      o->accurate = 0;
    else if (is(w, "accurate:yes"))
      o->accurate = 1;
  }
  return o->func != NULL;
}

/*
** Parses /proc/allocinfo. Returns the number of sites, or -1 when the
** "allocinfo - version:" header is missing; *skipped counts lines that
** were neither sites nor comments.
*/
int memprobe_parse_allocinfo (const char *s, size_t len, int *skipped,
                              mp_allocsite_cb cb, void *ud) {
  static const char head[] = "allocinfo - version:";
  const char *end = s + len, *line, *eol;
  int n = 0;
  *skipped = 0;
  if (len < sizeof(head) - 1 || memcmp(s, head, sizeof(head) - 1) != 0)
    return -1;
  s = memprobe_nextline(s, end);
  while ((line = memprobe_dataline(&s, end, 1, &eol)) != NULL) {
    mp_allocsite o;
    if (parse_site(line, eol, &o)) {
      cb(ud, &o);
      n++;
    }
    else
      (*skipped)++;
  }
  return n;
}

typedef struct sites {
  mp_allocsite *v;
  size_t n, cap;
} sites;

static void add_site (void *ud, const mp_allocsite *o) {
  sites *k = (sites *)ud;
  if (k->n < k->cap)
    k->v[k->n++] = *o;
}

static int by_bytes (const void *a, const void *b) {
  const mp_allocsite *x = (const mp_allocsite *)a;
  const mp_allocsite *y = (const mp_allocsite *)b;
  if (x->bytes != y->bytes)
    return x->bytes < y->bytes ? 1 : -1;
  if (x->calls != y->calls)
    return x->calls < y->calls ? 1 : -1;
  return (x > y) - (x < y);
}

/*
** allocinfo([opts]): { version, sites = {...}, totals } with the sites
** largest first; opts.top keeps the first N.
*/
/***
/proc/allocinfo (Linux 6.10+ with CONFIG_MEM_ALLOC_PROFILING): live bytes
and calls per allocation call site, largest first: `{ bytes, calls, file,
line, module, func, accurate }`, and `totals` `{ bytes, calls, sites }`.
@function allocinfo
@tparam[opt] table opts `top`: keep the first N sites
@treturn table `{ version, sites, totals [, skipped] }`, or nil, message,
errno
*/
MP_READER(l_allocinfo) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data, *eol, *v;
  size_t len, i;
  sites k;
  vmopts o;
  int err, skipped;
  int64_t bytes = 0, calls = 0;
  check_opts(L, &o, 0);
  lua_settop(L, 1);
  if ((err = memprobe_read_nocache(c, MP_PROC, "allocinfo", &data,
                                   &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, "allocinfo", err);
  k.cap = memprobe_countlines(data, len);
  k.n = 0;
  k.v = (mp_allocsite *)mp_newuserdata(L, k.cap * sizeof(mp_allocsite));
  if (memprobe_parse_allocinfo(data, len, &skipped, add_site, &k) < 0)
    return memprobe_result(L, 0, "%s/allocinfo: no 'allocinfo - version:' "
                           "header", c->root[MP_PROC]);
  qsort(k.v, k.n, sizeof(mp_allocsite), by_bytes);
  lua_createtable(L, 0, 4);
  eol = memprobe_nextline(data, data + len);
  v = memprobe_skipspace(data + 20, eol);
  while (eol > v && (eol[-1] == '\n' || eol[-1] == ' '))
    eol--;
  lua_pushlstring(L, v, (size_t)(eol - v));
  lua_setfield(L, -2, "version");
  lua_createtable(L, (int)k.n, 0);
  for (i = 0; i < k.n; i++) {
    const mp_allocsite *s = &k.v[i];
    bytes = memprobe_add(bytes, s->bytes);
    calls = memprobe_add(calls, s->calls);
    if (o.top >= 0 && (lua_Integer)i >= o.top)
      continue;
    lua_createtable(L, 0, 7);
    mp_setint(L, "bytes", s->bytes);
    mp_setint(L, "calls", s->calls);
    set_str(L, "file", s->file, s->flen);
    mp_setint(L, "line", s->line);
    set_str(L, "module", s->module, s->mlen);
    set_str(L, "func", s->func, s->fnlen);
    if (s->accurate >= 0) {
      lua_pushboolean(L, s->accurate);
      lua_setfield(L, -2, "accurate");
    }
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "sites");
  lua_createtable(L, 0, 3);
  mp_setint(L, "bytes", bytes);
  mp_setint(L, "calls", calls);
  mp_setint(L, "sites", (int64_t)k.n);
  lua_setfield(L, -2, "totals");
  if (skipped > 0) {
    mp_pushint(L, skipped);
    lua_setfield(L, -2, "skipped");
  }
  return 1;
}

void memprobe_open_vmalloc (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "allocinfo",   l_allocinfo },
    { "vmallocinfo", l_vmallocinfo },
    { NULL, NULL }
  };
  (void)c;
  memprobe_register(L, funcs);
}
