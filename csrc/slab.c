/*
** slab.c: /proc/slabinfo as slabtop reads it, and one cache's details
** from /sys/kernel/slab/<cache>, merged aliases included.
*/
/***
@submodule memprobe
*/
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* Reads a non-negative integer after optional blanks. */
static const char *uint_field (const char *s, const char *end, int64_t *v) {
  s = memprobe_skipspace(s, end);
  if (s < end && (*s == '-' || *s == '+'))
    return NULL;
  return memprobe_int64(s, end, v);
}

/* Expects ": word" after blanks; returns what follows the word. */
static const char *section (const char *s, const char *end, const char *word) {
  size_t n = strlen(word);
  s = memprobe_skipspace(s, end);
  if (s >= end || *s != ':')
    return NULL;
  s = memprobe_skipspace(s + 1, end);
  if ((size_t)(end - s) < n || memcmp(s, word, n) != 0)
    return NULL;
  return s + n;
}

/*
** One cache line of version 2.x:
**   name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab>
**     : tunables <limit> <batchcount> <sharedfactor>
**     : slabdata <active_slabs> <num_slabs> <sharedavail>
** SLAB with statistics appends ": globalstat ..." and ": cpustat ..." to
** the same line; whatever follows slabdata is not looked at. The
** tunables section is optional so that a line is judged by the counts the
** result needs.
*/
static int parse_cache (const char *s, const char *eol, mp_slab *o) {
  const char *p = memprobe_skipspace(s, eol), *t;
  o->name = p;
  while (p < eol && *p != ' ' && *p != '\t')
    p++;
  o->nlen = (size_t)(p - o->name);
  if (o->nlen == 0 || o->name[0] == '#')
    return 0;
  if ((p = uint_field(p, eol, &o->active_objs)) == NULL ||
      (p = uint_field(p, eol, &o->num_objs)) == NULL ||
      (p = uint_field(p, eol, &o->objsize)) == NULL ||
      (p = uint_field(p, eol, &o->objperslab)) == NULL ||
      (p = uint_field(p, eol, &o->pagesperslab)) == NULL)
    return 0;
  o->limit = o->batchcount = o->sharedfactor = -1;
  if ((t = section(p, eol, "tunables")) != NULL) {
    if ((t = uint_field(t, eol, &o->limit)) == NULL ||
        (t = uint_field(t, eol, &o->batchcount)) == NULL ||
        (t = uint_field(t, eol, &o->sharedfactor)) == NULL)
      return 0;
    p = t;
  }
  if ((p = section(p, eol, "slabdata")) == NULL ||
      (p = uint_field(p, eol, &o->active_slabs)) == NULL ||
      (p = uint_field(p, eol, &o->num_slabs)) == NULL ||
      (p = uint_field(p, eol, &o->sharedavail)) == NULL)
    return 0;
  return 1;
}

/*
** Parses a whole /proc/slabinfo. The first line must be
** "slabinfo - version: M.m" (an optional " (statistics)" follows under
** SLAB). Sets *major and *minor when the header parses. Returns the
** number of caches reported, -1 when there is no header, -2 when the
** version is not 2.x; lines that do not parse are skipped and counted in
** *skipped.
*/
int memprobe_parse_slabinfo (const char *s, size_t len, int *major,
                             int *minor, int *skipped, mp_slab_cb cb,
                             void *ud) {
  static const char head[] = "slabinfo - version:";
  const char *end = s + len, *p;
  const char *eol = memprobe_nextline(s, end);
  int64_t ma, mi;
  int n = 0;
  *skipped = 0;
  if (len < sizeof(head) - 1 || memcmp(s, head, sizeof(head) - 1) != 0)
    return -1;
  p = memprobe_skipspace(s + sizeof(head) - 1, eol);
  if ((p = memprobe_int64(p, eol, &ma)) == NULL || p >= eol || *p != '.' ||
      (p = memprobe_int64(p + 1, eol, &mi)) == NULL || ma < 0 || mi < 0 ||
      ma > 99 || mi > 99)
    return -1;
  *major = (int)ma;
  *minor = (int)mi;
  if (ma != 2)
    return -2;
  for (s = eol; (p = memprobe_dataline(&s, end, 1, &eol)) != NULL; ) {
    mp_slab o;
    if (parse_cache(p, eol, &o)) {
      cb(ud, &o);
      n++;
    }
    else
      (*skipped)++;
  }
  return n;
}


