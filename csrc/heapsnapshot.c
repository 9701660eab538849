/*
** heapsnapshot.c: a finished snapshot written as a V8 .heapsnapshot file
** (the JSON that Chrome DevTools and memlab read), as a job that runs in
** budgeted slices ("memprobe.HeapSnapshotWriter"), streamed through a
** fixed buffer: what it holds does not grow with the heap but for the
** edge index below (4 bytes per record).
**
** heap_writer(snap, path) opens the file and starts the job; w:step([ms])
** writes on and says true when the file is complete and closed, or
** returns nil, "path: message", errno when a write failed (a full disk:
** the file is then partial). Its phases:
**   INDEX    the edges of each record, as an index of its children in
**            the tree of first referrers (a count, a prefix sum, a fill:
**            a unit per record each);
**   NODES    the header, the synthetic root, then a node per record:
**            type, name, id, self_size, edge_count, trace_node_id,
**            detachedness;
**   EDGES    the root's edges (to every root), then each record's;
**   RELEASE  the index given back, RELEASE bytes a unit;
**   STRINGS  the fixed names, the snapshot's interned edge names, then a
**            name per record made from its path (heapsnapshot_path), in
**            record order: a node's name is string FIXED + nnames + r,
**            known before the string is written, so no string is kept;
**   TAIL     the end of the JSON, and the file closed (its error seen).
** The snapshot is kept in the writer's uservalue; it must stay open.
*/

/***
@submodule memprobe
*/
#include "internal.h"
#include "heap.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WRITER_MT "memprobe.HeapSnapshotWriter"
#define OUTBUF    65536     /* bytes written to the file at a time */
#define ROOM      4096      /* room a unit may need in the buffer */
#define CHECK     256       /* units between two clock reads */
#define MAXDEPTH  256       /* edges of a path kept, from the object up */
#define RELEASE   65536     /* bytes of the index a unit gives back, the
                               clock read after each: a munmap cost 15 us
                               whatever its size up to 16 KiB, and 256 of
                               them 4 ms between two reads */
#define NODE_FIELDS 7

enum { W_COUNT, W_SUM, W_FILL, W_HEAD, W_NODES, W_ROOTEDGES, W_EDGES,
       W_RELEASE, W_FIXED, W_NAMES, W_NODENAMES, W_TAIL, W_DONE, W_FAILED };

/* V8's node types and edge types, in the order the header lists them. */
enum { N_HIDDEN, N_ARRAY, N_STRING, N_OBJECT, N_CODE, N_CLOSURE, N_REGEXP,
       N_NUMBER, N_NATIVE, N_SYNTHETIC };
enum { V_CONTEXT, V_ELEMENT, V_PROPERTY, V_INTERNAL, V_HIDDEN, V_SHORTCUT,
       V_WEAK };

/* The strings before the snapshot's own: the root's name, the names of
** the edges that have no name of their own (by E_*), the placeholders. */
enum { S_EMPTY, S_ROOT, S_METATABLE, S_ENV, S_KEY, S_PROTO, S_NUMKEY,
       S_IGNORED, S_OBJKEY, FIXED = S_OBJKEY + T_NTYPES };

static const char *const tnames[T_NTYPES] = {
  "nil", "boolean", "lightuserdata", "number", "string", "table",
  "function", "userdata", "thread", "proto", "cdata", "proto", "upvalue"
};

/* The names of the edges from an object key, by its type. */
static const char *const okeys[T_NTYPES] = {
  "[<nil>]", "[<boolean>]", "[<lightuserdata>]", "[<number>]", "[<string>]",
  "[<table>]", "[<function>]", "[<userdata>]", "[<thread>]", "[<proto>]",
  "[<cdata>]", "[<proto>]", "[<upvalue>]"
};

/* V8 node type by record type */
static const unsigned char ntype[T_NTYPES] = {
  N_HIDDEN, N_HIDDEN, N_HIDDEN, N_NUMBER, N_STRING, N_OBJECT, N_CLOSURE,
  N_NATIVE, N_OBJECT, N_CODE, N_NATIVE, N_CODE, N_HIDDEN
};

