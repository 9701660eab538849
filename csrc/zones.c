/*
** zones.c: the kernel's view per NUMA node and zone: /proc/zoneinfo,
** /proc/buddyinfo and /sys/devices/system/node. The parsers come first
** and use no Lua, so that the fuzz targets run the very code the
** bindings below them run.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <stdio.h>
#include <string.h>


#define MP_MAXNODES   (1 << 16)  /* ids a range list may expand to */
#define MP_MAXID      (1 << 24)  /* no node or cpu id is this large */
#define MP_MAXORDERS  64         /* buddyinfo columns kept per zone */
#define MP_MAXPROT    16         /* protection: entries kept per zone */


/* Does [p, eol) start with the word w (followed by a blank, ':' or eol)? */
static int word (const char *p, const char *eol, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(eol - p) < n || memcmp(p, w, n) != 0)
    return 0;
  return p + n == eol || p[n] == ' ' || p[n] == '\t' || p[n] == ':';
}

/*
** "Node N, zone NAME" (zoneinfo and buddyinfo). Returns the first
** character after NAME, or NULL when the line is something else.
*/
static const char *zone_header (const char *p, const char *eol,
                                int64_t *node, const char **name,
                                size_t *nlen) {
  const char *q;
  if (!word(p, eol, "Node"))
    return NULL;
  p = memprobe_int64(memprobe_skipspace(p + 4, eol), eol, node);
  if (p == NULL || *node < 0)
    return NULL;
  if (p < eol && *p == ',')
    p++;
  p = memprobe_skipspace(p, eol);
  if (!word(p, eol, "zone"))
    return NULL;
  p = memprobe_skipspace(p + 4, eol);
  for (q = p; q < eol && *q != ' ' && *q != '\t'; q++)
    ;
  if (q == p || q - p > 32)
    return NULL;
  *name = p;
  *nlen = (size_t)(q - p);
  return q;
}

/* "(a, b, c)" after "protection:"; one MP_ZI_PROT event per number. */
static void protection (const char *p, const char *eol, mp_event_cb cb,
                        void *ud) {
  int i;
  p = memprobe_skipspace(p, eol);
  if (p == eol || *p != '(')
    return;
  p++;
  for (i = 0; i < MP_MAXPROT; i++) {
    int64_t v;
    p = memprobe_int64(memprobe_skipspace(p, eol), eol, &v);
    if (p == NULL)
      return;
    cb(ud, MP_ZI_PROT, "protection", 10, v);
    p = memprobe_skipspace(p, eol);
    if (p == eol || *p != ',')
      return;
    p++;
  }
}

/*
** "key value" or "key: value" with nothing after the number. Returns 1
** and the key's extent when the line is one.
*/
static int pair (const char *p, const char *eol, const char **key,
                 size_t *klen, int64_t *v) {
  const char *k = p;
  while (p < eol && *p != ' ' && *p != '\t' && *p != ':')
    p++;
  if (p == k || p - k > 64)
    return 0;
  *key = k;
  *klen = (size_t)(p - k);
  if (p < eol && *p == ':')
    p++;
  p = memprobe_int64(memprobe_skipspace(p, eol), eol, v);
  return p != NULL && memprobe_skipspace(p, eol) == eol;
}

enum { SEC_NONE, SEC_NODE, SEC_ZONE, SEC_PAGESETS };

/*
** /proc/zoneinfo, every layout since 2.6: a zone starts at an unindented
** "Node N, zone NAME" line; "per-node stats" (4.8+) opens a block of the
** node's counters that ends at "pages free"; "pagesets" opens per-cpu
** lines (whose "high:" would shadow the zone's watermark) that end at the
** next two-space line other than "vm stats threshold". Everything else
** of the form "key [:] number" is a field of the zone, wherever the
** kernel version put it. Returns the number of zones.
*/
int memprobe_parse_zoneinfo (const char *s, size_t len, mp_event_cb cb,
                             void *ud) {
  const char *end = s + len;
  int sec = SEC_NONE, n = 0;
  while (s < end) {
    const char *eol, *next = memprobe_line(s, end, &eol);
    const char *p = memprobe_skipspace(s, eol), *key, *name;
    size_t indent = (size_t)(p - s), klen;
    int64_t v;
    s = next;
    if (indent == 0) {
      if (zone_header(p, eol, &v, &name, &klen) != NULL) {
        cb(ud, MP_ZI_ZONE, name, klen, v);
        sec = SEC_ZONE;
        n++;
      }
      else
        sec = SEC_NONE;  /* not ours: ignore what hangs below it */
      continue;
    }
    if (sec == SEC_NONE)
      continue;
    if (sec == SEC_PAGESETS) {
      if (indent > 2 || word(p, eol, "vm"))
        continue;
      sec = SEC_ZONE;
    }
    if (word(p, eol, "per-node")) {
      sec = SEC_NODE;
      continue;
    }
    if (word(p, eol, "pagesets")) {
      sec = SEC_PAGESETS;
      continue;
    }
    if (word(p, eol, "pages")) {  /* "pages free N" */
      sec = SEC_ZONE;
      p = memprobe_skipspace(p + 5, eol);
    }
    if (word(p, eol, "protection")) {
      p += 10;
      if (p < eol && *p == ':')
        p++;
      protection(p, eol, cb, ud);
      continue;
    }
    if (pair(p, eol, &key, &klen, &v))
      cb(ud, sec == SEC_NODE ? MP_ZI_NODESTAT : MP_ZI_FIELD, key, klen, v);
  }
  return n;
}