/* The caches of one call, in a userdata the GC reclaims if we raise. */
typedef struct entry {
  mp_slab s;
  double key;
} entry;

typedef struct collect {
  entry *e;
  size_t n, cap;
} collect;

static void add_cache (void *ud, const mp_slab *s) {
  collect *k = (collect *)ud;
  if (k->n < k->cap)
    k->e[k->n++].s = *s;
}

static int use_pct (const mp_slab *s) {
  if (s->num_objs <= 0)
    return 0;
  if (s->active_objs > INT64_MAX / 100)  /* garbage: no overflow for it */
    return (int)((double)s->active_objs / (double)s->num_objs * 100);
  return (int)(100 * s->active_objs / s->num_objs);
}

static double sort_key (const mp_slab *s, int key, long pagesize) {
  switch (key) {
    case 'a': return (double)s->active_objs;
    case 'b': return (double)s->objperslab;
    case 'c': return (double)s->num_slabs * s->pagesperslab * pagesize;
    case 'l': return (double)s->num_slabs;
    case 'v': return (double)s->active_slabs;
    case 'o': return (double)s->num_objs;
    case 'p': return (double)s->pagesperslab;
    case 's': return (double)s->objsize;
    case 'u': return use_pct(s);
    default: return 0;
  }
}

static int by_name (const void *a, const void *b) {
  const mp_slab *x = &((const entry *)a)->s, *y = &((const entry *)b)->s;
  size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
  int r = memcmp(x->name, y->name, n);
  return r != 0 ? r : (x->nlen > y->nlen) - (x->nlen < y->nlen);
}

/* Larger first, as slabtop; ties by name so the order is stable. */
static int by_key (const void *a, const void *b) {
  double x = ((const entry *)a)->key, y = ((const entry *)b)->key;
  if (x != y)
    return x < y ? 1 : -1;
  return by_name(a, b);
}

static void setint (lua_State *L, const char *k, int64_t v) {
  mp_pushint(L, v);
  lua_setfield(L, -2, k);
}

/* Sets t[k] = v, or leaves the field nil when the kernel gave no value. */
static void setopt (lua_State *L, const char *k, int64_t v) {
  if (v >= 0)
    setint(L, k, v);
}

static void push_cache (lua_State *L, const mp_slab *s, long pagesize) {
  lua_createtable(L, 0, 16);
  lua_pushlstring(L, s->name, s->nlen);
  lua_setfield(L, -2, "name");
  setint(L, "active_objs", s->active_objs);
  setint(L, "num_objs", s->num_objs);
  setint(L, "objsize", s->objsize);
  setint(L, "objperslab", s->objperslab);
  setint(L, "pagesperslab", s->pagesperslab);
  setint(L, "active_slabs", s->active_slabs);
  setint(L, "num_slabs", s->num_slabs);
  setint(L, "size", memprobe_bytes(memprobe_bytes(s->num_slabs,
                                                   s->pagesperslab),
                                    pagesize));
  setint(L, "active_size", memprobe_bytes(s->active_objs, s->objsize));
  setint(L, "use", use_pct(s));
  setopt(L, "limit", s->limit);
  setopt(L, "batchcount", s->batchcount);
  setopt(L, "sharedfactor", s->sharedfactor);
  setint(L, "sharedavail", s->sharedavail);
}