typedef struct writer {
  mp_book book;
  int fd;                   /* -1 once closed */
  int phase, err, closed;
  int first;                /* the next item is its array's first */
  int pdone;                /* W_EDGES: the record's prototype edge is out */
  int logged;               /* the snapshot recorded every edge: read from
                               its log (heap.h), no index of our own */
  uint32_t n;               /* records of the snapshot, when started */
  uint32_t nnames;          /* its interned names, when started */
  uint32_t at;              /* the phase's next record or string */
  uint32_t k, kend;         /* W_EDGES: the record's next edge (a child, or
                               a log position) and its end */
  uint32_t nroots;          /* records the synthetic root points to */
  uint32_t nkids;           /* records with a referrer in the tree */
  double nedges;            /* edges in all */
  /* the tree's children: record r's are kids[pos[r] .. pos[r + 1]) once
  ** filled (the last record's end is nkids) */
  uint32_t *pos, *kids;
  size_t possize, kidsize;  /* their mapped bytes still held */
  double bytes;             /* written to the file so far */
  double units;             /* done so far, for progress() */
  size_t used;              /* bytes waiting in buf */
  char path[MP_PATHMAX];
  char buf[OUTBUF + ROOM];
} writer;


/*
** {======================================================
** Output: a buffer that goes to the file when full, JSON text in it
** =======================================================
*/