/*
** /proc/buddyinfo: "Node N, zone NAME c0 c1 ... c10", one count of free
** blocks per order. Reports MP_ZI_ZONE, then MP_BI_ORDER per column.
** Returns the number of zones.
*/
int memprobe_parse_buddyinfo (const char *s, size_t len, mp_event_cb cb,
                              void *ud) {
  const char *end = s + len;
  int n = 0;
  while (s < end) {
    const char *eol, *next = memprobe_line(s, end, &eol), *name, *p;
    size_t nlen;
    int64_t node, v;
    int i;
    p = zone_header(s, eol, &node, &name, &nlen);
    s = next;
    if (p == NULL)
      continue;
    cb(ud, MP_ZI_ZONE, name, nlen, node);
    n++;
    for (i = 0; i < MP_MAXORDERS; i++) {
      p = memprobe_int64(memprobe_skipspace(p, eol), eol, &v);
      if (p == NULL)
        break;
      cb(ud, MP_BI_ORDER, NULL, 0, v);
    }
  }
  return n;
}

/*
** The kernel's range lists ("0", "0-1,3", "" for none) as in
** /sys/devices/system/node/online and nodeN/cpulist. Returns the number
** of ids reported, or -1 when the text is not a range list or would
** expand to more than MP_MAXNODES ids or hold one of MP_MAXID or more.
*/
int memprobe_parse_rangelist (const char *s, size_t len, mp_int_cb cb,
                              void *ud) {
  const char *eol, *p;
  int n = 0;
  memprobe_line(s, s + len, &eol);
  p = memprobe_skipspace(s, eol);
  if (p == eol)
    return 0;
  for (;;) {
    int64_t a, b, i;
    p = memprobe_int64(p, eol, &a);
    if (p == NULL || a < 0)
      return -1;
    b = a;
    if (p < eol && *p == '-') {
      p = memprobe_int64(p + 1, eol, &b);
      if (p == NULL || b < a)
        return -1;
    }
    if (b >= MP_MAXID || b - a >= MP_MAXNODES - n)
      return -1;
    for (i = a; i <= b; i++)
      cb(ud, i);
    n += (int)(b - a + 1);
    if (p < eol && *p == ',') {
      p++;
      continue;
    }
    return memprobe_skipspace(p, eol) == eol ? n : -1;
  }
}

/* Blank-separated integers on the first line ("10 21", nodeN/distance).
** Returns their number, or -1 on anything else. */
int memprobe_parse_intlist (const char *s, size_t len, mp_int_cb cb,
                            void *ud) {
  const char *eol, *p;
  int n = 0;
  memprobe_line(s, s + len, &eol);
  p = memprobe_skipspace(s, eol);
  while (p < eol) {
    int64_t v;
    if (n >= MP_MAXNODES || (p = memprobe_int64(p, eol, &v)) == NULL)
      return -1;
    if (p < eol && *p != ' ' && *p != '\t')
      return -1;
    cb(ud, v);
    n++;
    p = memprobe_skipspace(p, eol);
  }
  return n;
}

/* nodeN/meminfo is meminfo with "Node N " before every key. */
typedef struct strip { mp_kv_cb cb; void *ud; } strip;

static void strip_node (void *ud, const char *key, size_t klen, int64_t v,
                        int kb) {
  strip *st = (strip *)ud;
  const char *p = key, *end = key + klen;
  if (word(p, end, "Node")) {
    p = memprobe_skipspace(p + 4, end);
    while (p < end && *p >= '0' && *p <= '9')
      p++;
    p = memprobe_skipspace(p, end);
  }
  if (p < end)
    st->cb(st->ud, p, (size_t)(end - p), v, kb);
}