/*
** slabtop's header lines. Object sizes are summed as num_objs * objsize
** (not slab pages), the caches counted active have an active object, the
** average is total size over objects: all as procps computes them.
*/
static void push_totals (lua_State *L, const collect *k, long pagesize) {
  int64_t aobj = 0, nobj = 0, aslab = 0, nslab = 0, acache = 0;
  int64_t asize = 0, tsize = 0, pages = 0, omin = 0, omax = 0;
  size_t i;
  for (i = 0; i < k->n; i++) {
    const mp_slab *s = &k->e[i].s;
    aobj = memprobe_add(aobj, s->active_objs);
    nobj = memprobe_add(nobj, s->num_objs);
    aslab = memprobe_add(aslab, s->active_slabs);
    nslab = memprobe_add(nslab, s->num_slabs);
    acache += s->active_objs > 0;
    asize = memprobe_add(asize, memprobe_bytes(s->active_objs, s->objsize));
    tsize = memprobe_add(tsize, memprobe_bytes(s->num_objs, s->objsize));
    pages = memprobe_add(pages, memprobe_bytes(s->num_slabs,
                                               s->pagesperslab));
    if (i == 0 || s->objsize < omin)
      omin = s->objsize;
    if (s->objsize > omax)
      omax = s->objsize;
  }
  lua_createtable(L, 0, 14);
  setint(L, "active_objs", aobj);
  setint(L, "num_objs", nobj);
  setint(L, "active_slabs", aslab);
  setint(L, "num_slabs", nslab);
  setint(L, "active_caches", acache);
  setint(L, "num_caches", (int64_t)k->n);
  setint(L, "active_size", asize);
  setint(L, "total_size", tsize);
  setint(L, "size", memprobe_bytes(pages, pagesize));
  if (k->n > 0) {
    setint(L, "min_objsize", omin);
    setint(L, "avg_objsize", nobj > 0 ? tsize / nobj : 0);
    setint(L, "max_objsize", omax);
  }
}

/* Checks opts (argument 1): sort = one of slabtop's -s keys, top = N. */
static void slab_opts (lua_State *L, int *key, lua_Integer *top) {
  *key = 0;
  *top = -1;
  if (lua_isnoneornil(L, 1))
    return;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2)
                                                   : NULL;
    if (k != NULL && strcmp(k, "sort") == 0) {
      const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                     : NULL;
      if (v == NULL || strlen(v) != 1 || strchr("abclvnopsu", v[0]) == NULL)
        luaL_argerror(L, 1, "sort must be one of a b c l v n o p s u");
      *key = v[0];
    }
    else if (k != NULL && strcmp(k, "top") == 0) {
      lua_Number n = lua_tonumber(L, -1);
      if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 1 && n <= 1e9) ||
          n != (lua_Integer)n)
        luaL_argerror(L, 1, "top must be a positive integer");
      *top = (lua_Integer)n;
    }
    else
      luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'",
                    k ? k : luaL_typename(L, -2)));
    lua_pop(L, 1);
  }
}