static int write_all (int fd, const char *p, size_t len) {
  while (len > 0) {
    ssize_t k = write(fd, p, len);
    if (k < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += k;
    len -= (size_t)k;
  }
  return 0;
}

/* Writes out what waits in the buffer; 0 or an errno value (kept). */
static int flush (writer *w) {
  if (w->err == 0 && w->used > 0) {
    w->err = write_all(w->fd, w->buf, w->used);
    w->bytes += (double)w->used;
  }
  w->used = 0;
  return w->err;
}

/* Every unit checks for ROOM bytes first: no single put overruns. */
static int room (writer *w) {
  return w->used < OUTBUF || flush(w) == 0;
}

static void put (writer *w, const char *p, size_t len) {
  memcpy(w->buf + w->used, p, len);
  w->used += len;
}
#define PUTS(w, lit)  put((w), (lit), sizeof(lit) - 1)

static void putnum (writer *w, double v) {
  char tmp[24];
  int k = 0;
  uint64_t x;
  if (!(v > 0)) { w->buf[w->used++] = '0'; return; }
  x = v < 18446744073709549568.0 ? (uint64_t)v : 18446744073709549568u;
  while (x > 0) { tmp[k++] = (char)('0' + x % 10); x /= 10; }
  while (k > 0) w->buf[w->used++] = tmp[--k];
}

/* "a,b,c," for the numbers of a row, comma after each but the last
** row's last (first: the array's first row, without a comma before). */
static void putrow (writer *w, const double *v, int n, int first) {
  int i;
  if (!first) w->buf[w->used++] = ',';
  for (i = 0; i < n; i++) {
    if (i > 0) w->buf[w->used++] = ',';
    putnum(w, v[i]);
  }
}

/* Length of the UTF-8 sequence at p (of at most n bytes), or 0 when it
** is not a valid one: the JSON must be UTF-8, Lua strings need not be. */
static size_t utf8len (const unsigned char *p, size_t n) {
  size_t k, i;
  unsigned c = p[0];
  if (c < 0xc2 || c > 0xf4) return 0;
  k = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
  if (k > n) return 0;
  for (i = 1; i < k; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
      (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
    return 0;
  return k;
}

/* A JSON string of s[0..len): quotes, backslashes and control bytes
** escaped, and a byte that is not part of valid UTF-8 as the code point
** of that value (Latin-1). At most 6 * len + 2 bytes. */
static void putstr (writer *w, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0, k;
  char *o = w->buf + w->used;
  *o++ = '"';
  while (i < len) {
    unsigned c = p[i];
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') { *o++ = (char)c; i++; }
    else if (c == '"' || c == '\\') { *o++ = '\\'; *o++ = (char)c; i++; }
    else if (c >= 0x80 && (k = utf8len(p + i, len - i)) > 0) {
      memcpy(o, p + i, k);
      o += k;
      i += k;
    }
    else {
      memcpy(o, "\\u00", 4);
      o[4] = hex[c >> 4];
      o[5] = hex[c & 15];
      o += 6;
      i++;
    }
  }
  *o++ = '"';
  w->used = (size_t)(o - w->buf);
}

/* }====================================================== */


/*
** {======================================================
** Paths as text, into a buffer (the names of the nodes)
** =======================================================
*/

typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static void sadd (sbuf *b, const char *s, size_t len) {
  if (len > b->cap - b->n) len = b->cap - b->n;
  memcpy(b->p + b->n, s, len);
  b->n += len;
}
#define SADDS(b, lit)  sadd((b), (lit), sizeof(lit) - 1)

static void sint (sbuf *b, uint32_t v) {
  char tmp[16];
  int k = 0;
  do { tmp[k++] = (char)('0' + v % 10); v /= 10; } while (v > 0);
  while (k > 0 && b->n < b->cap) b->p[b->n++] = tmp[--k];
}

static int isname (const char *s) {
  const char *p = s;
  if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
    return 0;
  for (p++; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
          (*p >= '0' && *p <= '9') || *p == '_'))
      return 0;
  return 1;
}

static const char *const ekinds[] = {
  "root", "field", "index", "numkey", "objkey", "key", "metatable",
  "upvalue", "upvalue", "uservalue", "env", "local", "frame", "stack",
  "proto"
};

/* One edge of a path in Lua's syntax, as memprobe.heap joins them:
** "name", ".name", '["na me"]', "[3]", "[<number>]", "[<table>]",
** ":upvalue(x)", ":metatable" ... */
static void segment (sbuf *b, const snap *s, int edge, uint32_t name) {
  const char *k;
  switch (edge) {
    case E_ROOT:
      k = memprobe_name_of(s, name);
      sadd(b, k, strlen(k));
      return;
    case E_FIELD:
      k = memprobe_name_of(s, name);
      if (isname(k)) { SADDS(b, "."); sadd(b, k, strlen(k)); }
      else { SADDS(b, "[\""); sadd(b, k, strlen(k)); SADDS(b, "\"]"); }
      return;
    case E_INDEX: SADDS(b, "["); sint(b, name); SADDS(b, "]"); return;
    case E_NUMKEY: SADDS(b, "[<number>]"); return;
    case E_OBJKEY:
      SADDS(b, "[<");
      k = tnames[name < T_NTYPES ? name : 0];
      sadd(b, k, strlen(k));
      SADDS(b, ">]");
      return;
    default: break;
  }
  k = ekinds[edge <= E_PROTO ? edge : E_PROTO];
  SADDS(b, ":");
  sadd(b, k, strlen(k));
  switch (edge) {
    case E_UPVAL: case E_LOCAL:
      k = memprobe_name_of(s, name);
      SADDS(b, "(");
      sadd(b, k, strlen(k));
      SADDS(b, ")");
      break;
    case E_UPIDX: case E_UVALUE: case E_FRAME: case E_STACK:
      SADDS(b, "(");
      sint(b, name);
      SADDS(b, ")");
      break;
    default: break;
  }
}

/*
** The text of record r's shortest path (its chain of first referrers),
** as memprobe.heap's paths read, into buf (cap bytes, not terminated);
** returns its length. A prototype, which has no path, is "(proto
** source:line)"; a path longer than cap, or deeper than MAXDEPTH edges,
** shows the edges of its end that fit after "...".
*/
/* "(proto source:line)": a prototype's path, as memprobe_pushpath
** names it (its parent field holds its line, not a referrer). */
static void proto_text (sbuf *b, const snap *s, const hobj *o) {
  const char *src = memprobe_name_of(s, o->name);
  SADDS(b, "(proto ");
  sadd(b, src, strlen(src));
  SADDS(b, ":");
  sint(b, o->parent);
  SADDS(b, ")");
}

size_t memprobe_path_text (const snap *s, uint32_t r, char *buf, size_t cap) {
  uint32_t chain[MAXDEPTH], k = 0, keep, i;
  const hobj *top = NULL;   /* a prototype above the chain, if any */
  int cut = 0;              /* the chain stops short of its root */
  size_t total = 0;
  char seg[NAMEMAX + 32];
  sbuf b, t;
  b.p = buf;
  b.n = 0;
  b.cap = cap;
  if (REC(s, r)->type == T_PROTO) {
    proto_text(&b, s, REC(s, r));
    return b.n;
  }
  for (;;) {
    uint32_t p = REC(s, r)->parent;
    chain[k++] = r;
    if (p == 0 || p > s->obj.n) break;
    if (REC(s, p - 1)->type == T_PROTO) {  /* not a referrer: its line */
      top = REC(s, p - 1);
      break;
    }
    if (k == MAXDEPTH) { cut = 1; break; }
    r = p - 1;
  }
  /* the edges that fit, from the object up: a long path keeps its end */
  t.p = seg;
  t.cap = sizeof(seg);
  for (keep = 0; keep < k; keep++) {
    const hobj *o = REC(s, chain[keep]);
    t.n = 0;
    segment(&t, s, o->edge, o->name);
    if (cap < 3 || total + t.n > cap - 3) { cut = 1; top = NULL; break; }
    total += t.n;
  }
  if (top != NULL) proto_text(&b, s, top);
  else if (cut) SADDS(&b, "...");
  for (i = keep; i-- > 0;) {
    const hobj *o = REC(s, chain[i]);
    segment(&b, s, o->edge, o->name);
  }
  return b.n;
}

/* }====================================================== */


/*
** {======================================================
** The graph written: the tree of first referrers, plus each closure's
** prototype (a prototype's parent field holds its line instead)
** =======================================================
*/


/* The referrer of record r in the tree: its record + 1, or 0. */
static uint32_t tree_parent (const snap *s, uint32_t r) {
  const hobj *o = REC(s, r);
  return o->type == T_PROTO ? 0 : o->parent;
}

/* Record r's prototype + 1 (a Lua function's), else 0. */
static uint32_t proto_of (const snap *s, uint32_t r) {
  const hobj *o = REC(s, r);
  return o->type == LUA_TFUNCTION ? o->aux : 0;
}

static int isroot (const hobj *o) {
  return o->parent == 0 && (o->flags & F_ROOT) && o->type != T_PROTO;
}

static uint32_t kids_end (const writer *w, uint32_t r) {
  return r + 1 < w->n ? w->pos[r + 1] : w->nkids;
}

/* Record r's edges: those of its run in the snapshot's log, or its
** children in the tree and its prototype. */
static uint32_t edge_count (const writer *w, const snap *s, uint32_t r) {
  uint32_t first;
  if (w->logged) return memprobe_edges(s, r, &first);
  return kids_end(w, r) - w->pos[r] + (proto_of(s, r) ? 1 : 0);
}

/* The V8 edge type and name_or_index of an edge of kind E_* whose
** argument is nm (as hobj.name holds it). */
static void edge_of (int kind, uint32_t nm, double *type, double *name) {
  double named = nm ? (double)(FIXED + nm - 1) : (double)S_EMPTY;
  switch (kind) {
    case E_ROOT: case E_FIELD:
      *type = V_PROPERTY; *name = named; return;
    case E_UPVAL: case E_LOCAL:
      *type = V_CONTEXT; *name = named; return;
    case E_INDEX:
      *type = V_ELEMENT; *name = nm; return;
    case E_UPIDX: case E_UVALUE: case E_FRAME: case E_STACK:
      *type = V_HIDDEN; *name = nm; return;
    case E_MT: *type = V_INTERNAL; *name = S_METATABLE; return;
    case E_ENV: *type = V_INTERNAL; *name = S_ENV; return;
    case E_KEY: *type = V_INTERNAL; *name = S_KEY; return;
    case E_NUMKEY: *type = V_INTERNAL; *name = S_NUMKEY; return;
    case E_OBJKEY:
      *type = V_INTERNAL;
      *name = S_OBJKEY + (nm < T_NTYPES ? nm : 0);
      return;
    default: *type = V_INTERNAL; *name = S_PROTO; return;
  }
}

/* }====================================================== */


/*
** {======================================================
** The job
** =======================================================
*/

static void writer_free (writer *w) {
  if (w->closed) return;
  w->closed = 1;
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  memprobe_book_unmap(&w->book, w->pos, w->possize);
  memprobe_book_unmap(&w->book, w->kids, w->kidsize);
  w->pos = w->kids = NULL;
  w->possize = w->kidsize = 0;
}

static int writer_gc (lua_State *L) {
  writer_free((writer *)luaL_checkudata(L, 1, WRITER_MT));
  return 0;
}

static void head (writer *w) {
  double root[NODE_FIELDS] = { N_SYNTHETIC, S_ROOT, 1, 0, 0, 0, 0 };
  PUTS(w, "{\"snapshot\":{\"meta\":{"
    "\"node_fields\":[\"type\",\"name\",\"id\",\"self_size\",\"edge_count\","
    "\"trace_node_id\",\"detachedness\"],"
    "\"node_types\":[[\"hidden\",\"array\",\"string\",\"object\",\"code\","
    "\"closure\",\"regexp\",\"number\",\"native\",\"synthetic\","
    "\"concatenated string\",\"sliced string\",\"symbol\",\"bigint\","
    "\"object shape\"],\"string\",\"number\",\"number\",\"number\","
    "\"number\",\"number\"],"
    "\"edge_fields\":[\"type\",\"name_or_index\",\"to_node\"],"
    "\"edge_types\":[[\"context\",\"element\",\"property\",\"internal\","
    "\"hidden\",\"shortcut\",\"weak\"],\"string_or_number\",\"node\"],"
    "\"trace_function_info_fields\":[\"function_id\",\"name\","
    "\"script_name\",\"script_id\",\"line\",\"column\"],"
    "\"trace_node_fields\":[\"id\",\"function_info_index\",\"count\","
    "\"size\",\"children\"],"
    "\"sample_fields\":[\"timestamp_us\",\"last_assigned_id\"],"
    "\"location_fields\":[\"object_index\",\"script_id\",\"line\","
    "\"column\"]},\"node_count\":");
  putnum(w, (double)w->n + 1);
  PUTS(w, ",\"edge_count\":");
  putnum(w, w->nedges);
  PUTS(w, ",\"trace_function_count\":0},\n\"nodes\":[");
  root[4] = w->nroots;
  putrow(w, root, NODE_FIELDS, 1);
  w->buf[w->used++] = '\n';
}

/* The node of record r. Objects that no view counts (the walk's own,
** the code the host shares) weigh nothing; sizes above 2^32 - 1 are held
** there, as memlab reads them into 32-bit arrays. */
static void node (writer *w, const snap *s, uint32_t r) {
  const hobj *o = REC(s, r);
  double v[NODE_FIELDS];
  double size = counted(o) ? SIZE(o) : 0;
  v[0] = (o->flags & F_IGNORE) ? N_HIDDEN : ntype[o->type];
  v[1] = (o->flags & F_IGNORE) ? S_IGNORED : (double)FIXED + w->nnames + r;
  v[2] = 2 * ((double)r + 1) + 1;  /* odd, as V8's object ids are */
  v[3] = size < 4294967295.0 ? size : 4294967295.0;
  v[4] = edge_count(w, s, r);
  v[5] = 0;
  v[6] = 0;
  putrow(w, v, NODE_FIELDS, 0);
  if ((r & 15) == 15) w->buf[w->used++] = '\n';
}

/* An edge of kind E_* and argument nm to record c. */
static void put_edge (writer *w, int kind, uint32_t nm, uint32_t c) {
  double v[3];
  edge_of(kind, nm, &v[0], &v[1]);
  v[2] = ((double)c + 1) * NODE_FIELDS;
  putrow(w, v, 3, w->first);
  w->first = 0;
}

/* An edge to record c of the kind that first reached it. */
static void tree_edge (writer *w, const snap *s, uint32_t c) {
  const hobj *o = REC(s, c);
  put_edge(w, o->edge, o->name, c);
}

/* Positions the edge cursor at the first edge of record r. */
static void edges_from (writer *w, const snap *s, uint32_t r) {
  w->pdone = 0;
  if (r >= w->n) return;
  if (w->logged) {
    uint32_t n = memprobe_edges(s, r, &w->k);
    w->kend = w->k + n;
  }
  else {
    w->k = w->pos[r];
    w->kend = kids_end(w, r);
  }
}

/* One edge of record w->at (a child, then its prototype), or the move to
** the next record. */
static void edge_unit (writer *w, const snap *s) {
  uint32_t r = w->at, p = w->logged ? 0 : proto_of(s, r);
  if (w->k < w->kend) {
    if (w->logged) {
      const mp_edge *e = EDGE(s, w->k);
      put_edge(w, MP_EDGE_KIND(e), MP_EDGE_NAME(e), e->to);
    }
    else
      tree_edge(w, s, w->kids[w->k]);
    if ((++w->k & 15) == 0) w->buf[w->used++] = '\n';
  }
  else if (p && !w->pdone) {
    double v[3];
    v[0] = V_INTERNAL;
    v[1] = S_PROTO;
    v[2] = (double)p * NODE_FIELDS;
    putrow(w, v, 3, w->first);
    w->first = 0;
    w->pdone = 1;
  }
  else
    edges_from(w, s, ++w->at);
}

static const char *fixed_string (uint32_t i) {
  switch (i) {
    case S_EMPTY: return "";
    case S_ROOT: return "(memprobe roots)";
    case S_METATABLE: return "metatable";
    case S_ENV: return "env";
    case S_KEY: return "key";
    case S_PROTO: return "proto";
    case S_NUMKEY: return "[<number>]";
    case S_IGNORED: return "(memprobe) walk bookkeeping";
    default: return okeys[i - S_OBJKEY];
  }
}

/* The name of record r's node: its type, a space, its path. */
static void node_name (writer *w, const snap *s, uint32_t r) {
  char text[ROOM / 8];      /* escaped, at most 6 bytes a byte: < ROOM */
  const char *t = tnames[REC(s, r)->type];
  size_t n = strlen(t);
  memcpy(text, t, n);
  text[n++] = ' ';
  n += memprobe_path_text(s, r, text + n, sizeof(text) - n);
  w->buf[w->used++] = ',';
  putstr(w, text, n);
  if ((r & 7) == 7) w->buf[w->used++] = '\n';
}

/*
** The edges' index, a unit per record in each of its three phases: the
** children counted per referrer (pos[p]), summed (pos[r] = the end of
** r's children), then filled in from each end down (pos[r] ends as the
** start of r's children).
*/
static void index_unit (writer *w, const snap *s, uint32_t r) {
  uint32_t p;
  switch (w->phase) {
    case W_COUNT:
      if (isroot(REC(s, r))) w->nroots++;
      if (w->logged) { w->nedges += edge_count(w, s, r); break; }
      p = tree_parent(s, r);
      if (p) { w->pos[p - 1]++; w->nkids++; }
      if (proto_of(s, r)) w->nedges++;
      break;
    case W_SUM:
      if (r > 0) w->pos[r] += w->pos[r - 1];
      break;
    default:  /* W_FILL */
      p = tree_parent(s, r);
      if (p) w->kids[--w->pos[p - 1]] = r;
      break;
  }
}

/* Gives back RELEASE bytes of the index from its end, once the edges
** are out: unmapping 80 MB at once (10M records) took a slice of its
** own. 0 when all is back. */
static int release_unit (writer *w) {
  int kids = w->kidsize > 0;
  size_t *left = kids ? &w->kidsize : &w->possize, k;
  char *base = kids ? (char *)w->kids : (char *)w->pos;
  if (*left == 0) { w->pos = w->kids = NULL; return 0; }
  k = *left < RELEASE ? *left : RELEASE;
  *left -= k;
  memprobe_book_unmap(&w->book, base + *left, k);
  return 1;
}

/* Starts phase ph (the next one it needs: with the snapshot's log,
** no index of its own): its cursor at its start. */
static void enter (writer *w, const snap *s, int ph) {
  while (w->logged && (ph == W_SUM || ph == W_FILL || ph == W_RELEASE)) ph++;
  w->phase = ph;
  w->at = 0;
  if (ph == W_ROOTEDGES) w->first = 1;  /* the edges array begins */
  if (ph == W_EDGES) edges_from(w, s, 0);
  if (ph == W_HEAD) w->nedges += w->nkids + w->nroots;
}

/* One unit of the phase w->phase (the record or string w->at); 0 when
** the phase is over. */
static int unit (writer *w, const snap *s) {
  switch (w->phase) {
    case W_COUNT: case W_SUM: case W_FILL:
      if (w->at >= w->n) return 0;
      index_unit(w, s, w->at++);
      return 1;
    case W_HEAD: head(w); return 0;
    case W_NODES:
      if (w->at >= w->n) { PUTS(w, "],\n\"edges\":["); return 0; }
      node(w, s, w->at++);
      return 1;
    case W_ROOTEDGES:  /* a unit per root, or per 16 records looked at */
      while (w->at < w->n && !isroot(REC(s, w->at)))
        if ((++w->at & 15) == 0) return 1;
      if (w->at >= w->n) return 0;
      tree_edge(w, s, w->at++);
      w->buf[w->used++] = '\n';
      return 1;
    case W_EDGES:
      if (w->at >= w->n) {
        PUTS(w, "],\n\"trace_function_infos\":[],\"trace_tree\":[],"
                "\"samples\":[],\"locations\":[],\n\"strings\":[");
        return 0;
      }
      edge_unit(w, s);
      return 1;
    case W_RELEASE: return release_unit(w);
    case W_FIXED:
      if (w->at >= FIXED) return 0;
      if (w->at > 0) w->buf[w->used++] = ',';
      {
        const char *t = fixed_string(w->at++);
        putstr(w, t, strlen(t));
      }
      return 1;
    case W_NAMES:
      if (w->at >= w->nnames) return 0;
      {
        const char *t = memprobe_name_of(s, ++w->at);
        w->buf[w->used++] = ',';
        putstr(w, t, strlen(t));
        if ((w->at & 7) == 0) w->buf[w->used++] = '\n';
      }
      return 1;
    case W_NODENAMES:
      if (w->at >= w->n) return 0;
      node_name(w, s, w->at++);
      return 1;
    default:  /* W_TAIL */
      PUTS(w, "]}\n");
      return 0;
  }
}

/* nil, "path: reason", errno */
static int failed (lua_State *L, writer *w) {
  int err = w->err;
  return memprobe_result(L, err, "%s: %s", w->path,
                         err == EINVAL ? "not a regular file" : strerror(err));
}

/* The snapshot the writer at 1 writes, checked open and idle. */
static snap *snapshot_of (lua_State *L) {
  snap *s;
  mp_getuv(L, 1, 1);
  lua_rawgeti(L, -1, 1);
  s = (snap *)mp_testudata(L, -1, SNAP_MT);
  if (s == NULL || s->closed || s->closing || s->busy)
    luaL_error(L, "heap snapshot writer: its snapshot was closed");
  lua_pop(L, 2);
  return s;
}

/*
** w:step([ms]) -> true when the file is written and closed; false when
** the budget ran out first; nil, message, errno when a write failed.
** No Lua allocation happens between two clock reads: no finalizer can
** close the snapshot while the step reads it.
*/
static int l_step (lua_State *L) {
  writer *w = (writer *)luaL_checkudata(L, 1, WRITER_MT);
  double ms = luaL_optnumber(L, 2, 0), deadline = 0;
  uint32_t units = 0;
  snap *s;
  luaL_argcheck(L, lua_isnoneornil(L, 2) || ms > 0, 2, "ms must be > 0");
  if (w->phase == W_FAILED) return failed(L, w);
  if (w->phase == W_DONE) { lua_pushboolean(L, 1); return 1; }
  luaL_argcheck(L, !w->closed, 1, "writer is closed");
  s = snapshot_of(L);
  if (ms > 0) deadline = memprobe_now() + ms / 1000;
  while (w->phase < W_DONE) {
    if (!room(w)) break;
    if (!unit(w, s)) {
      if (w->phase == W_TAIL) {
        int fd = w->fd;
        flush(w);
        w->fd = -1;
        if (close(fd) != 0 && w->err == 0) w->err = errno;
        if (w->err == 0) { w->phase = W_DONE; break; }
      }
      enter(w, s, w->phase + 1);
    }
    w->units++;
    if ((++units % CHECK == 0 || w->phase == W_RELEASE) && deadline > 0 &&
        memprobe_now() >= deadline)
      break;
  }
  if (w->err != 0) {
    w->phase = W_FAILED;
    writer_free(w);
    return failed(L, w);
  }
  if (w->phase == W_DONE) writer_free(w);
  lua_pushboolean(L, w->phase == W_DONE);
  return 1;
}

/* w:progress() -> bytes written, units done, units in all (estimated:
** without the log, three passes of an index and its release; a count, a
** node, a move to its edges and a name per record, a unit per 16 in the
** search for the roots, a unit per edge and per string). */
static int l_progress (lua_State *L) {
  writer *w = (writer *)luaL_checkudata(L, 1, WRITER_MT);
  double n = w->n, index = w->logged ? 0 : 3.0 * n +
    2.0 * (double)MP_PAGES(((size_t)w->n + 1) * 4) / RELEASE;
  double total = index + 4.0 * n + n / 16 + w->nedges + w->nnames + FIXED + 4;
  lua_pushnumber(L, w->bytes + (double)w->used);
  lua_pushnumber(L, w->units);
  lua_pushnumber(L, w->units > total ? w->units : total);
  return 3;
}

/* Opens path for writing as _write_file does: created or truncated, a
** FIFO (no wait for a reader) or a socket refused. 0 or an errno value. */
static int open_out (writer *w, const char *path) {
  struct stat st;
  int fl, fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
                    O_NONBLOCK, 0644);
  if (fd < 0) return errno == ENXIO ? EINVAL : errno;
  w->fd = fd;
  if (fstat(fd, &st) != 0) return errno;
  if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) return EINVAL;
  if ((fl = fcntl(fd, F_GETFL)) == -1 ||
      fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1)
    return errno;
  return 0;
}