int memprobe_parse_nodememinfo (const char *s, size_t len, mp_kv_cb cb,
                                void *ud) {
  strip st;
  st.cb = cb;
  st.ud = ud;
  return memprobe_parse_kv(s, len, strip_node, &st);
}


/* ---------------------------------------------------------------------
** Lua bindings
** --------------------------------------------------------------------- */

/* v * pagesize, or nothing when it would not be exact. */
static void set_bytes (lua_State *L, int t, const char *k, int64_t v,
                       int64_t pagesize) {
  if (v >= 0 && pagesize > 0 && v <= INT64_MAX / pagesize) {
    mp_pushint(L, v * pagesize);
    lua_setfield(L, t, k);
  }
}

/* The zone's field k as an int64, if it is a number. */
static int get_int (lua_State *L, int t, const char *k, int64_t *v) {
  int ok;
  lua_getfield(L, t, k);
  ok = lua_type(L, -1) == LUA_TNUMBER;
  if (ok) {
    lua_Number d = lua_tonumber(L, -1);
    ok = d >= -9.0e18 && d <= 9.0e18;  /* a conversion without UB */
    *v = ok ? (int64_t)d : 0;
  }
  lua_pop(L, 1);
  return ok;
}

/*
** Zoneinfo callback state. The stack holds, from 'list': the result
** list, the current zone and the node's per-node stats table (or nil),
** which is shared by every zone of that node.
*/
typedef struct zstate {
  lua_State *L;
  int list;
  int n;
  int64_t node;    /* of the current zone */
  int64_t nsnode;  /* of the stats table at list + 2 */
  int nprot;
} zstate;

static void zone_event (void *ud, int kind, const char *key, size_t klen,
                        int64_t v) {
  zstate *z = (zstate *)ud;
  lua_State *L = z->L;
  int zone = z->list + 1, stats = z->list + 2;
  switch (kind) {
    case MP_ZI_ZONE:
      lua_createtable(L, 0, 48);
      mp_pushint(L, v);
      lua_setfield(L, -2, "node");
      lua_pushlstring(L, key, klen);
      lua_setfield(L, -2, "zone");
      if (!lua_isnil(L, stats) && z->nsnode == v) {
        lua_pushvalue(L, stats);
        lua_setfield(L, -2, "node_stats");
      }
      else {
        lua_pushnil(L);
        lua_replace(L, stats);
      }
      lua_pushvalue(L, -1);
      lua_rawseti(L, z->list, ++z->n);
      lua_replace(L, zone);
      z->node = v;
      z->nprot = 0;
      break;
    case MP_ZI_NODESTAT:
      if (lua_isnil(L, stats) || z->nsnode != z->node) {
        lua_createtable(L, 0, 64);
        lua_pushvalue(L, -1);
        lua_setfield(L, zone, "node_stats");
        lua_replace(L, stats);
        z->nsnode = z->node;
      }
      lua_pushlstring(L, key, klen);
      mp_pushint(L, v);
      lua_rawset(L, stats);
      break;
    case MP_ZI_PROT:
      lua_getfield(L, zone, "protection");
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 8, 0);
        lua_pushvalue(L, -1);
        lua_setfield(L, zone, "protection");
      }
      mp_pushint(L, v);
      lua_rawseti(L, -2, ++z->nprot);
      lua_pop(L, 1);
      break;
    default:  /* MP_ZI_FIELD */
      lua_pushlstring(L, key, klen);
      mp_pushint(L, v);
      lua_rawset(L, zone);
      break;
  }
}

/*
** The kernel prints a node's stats inside its first populated zone, so
** the empty zones before it (DMA and DMA32 of a second node) have not
** seen them: hand every zone the table of its node. List at 1.
*/
static void share_stats (lua_State *L, int n) {
  int i, pass;
  lua_newtable(L);  /* 2: node -> stats */
  for (pass = 0; pass < 2; pass++)
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, 1, i);            /* 3: zone */
      lua_getfield(L, 3, "node");      /* 4 */
      lua_getfield(L, 3, "node_stats");
      if (pass == 0 && !lua_isnil(L, 5)) {
        lua_pushvalue(L, 4);
        lua_rawget(L, 2);
        if (lua_isnil(L, -1)) {
          lua_pushvalue(L, 4);
          lua_pushvalue(L, 5);
          lua_rawset(L, 2);
        }
      }
      else if (pass == 1 && lua_isnil(L, 5)) {
        lua_pushvalue(L, 4);
        lua_rawget(L, 2);
        lua_setfield(L, 3, "node_stats");
      }
      lua_settop(L, 2);
    }
  lua_settop(L, 1);
}