/*
** slabinfo([opts]): { version, caches = {...}, totals = {...} }. The
** caches are kept in file order unless opts.sort is given.
*/
/***
The slab caches of /proc/slabinfo (versions 2.0 and 2.1, SLUB and SLAB,
SLAB's statistics columns ignored), as slabtop reads them. Each cache has
`name active_objs num_objs objsize objperslab pagesperslab active_slabs
num_slabs`, `size` (num_slabs * pagesperslab * page size), `active_size`
(active_objs * objsize), `use` (percent of objects active) and, where the
allocator has them, `limit batchcount sharedfactor sharedavail`. `totals`
holds slabtop's header figures: `active_objs num_objs active_slabs
num_slabs active_caches num_caches active_size total_size size
min_objsize avg_objsize max_objsize`. Needs root or CAP_DAC_READ_SEARCH.
@function slabinfo
@tparam[opt] table opts `sort`: one of slabtop's -s keys (a b c l v n o p
s u; larger first, n by name); `top`: keep the first N caches
@treturn table `{ version, caches, totals [, skipped] }`, or nil, message,
errno (a 1.x file gives nil and a message)
*/
MP_READER(l_slabinfo) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len, i;
  collect k;
  int key, major = 0, minor = 0, skipped, n, err;
  lua_Integer top;
  slab_opts(L, &key, &top);
  if ((err = memprobe_read(c, MP_PROC, "slabinfo", &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, "slabinfo", err);
  k.cap = memprobe_countlines(data, len);
  k.n = 0;
  k.e = (entry *)mp_newuserdata(L, k.cap * sizeof(entry));
  n = memprobe_parse_slabinfo(data, len, &major, &minor, &skipped, add_cache,
                              &k);
  if (n == -1)
    return memprobe_result(L, 0, "%s/slabinfo: no 'slabinfo - version:' "
                           "header", c->root[MP_PROC]);
  if (n < 0)
    return memprobe_result(L, 0, "%s/slabinfo: version %d.%d is not "
                           "supported (2.0 and 2.1 are)", c->root[MP_PROC],
                           major, minor);
  if (key == 'n')
    qsort(k.e, k.n, sizeof(entry), by_name);
  else if (key != 0) {
    for (i = 0; i < k.n; i++)
      k.e[i].key = sort_key(&k.e[i].s, key, c->pagesize);
    qsort(k.e, k.n, sizeof(entry), by_key);
  }
  lua_createtable(L, 0, 4);
  lua_pushfstring(L, "%d.%d", major, minor);
  lua_setfield(L, -2, "version");
  lua_createtable(L, (int)k.n, 0);
  for (i = 0; i < k.n && (top < 0 || (lua_Integer)i < top); i++) {
    push_cache(L, &k.e[i].s, c->pagesize);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "caches");
  push_totals(L, &k, c->pagesize);
  lua_setfield(L, -2, "totals");
  if (skipped > 0) {
    mp_pushint(L, skipped);
    lua_setfield(L, -2, "skipped");
  }
  return 1;
}


/*
** "34419 N0=34419 N1=2" (objects, slabs, total_objects...): the number
** comes first, then per-node counts. Sets *v and calls per_node for each
** "N<n>=<v>". Returns 0 when the first number is missing.
*/
int memprobe_parse_nodecounts (const char *s, size_t len, int64_t *v,
                               mp_node_cb per_node, void *ud) {
  const char *end = s + len, *p;
  p = memprobe_int64(memprobe_skipspace(s, end), end, v);
  if (p == NULL)
    return 0;
  for (;;) {
    int64_t node, n;
    const char *q;
    p = memprobe_skipspace(p, end);
    if (p >= end || *p != 'N')
      break;
    q = memprobe_int64(p + 1, end, &node);
    if (q == NULL || q >= end || *q != '=' ||
        (q = memprobe_int64(q + 1, end, &n)) == NULL)
      break;
    if (per_node != NULL && node >= 0 && node < 65536)
      per_node(ud, (int)node, n);
    p = q;
  }
  return 1;
}

/* The files of /sys/kernel/slab/<cache> returned as numbers. */
static const char *const numeric[] = {
  "object_size", "slab_size", "order", "objs_per_slab", "aliases", "align",
  "objects", "total_objects", "slabs", "partial", "cpu_slabs",
  "objects_partial", "min_partial", "cpu_partial", "usersize",
  "reclaim_account", "hwcache_align", "destroy_by_rcu", "cache_dma",
  "poison", "red_zone", "store_user", "sanity_checks", "trace",
  "sheaf_capacity", NULL
};

/* The files whose per-node counts go into 'nodes'. */
static int has_nodes (const char *f) {
  return strcmp(f, "objects") == 0 || strcmp(f, "total_objects") == 0 ||
         strcmp(f, "slabs") == 0 || strcmp(f, "partial") == 0 ||
         strcmp(f, "cpu_slabs") == 0;
}

typedef struct nodeset { lua_State *L; int nodes; const char *field; } nodeset;

/* nodes[n][field] = v, creating nodes[n] (numbered from 0) as needed. */
static void set_node (void *ud, int node, int64_t v) {
  nodeset *s = (nodeset *)ud;
  lua_State *L = s->L;
  lua_rawgeti(L, s->nodes, node);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, s->nodes, node);
  }
  mp_pushint(L, v);
  lua_setfield(L, -2, s->field);
  lua_pop(L, 1);
}