/***
Starts writing a finished snapshot to `path` as a V8 `.heapsnapshot`:
opens the file now, writes nothing yet; `w:step([ms])` writes on.
@function heap_writer
@local
@param snap a finished snapshot
@tparam string path the file to write (created or truncated)
@treturn userdata the writer, or nil, message, errno when path cannot be
opened
*/
static int l_writer (lua_State *L) {
  snap *s = memprobe_checksnap(L, 1);
  size_t plen;
  const char *path = luaL_checklstring(L, 2, &plen);
  writer *w;
  int err;
  luaL_argcheck(L, DONE(s), 1, "walk not finished");
  luaL_argcheck(L, plen > 0 && strlen(path) == plen, 2, "path expected");
  luaL_argcheck(L, plen < MP_PATHMAX, 2, "path too long");
  lua_settop(L, 2);
  w = (writer *)mp_newuserdata(L, sizeof(writer));
  memset(w, 0, sizeof(*w));
  w->fd = -1;
  w->closed = 1;
  luaL_getmetatable(L, WRITER_MT);
  lua_setmetatable(L, -2);
  lua_createtable(L, 1, 0);
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  mp_setuv(L, 3);
  w->book.total = &memprobe_ctx(L)->heap_bytes;
  w->closed = 0;
  memcpy(w->path, path, plen + 1);
  w->n = s->obj.n;
  w->nnames = s->names.n;
  w->logged = s->e.on;
  /* zeroed pages, mapped so that they go back a part at a time */
  w->possize = w->kidsize = w->logged ? 0 : MP_PAGES(((size_t)w->n + 1) * 4);
  if (!w->logged) {
    w->pos = (uint32_t *)memprobe_book_map(&w->book, w->possize);
    w->kids = (uint32_t *)memprobe_book_map(&w->book, w->kidsize);
    if (w->pos == NULL) w->possize = 0;
    if (w->kids == NULL) w->kidsize = 0;
  }
  if (!w->logged && (w->pos == NULL || w->kids == NULL)) {
    writer_free(w);
    memprobe_nomem(L);
  }
  if ((err = open_out(w, path)) != 0) {
    writer_free(w);
    return memprobe_result(L, err, "%s: %s", path,
                           err == EINVAL ? "not a regular file"
                                         : strerror(err));
  }
  enter(w, s, W_COUNT);
  return 1;
}

static int l_tostring (lua_State *L) {
  writer *w = (writer *)luaL_checkudata(L, 1, WRITER_MT);
  lua_pushfstring(L, "memprobe.HeapSnapshotWriter (%s%s)", w->path,
                  w->phase == W_DONE ? ", written"
                  : w->phase == W_FAILED ? ", failed"
                  : w->closed ? ", closed" : "");
  return 1;
}

void memprobe_open_heapsnapshot (lua_State *L) {
  static const luaL_Reg funcs[] = {
    { "heap_writer", l_writer },
    { NULL, NULL }
  };
  static const luaL_Reg methods[] = {
    { "close",    writer_gc },
    { "progress", l_progress },
    { "step",     l_step },
    { NULL, NULL }
  };
  if (luaL_newmetatable(L, WRITER_MT)) {
    lua_pushcfunction(L, writer_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_createtable(L, 0, 3);
    mp_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, WRITER_MT);
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  memprobe_register(L, funcs);
}