/* The page counts worth having in bytes too, as <name>_bytes. */
static const char *const zone_pages[] = {
  "free", "min", "low", "high", "present", "managed", NULL
};

/***
zoneinfo(): a list of zones in file order, each with node, zone, the
page counts verbatim (free, min, low, high, spanned, present, managed,
nr_* ...), <count>_bytes for the ones in zone_pages, protection (a
list, in pages), populated (present > 0) and node_stats, the node's
counters, one table shared by the zones of a node (4.8+).
@function zoneinfo
@treturn table the list of zones, or nil, message, errno
*/
MP_READER(l_zoneinfo) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len;
  zstate z;
  int i, err;
  memprobe_noargs(L);
  lua_settop(L, 0);
  if ((err = memprobe_read(c, MP_PROC, "zoneinfo", &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, "zoneinfo", err);
  lua_newtable(L);
  lua_pushnil(L);
  lua_pushnil(L);
  memset(&z, 0, sizeof(z));
  z.L = L;
  z.list = 1;
  memprobe_parse_zoneinfo(data, len, zone_event, &z);
  lua_settop(L, 1);
  share_stats(L, z.n);
  for (i = 1; i <= z.n; i++) {
    const char *const *k;
    int64_t v;
    lua_rawgeti(L, 1, i);
    for (k = zone_pages; *k != NULL; k++)
      if (get_int(L, 2, *k, &v)) {
        lua_pushfstring(L, "%s_bytes", *k);
        set_bytes(L, 2, lua_tostring(L, -1), v, c->pagesize);
        lua_pop(L, 1);
      }
    if (get_int(L, 2, "present", &v)) {
      lua_pushboolean(L, v > 0);
      lua_setfield(L, 2, "populated");
    }
    lua_pop(L, 1);
  }
  return 1;
}

/* Buddyinfo state: list at 'list', the zone and its counts above it. */
typedef struct bstate {
  lua_State *L;
  int list;
  int n;
  int order;
  int64_t pages;
  int overflow;
  int64_t pagesize;
} bstate;

static void buddy_finish (bstate *b) {
  lua_State *L = b->L;
  int zone = b->list + 1;
  if (b->n == 0)
    return;
  if (!b->overflow) {
    mp_pushint(L, b->pages);
    lua_setfield(L, zone, "free_pages");
    set_bytes(L, zone, "free_bytes", b->pages, b->pagesize);
  }
}

static void buddy_event (void *ud, int kind, const char *key, size_t klen,
                         int64_t v) {
  bstate *b = (bstate *)ud;
  lua_State *L = b->L;
  if (kind == MP_ZI_ZONE) {
    buddy_finish(b);
    lua_settop(L, b->list);
    lua_createtable(L, 0, 6);
    mp_pushint(L, v);
    lua_setfield(L, -2, "node");
    lua_pushlstring(L, key, klen);
    lua_setfield(L, -2, "zone");
    lua_createtable(L, 11, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "counts");
    lua_pushvalue(L, -2);
    lua_rawseti(L, b->list, ++b->n);
    b->order = 0;
    b->pages = 0;
    b->overflow = 0;
    return;
  }
  /* MP_BI_ORDER: v free blocks of 2^order pages each */
  mp_pushint(L, v);
  lua_rawseti(L, b->list + 2, b->order + 1);
  if (v < 0 || b->order >= 62 || v > (INT64_MAX >> b->order) ||
      (v << b->order) > INT64_MAX - b->pages)
    b->overflow = 1;
  else
    b->pages += v << b->order;
  b->order++;
}

/***
buddyinfo(): a list of { node, zone, counts, free_pages, free_bytes };
counts[k + 1] is the number of free blocks of order k (2^k pages).
@function buddyinfo
@treturn table the list of zones with their free blocks, or nil, message, errno
*/
MP_READER(l_buddyinfo) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len;
  bstate b;
  int err;
  memprobe_noargs(L);
  lua_settop(L, 0);
  if ((err = memprobe_read(c, MP_PROC, "buddyinfo", &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, "buddyinfo", err);
  lua_newtable(L);
  memset(&b, 0, sizeof(b));
  b.L = L;
  b.list = 1;
  b.pagesize = c->pagesize;
  memprobe_parse_buddyinfo(data, len, buddy_event, &b);
  buddy_finish(&b);
  lua_settop(L, 1);
  return 1;
}

/* Appends integers to the table on top of the stack. */
typedef struct appender { lua_State *L; int n; } appender;

static void append_int (void *ud, int64_t v) {
  appender *a = (appender *)ud;
  mp_pushint(a->L, v);
  lua_rawseti(a->L, -2, ++a->n);
}

typedef struct setter { lua_State *L; int t; } setter;

static void set_field (void *ud, const char *key, size_t klen, int64_t v,
                       int kb) {
  setter *s = (setter *)ud;
  lua_pushlstring(s->L, key, klen);
  mp_pushint(s->L, memprobe_bytes(v, kb ? 1024 : 1));
  lua_rawset(s->L, s->t);
}

#define NODEDIR  "devices/system/node/"

/*
** Reads a node list file under /sys/devices/system/node into a new list
** on the stack. Returns 0, an errno, or -1 when the text does not parse.
*/
static int node_list (lua_State *L, mp_ctx *c, const char *rel) {
  const char *data;
  size_t len;
  appender a;
  int err;
  if ((err = memprobe_read_nocache(c, MP_SYS, rel, &data, &len)) != 0)
    return err;
  lua_newtable(L);
  a.L = L;
  a.n = 0;
  if (memprobe_parse_rangelist(data, len, append_int, &a) < 0) {
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* Sets t[field] to the table parser p makes of node 'id's file 'name';
** leaves it nil when the file is missing or does not parse. */
static void node_file (lua_State *L, mp_ctx *c, int t, int64_t id,
                       const char *name, const char *field, int kind) {
  char rel[96];
  const char *data;
  size_t len;
  int ok = 1;
  snprintf(rel, sizeof(rel), NODEDIR "node%ld/%s", (long)id, name);
  if (memprobe_read_nocache(c, MP_SYS, rel, &data, &len) != 0)
    return;
  lua_newtable(L);
  if (kind == 'm' || kind == 'p') {
    setter s;
    s.L = L;
    s.t = lua_gettop(L);
    if (kind == 'm')
      memprobe_parse_nodememinfo(data, len, set_field, &s);
    else
      memprobe_parse_pairs(data, len, set_field, &s);
  }
  else {
    appender a;
    a.L = L;
    a.n = 0;
    ok = (kind == 'r' ? memprobe_parse_rangelist(data, len, append_int, &a)
                      : memprobe_parse_intlist(data, len, append_int, &a))
         >= 0;
  }
  if (ok)
    lua_setfield(L, t, field);
  else
    lua_pop(L, 1);
}

/***
numa(): { online = {ids}, possible = {ids}, nodes = { {node, meminfo,
numastat, vmstat, distance, cpus}, ... } } with one entry per online
node, in order. meminfo has the keys of /proc/meminfo (kB as bytes);
a file the node does not have leaves its field nil.
@function numa
@treturn table the nodes, or nil, message, errno
*/
MP_READER(l_numa) {
  mp_ctx *c = memprobe_ctx(L);
  int err, i, n;
  memprobe_noargs(L);
  lua_settop(L, 0);
  lua_createtable(L, 0, 3);
  if ((err = node_list(L, c, NODEDIR "online")) != 0) {
    if (err > 0)
      return memprobe_fail(L, c, MP_SYS, NODEDIR "online", err);
    return memprobe_result(L, 0, "%s/" NODEDIR "online: not a node list",
                           c->root[MP_SYS]);
  }
  lua_setfield(L, 1, "online");
  if (node_list(L, c, NODEDIR "possible") == 0)
    lua_setfield(L, 1, "possible");
  lua_getfield(L, 1, "online");      /* 2 */
  n = (int)mp_rawlen(L, 2);
  lua_createtable(L, n, 0);          /* 3: nodes */
  for (i = 1; i <= n; i++) {
    int64_t id;
    lua_rawgeti(L, 2, i);
    id = (int64_t)lua_tonumber(L, -1);  /* < MP_MAXID: exact */
    lua_pop(L, 1);
    lua_createtable(L, 0, 6);        /* 4 */
    mp_pushint(L, id);
    lua_setfield(L, 4, "node");
    node_file(L, c, 4, id, "meminfo", "meminfo", 'm');
    node_file(L, c, 4, id, "numastat", "numastat", 'p');
    node_file(L, c, 4, id, "vmstat", "vmstat", 'p');
    node_file(L, c, 4, id, "distance", "distance", 'i');
    node_file(L, c, 4, id, "cpulist", "cpus", 'r');
    lua_rawseti(L, 3, i);
  }
  lua_setfield(L, 1, "nodes");
  lua_settop(L, 1);
  return 1;
}

void memprobe_open_zones (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "buddyinfo", l_buddyinfo },
    { "numa",      l_numa },
    { "zoneinfo",  l_zoneinfo },
    { NULL, NULL }
  };
  (void)c;
  memprobe_register(L, funcs);
}