static int valid_name (const char *s, size_t n) {
  if (n == 0 || n > 255 || strlen(s) != n || strchr(s, '/') != NULL)
    return 0;
  return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int cmpstr (const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* What collect_aliases reads and reports back. */
typedef struct aliases {
  DIR *d;
  const char *dir, *target;
  int n;
} aliases;

/* Pushes a table of the entries of a->d linking to a->target. Runs under
** lua_pcall: an allocation failure must not skip the closedir. */
static int collect_aliases (lua_State *L) {
  aliases *a = (aliases *)lua_touserdata(L, 1);
  struct dirent *de;
  char path[MP_PATHMAX], link[MP_PATHMAX];
  lua_newtable(L);
  while ((de = readdir(a->d)) != NULL) {
    ssize_t m;
    const char *base;
    if (de->d_name[0] == '.')
      continue;
    if (snprintf(path, sizeof(path), "%s/%s", a->dir, de->d_name) >=
        (int)sizeof(path))
      continue;
    if ((m = readlink(path, link, sizeof(link) - 1)) < 0)
      continue;  /* a directory: a cache under its own name */
    link[m] = '\0';
    base = strrchr(link, '/');
    base = base ? base + 1 : link;
    if (strcmp(base, a->target) == 0) {
      lua_pushstring(L, de->d_name);
      lua_rawseti(L, -2, ++a->n);
    }
  }
  return 1;
}

/*
** Pushes the sorted list of every entry of dir that is, or links to,
** 'target' (the directory a merged cache's name resolves to): the names
** the caches merged into it were created with. Returns an errno value,
** 0 on success, with nothing pushed on failure; raises (after closing
** the directory) when memory runs out.
*/
static int push_aliases (lua_State *L, const char *dir, const char *target) {
  aliases a;
  int n, i, status;
  lua_pushcfunction(L, collect_aliases);  /* before opendir: may raise */
  if ((a.d = opendir(dir)) == NULL) {
    int err = errno;
    lua_pop(L, 1);
    return err;
  }
  a.dir = dir;
  a.target = target;
  a.n = 0;
  lua_pushlightuserdata(L, &a);
  status = lua_pcall(L, 1, 1, 0);
  closedir(a.d);
  if (status != 0)
    return lua_error(L);
  n = a.n;
  /* readdir order is arbitrary: sort through a C array of the strings */
  if (n > 1) {
    const char **v = (const char **)mp_newuserdata(L, (size_t)n *
                                                   sizeof(char *));
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, -2, i);
      v[i - 1] = lua_tostring(L, -1);
      lua_pop(L, 1);  /* still referenced by the table */
    }
    qsort(v, (size_t)n, sizeof(char *), cmpstr);
    lua_newtable(L);
    for (i = 0; i < n; i++) {
      lua_pushstring(L, v[i]);
      lua_rawseti(L, -2, i + 1);
    }
    lua_replace(L, -3);
    lua_pop(L, 1);
  }
  return 0;
}

/*
** slab_detail(name): the numbers of /sys/kernel/slab/<name>. Under SLUB
** caches of the same geometry are merged: the name is then a symlink to
** a directory like ":a-0000104", and 'alias_names' lists every name
** merged there (the one /proc/slabinfo shows is the first created).
*/
/***
One cache's numbers from /sys/kernel/slab/<name>: `object_size slab_size
order objs_per_slab aliases align objects total_objects slabs partial
cpu_slabs ...` as numbers, `size` (slabs * page size << order), `nodes`
(per NUMA node, numbered from 0: `objects total_objects slabs partial
cpu_slabs`). SLUB merges caches of one geometry: `merged` tells whether
`name` is such an alias, `target` is the directory it resolves to, and
`alias_names` lists every name merged there, so that a module's cache
counted under another name in /proc/slabinfo can be found.
@function slab_detail
@tparam string name a cache name (no '/', not '.' or '..')
@treturn table the numbers, or nil, message, errno
*/
MP_READER(l_slab_detail) {
  mp_ctx *c = memprobe_ctx(L);
  size_t nlen;
  const char *name = luaL_checklstring(L, 1, &nlen);
  char rel[MP_PATHMAX], dir[MP_PATHMAX], link[MP_PATHMAX];
  const char *target = name;
  int i, t, nodes, err, found = 0;
  ssize_t m;
  luaL_argcheck(L, valid_name(name, nlen), 1,
                "not a cache name (no '/', '.' or '..')");
  lua_settop(L, 1);
  lua_newtable(L);
  t = lua_gettop(L);
  lua_newtable(L);
  nodes = lua_gettop(L);
  lua_pushvalue(L, 1);
  lua_setfield(L, t, "name");
  for (i = 0; numeric[i] != NULL; i++) {
    const char *data;
    size_t len;
    int64_t v;
    nodeset ns;
    snprintf(rel, sizeof(rel), "kernel/slab/%s/%s", name, numeric[i]);
    err = memprobe_read_nocache(c, MP_SYS, rel, &data, &len);
    if (err == ENOENT && found)
      continue;  /* a file this kernel does not have */
    if (err != 0) {
      if (err == ENOENT)
        snprintf(rel, sizeof(rel), "kernel/slab/%s", name);
      return memprobe_fail(L, c, MP_SYS, rel, err);
    }
    found = 1;
    ns.L = L;
    ns.nodes = nodes;
    ns.field = numeric[i];
    if (memprobe_parse_nodecounts(data, len, &v,
                                  has_nodes(numeric[i]) ? set_node : NULL,
                                  &ns)) {
      mp_pushint(L, v);
      lua_setfield(L, t, numeric[i]);
    }
  }
  lua_pushvalue(L, nodes);
  lua_setfield(L, t, "nodes");
  lua_getfield(L, t, "slabs");
  lua_getfield(L, t, "order");
  if (lua_isnumber(L, -1) && lua_isnumber(L, -2)) {
    lua_Number slabs = lua_tonumber(L, -2), order = lua_tonumber(L, -1);
    if (order >= 0 && order < 20 && slabs >= 0 &&
        slabs <= (lua_Number)MP_BYTES_MAX) {
      mp_pushint(L, memprobe_bytes((int64_t)slabs,
                                   (int64_t)c->pagesize << (int)order));
      lua_setfield(L, t, "size");
    }
  }
  lua_pop(L, 2);
  snprintf(dir, sizeof(dir), "%s/kernel/slab", c->root[MP_SYS]);
  if (snprintf(rel, sizeof(rel), "%s/%s", dir, name) >= (int)sizeof(rel))
    m = -1;
  else if ((m = readlink(rel, link, sizeof(link) - 1)) >= 0) {
    const char *base;
    link[m] = '\0';
    base = strrchr(link, '/');
    target = base ? base + 1 : link;
  }
  lua_pushstring(L, target);
  lua_setfield(L, t, "target");
  lua_pushboolean(L, m >= 0);
  lua_setfield(L, t, "merged");
  if (push_aliases(L, dir, target) == 0)
    lua_setfield(L, t, "alias_names");
  lua_settop(L, t);
  return 1;
}

void memprobe_open_slab (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "slab_detail", l_slab_detail },
    { "slabinfo",    l_slabinfo },
    { NULL, NULL }
  };
  (void)c;
  memprobe_register(L, funcs);
}
