/*
** heap.h: declarations shared by the files of the heap walk: heap.c
** (Snapshot objects and their methods), heapwalk.c (the walk and its
** bookkeeping) and heapmodel.c (the size model, calibration samples).
** The records, the snapshot and the walker, the constants they are sized
** by, and the functions one file calls in another. Private to these
** files; like internal.h, which it includes, it exports nothing.
*/
#ifndef MEMPROBE_HEAP_H
#define MEMPROBE_HEAP_H

#include "internal.h"

#include <math.h>

#define SNAP_MT   "memprobe.Snapshot"
#define MODELJOB_MT "memprobe.ModelJob"
#define NCAL      24        /* calibrated powers of two, arrays and hashes */
#define NAMEMAX   60        /* longest edge name kept */
#define NOWN      8         /* functions whose frames are the walk's own */
#define MAXOBJECTS 268435440.0  /* records a walk may keep (MP_IDXMAX) */

/* Types beyond lua.h: LuaJIT's cdata, and two parts of a function. */
enum { T_CDATA = 10, T_PROTO = 11, T_UPVAL = 12, T_NTYPES = 13 };

/* How an object was first reached from its parent. */
enum { E_ROOT, E_FIELD, E_INDEX, E_NUMKEY, E_OBJKEY, E_KEY, E_MT, E_UPVAL,
       E_UPIDX, E_UVALUE, E_ENV, E_LOCAL, E_FRAME, E_STACK, E_PROTO };

/* Record flags. F_HOST: an object the host shares between states
** (skynet's code cache), outside this state's heap; its own row. */
enum { F_ROOT = 1, F_IGNORE = 2, F_SIZED = 4, F_NESTED = 8, F_HOST = 16,
       F_EDGES = 32 };  /* F_EDGES: its out-edges are recorded */

#define SHARED  (-1)        /* label of an object reached from two roots */

typedef struct hobj {
  const void *p;      /* identity: lua_topointer, string contents */
  uint32_t parent;    /* first referrer + 1; 0 for roots */
  uint32_t size;      /* estimated bytes, as setsize() packs them */
  uint32_t aux;       /* tables: entries; userdata: type name; closures:
                         proto + 1; protos: their number; strings: the
                         edge name they are as a key, once they were */
  uint32_t name;      /* edge argument: name + 1, index, slot */
  int32_t label;      /* root id, SHARED, or 0 */
  uint8_t type, edge, flags, pad;
} hobj;

typedef struct pinfo {
  const void *src;
  int line, last;
  uint32_t obj;
} pinfo;

typedef struct model {
  double tbase, arr[NCAL], hash[NCAL];
  int narr, nhash;
  double str[65], slong, sfirst, salign;
  double lcl, lcl_up, upval, ccl0, ccl, ccl_up, ud, udb, ud_uv, thread, cdata;
  double pbase, pbyte;
  /* LuaJIT: where a GCtab keeps its sizes (offsets, or -1 when unknown),
  ** and the bytes of an array slot and a hash node (memprobe_tablebytes) */
  int jcolo, jasize, jhmask;
  double jslot, jnode;
  /* PUC Lua: where a Table keeps its array size and lsizenode, and its
  ** node pointer, which points at the shared dummy node (pdummy) while
  ** the hash part is empty; 5.4's flag byte and bit that say the array
  ** size is a limit below the real one (-1 and 0 when absent); the bytes
  ** of an array of n slots, pabase + n * paslot (memprobe_tablebytes) */
  int pasize, plsize, pnode, pras, prasbit;
  const void *pdummy;
  double pabase, paslot;
  /* the string table's share of each interned string (stringsize) */
  double imax, strslot;
} model;

/*
** The queue. Values wait in segments of SEG slots, W[k] for positions
** (k-1)*SEG .. k*SEG-1, so that it grows and shrinks without ever copying
** values (a copy of a wide queue would not fit in a 2 ms slice); their
** records and labels wait in C chunks of the same positions, on a ring
** of chunk pointers.
*/
#define SEGBITS  10

/* The queue table's slots besides its segments W[1], W[2] ... */
enum {
  Q_SPARE = 0,          /* a segment the head left, for the tail to reuse */
  Q_KEY = -1,           /* the key lua_next resumes from in the head table */
  Q_EPHEMERONS = -2,    /* set of the ephemeron tables met, to expand again */
  Q_MODEL = -3,         /* the size model's job, until the model is known */
  Q_ROOTS = -4,         /* the roots, until all are registered */
  Q_FUNCTIONS = -5      /* census(): the functions by prototype, built in
                           PH_OUTPUT (kept once the walk is done) */
};
#define SEG      (1u << SEGBITS)

typedef struct qchunk {
  uint32_t rec[SEG];
  int32_t label[SEG];
} qchunk;

/* Counts and bytes by a key (a name, or a prototype number + 1), in an
** open-addressing table (key 0 is empty). */
typedef struct acc { uint32_t key; double count, bytes; } acc;
typedef struct acctab { acc *a; uint32_t mask, n; } acctab;

/*
** The tally of a finished walk: a pass over the records, a unit each, so
** that a job's last steps are bounded like the walk's. The census adds up
** by type, userdata type name and prototype, and keeps the 'top' largest
** containers; the row sums add up by row (SHARED last) and type.
*/
typedef struct tally {
  uint32_t at;              /* next record */
  uint32_t out;             /* PH_OUTPUT: next slot of fns */
  int top, nbig, rows, started, done;
  double n[T_NTYPES], b[T_NTYPES], total, objects;
  double hn[T_NTYPES], hb[T_NTYPES];  /* the host's shared code, by type */
  acctab uds, fns;
  uint32_t *big;            /* top + 1 record numbers, largest first */
  double *sum;              /* rows: [(row * T_NTYPES + type) * 2] count, bytes */
  size_t nsum;
} tally;

/*
** The phases of a walk, in order. A step goes on from s->phase, within
** its budget; each phase is bounded the same way, in units.
*/
enum {
  PH_MODEL,     /* the size model, measured by the job at Q_MODEL */
  PH_ROOTS,     /* the roots of Q_ROOTS registered, one per unit */
  PH_WALK,      /* the queue expanded until empty (memprobe_run) */
  PH_SETTLE,    /* index growths still under way finished */
  PH_SORT,      /* the prototypes sorted, nested ones marked */
  PH_DFS,       /* dominators (heapdom.c), when edges were recorded: a
                   depth-first numbering from the virtual root */
  PH_PREDS,     /* the predecessors of each vertex, by number (CSR) */
  PH_SEMI,      /* semidominators, in reverse preorder */
  PH_IDOM,      /* immediate dominators, in preorder */
  PH_RETAIN,    /* retained sizes, summed up the dominator tree */
  PH_PASS2,     /* modules(): each row's reach of shared objects */
  PH_TALLY,     /* the census or the row sums, a record per unit */
  PH_OUTPUT,    /* census: the functions table (Q_FUNCTIONS), an entry
                   per unit */
  PH_DONE
};

/* The second pass of modules(): from each row's roots in label order,
** the objects of that row and the shared ones it reaches, each once per
** row, whose bytes add to the row's shared column. */
typedef struct pass2 {
  int32_t label;            /* the row walked now */
  uint32_t *seen;           /* per record: the last row that reached it */
  size_t seensize;          /* bytes of seen (zeroed pages, mapped) */
  double *shared;           /* shared bytes by row, nroots + 1 */
  uint32_t rootj;           /* next root of Q_ROOTS to enqueue, from 1 */
  int rowopen;              /* the row's roots are queued, its walk runs */
  int done;
} pass2;

/* The sort of the prototypes after the walk: a bottom-up merge sort of
** their numbers, whose cursors live here so that a step can stop in the
** middle of a merge, then a pass that marks the nested ones. */
typedef struct psort {
  uint32_t *perm, *tmp;     /* prototype numbers, and the merge target */
  uint32_t width;           /* the runs being merged are this long */
  uint32_t lo;              /* the pair of runs being merged starts here */
  uint32_t i, j;            /* next of the left run, of the right run */
  uint32_t k;               /* next slot of tmp; in the marking, next proto */
  uint32_t outer;           /* filling: = count; marking: the enclosing one */
} psort;

/*
** The edges the walk met (opts.edges): every reference from an object it
** expanded to an object that has a record, the walk's own excluded, with
** the kind (E_*) and argument the walk computed for it. They live in a
** log of runs, one per record expanded, the run of its first complete
** expansion (an ephemeron table's last one): a header { to = count,
** kn = record } and then its edges, 8 bytes each. eoff holds a record's
** header position, 0 for none (position 0 is a dummy). A run is
** contiguous, so the log reads as CSR: out-edges of record r are
** elog[eoff[r] + 1 .. eoff[r] + count]. Read it with memprobe_edges.
*/
typedef struct mp_edge {
  uint32_t to;              /* the target's record */
  uint32_t kn;              /* kind (E_*) in the low 4 bits, the edge's
                               argument (hobj.name's meaning) above,
                               saturated at EDGE_NAMEMAX */
} mp_edge;
#define EDGE_NAMEMAX  0x0fffffffu
#define EDGE_MAX      0xfffffff0u  /* log positions (uint32) */

typedef struct edgelog {
  int on;                   /* recording */
  int full;                 /* the log reached EDGE_MAX: edges are missing */
  int eph;                  /* the head is an ephemeron table: its run is
                               made again at each expansion */
  uint32_t run;             /* the open run's header position, or 0 */
  uint32_t head;            /* the record whose run is open */
  double edges;             /* in the runs that records point to */
  mp_vec log;               /* mp_edge */
  mp_vec off;               /* uint32 per record: its header, or 0 */
} edgelog;

/*
** The dominator tree of a snapshot (heapdom.c), over vertices 0 (the
** virtual root above the roots) and r + 1 for record r. The working
** arrays are indexed by preorder number (1 for the virtual root, 0 for
** none); once it is done, num, idom and ret remain: num by vertex, idom
** (a vertex) and ret (retained bytes) by number. TOPK records of largest
** retained size are kept in order for retained(n).
*/
#define TOPK  1024
enum { DA_NUM, DA_VERT, DA_PARENT, DA_SEMI, DA_LABEL, DA_IDOM, DA_PSTART,
       DA_PRED, DA_STACK, DA_RET, DA_N };
typedef struct domtree {
  /* mapped arrays (zeroed pages), a[k] of size[k] bytes, by DA_*:
  ** NUM     by vertex: preorder number
  ** VERT    by number: the vertex
  ** PARENT  by number: the DFS tree's parent; in PH_SEMI compressed into
  **         the link-eval forest's ancestor
  ** SEMI    by number: in PH_DFS the vertex's edge cursor, then its
  **         semidominator
  ** LABEL   by number: in PH_DFS the edges left, then eval's label
  ** IDOM    by number: the immediate dominator's number; PH_RETAIN turns
  **         it into a vertex
  ** PSTART  by number: its first predecessor in PRED (CSR)
  ** PRED    predecessors' numbers, grouped by target
  ** STACK   the path an eval compresses
  ** RET     by number: retained bytes (double) */
  void *a[DA_N];
  size_t size[DA_N];
  uint32_t nv;              /* vertices: records + 1 */
  uint32_t nr;              /* numbered: those reachable from the root */
  uint32_t i, k;            /* the phase's cursors */
  int sub;                  /* the phase's part */
  int open;                 /* PH_PREDS: vertex i's own part is done */
  uint32_t tick;            /* items since the last unit (tick()) */
  uint32_t sp, x, p;        /* an eval under way (PH_SEMI) */
  int ev;                   /* 0 none, 1 climbing, 2 compressing */
  uint32_t top[TOPK];       /* vertices of largest retained, largest
                               first once done */
  uint32_t ntop;
  int done;                 /* num, idom and ret are final */
} domtree;
#define DOM32(d, k)  ((uint32_t *)(d)->a[k])
#define DOMRET(d)    ((double *)(d)->a[DA_RET])

/* path(): the referrers of one object (opts.target), as the walk meets
** them. */
typedef struct referrers {
  const void *target;
  uint32_t rec[16];         /* referrer's record + 1 */
  uint32_t edge[16], name[16];  /* the edge from it to the target */
  int n;
} referrers;

typedef struct snap {
  /* --- what the walk found, outside the Lua heap (heapbook.c) --- */
  mp_ctx *ctx;
  mp_book book;             /* C bytes held, also counted in ctx */
  mp_vec obj;               /* hobj records, obj.n of them */
  mp_index index;           /* records by identity */
  mp_vec proto;             /* pinfo */
  mp_index pindex;          /* prototypes by source and lines */
  mp_vec names;             /* edge names: a char * each, into the arena */
  mp_index nindex;          /* names by content */
  char *arena;              /* current chunk; starts with the previous one */
  uint32_t aused;           /* bytes of it in use */
  /* --- the walk: its phase, options and model --- */
  int phase;                /* PH_* */
  model m;
  uint32_t nextroot;        /* PH_ROOTS: the next of Q_ROOTS, from 1 */
  uint32_t max_objects;
  int nroots;               /* the highest root label */
  int truncated;            /* max_objects was reached */
  int busy, closing;        /* in a step; close() asked for meanwhile */
  int closed;
  /* frames of these functions on the walking thread are not roots */
  const void *own[NOWN];
  int nown;
  /* registry tables by name, the fallback name of a userdata's type:
  ** nreg of them, room for regcap (grown by doubling) */
  struct { const void *p; uint32_t name; } *reg;
  uint32_t nreg, regcap;
  /* --- the queue: positions qhead .. qtail - 1; values in Lua segments,
  ** records and labels in C chunks, the chunk of position p at
  ** qc[(p >> SEGBITS) & qcmask] --- */
  qchunk **qc;
  qchunk *qspare;           /* a chunk the head left, for the tail */
  uint32_t qcmask, qhead, qtail;
  /* --- the head of the queue, whose expansion may span steps --- */
  int started;              /* its expansion began (metatable done) */
  int keysaved;             /* Q_KEY holds the key lua_next resumes from */
  int in_next;              /* inside lua_next: an error is a restart */
  int atomic;               /* expanded in one go (restarted twice) */
  int tlevel;               /* a thread's next stack level */
  uint32_t nums[32], nint, nent;  /* a table's integer keys by log2, its
                                     integer keys and its entries so far */
  uint32_t restarted;       /* queue position of the last restart */
  /* ephemeron tables (weak keys, 5.2+), expanded again at the end */
  int ephpass;              /* times they were queued again */
  uint32_t ephseen;         /* records when they last were */
  /* --- every edge, when recorded, and the dominators over them --- */
  edgelog e;
  domtree d;
  /* --- the phases after the walk --- */
  psort sort;               /* PH_SORT */
  pass2 p2;                 /* PH_PASS2 */
  tally t;                  /* PH_TALLY: census or row sums */
  /* --- statistics (stats()) --- */
  double units, steps, maxunits, restarts;
  double gap;               /* the last step's longest stretch between
                               two clock reads */
  /* --- path(): the referrers of opts.target --- */
  referrers refs;
  /* --- for specs: raise after this many records (opts.fail_after) --- */
  int failafter;
} snap;

#define REC(s, i)   MP_AT(&(s)->obj, (i), hobj)
#define EDGE(s, i)  MP_AT(&(s)->e.log, (i), mp_edge)

/*
** The out-edges of record r, for the readers of a finished snapshot
** (retained sizes, the exporters): returns how many, and in *first the
** position of the first; the others follow it, so that
**
**   uint32_t i, n = memprobe_edges(s, r, &i);
**   for (; n > 0; n--, i++) {
**     const mp_edge *e = EDGE(s, i);
**     ... e->to, MP_EDGE_KIND(e), MP_EDGE_NAME(e) ...
**   }
**
** reads them in the order the walk met them. 0 for a record that has
** none, or when the snapshot recorded no edges (s->e.on). The name reads
** as hobj.name does for that kind (memprobe_pushedge shows both alike).
** Edges from the virtual root are not in the log: the roots are the
** records flagged F_ROOT.
*/
#define MP_EDGE_KIND(e)  ((int)((e)->kn & 15u))
#define MP_EDGE_NAME(e)  ((e)->kn >> 4)
static inline uint32_t memprobe_edges (const snap *s, uint32_t r,
                                       uint32_t *first) {
  uint32_t h;
  *first = 0;
  if (r >= s->e.off.n || (h = *MP_AT(&s->e.off, r, uint32_t)) == 0)
    return 0;
  *first = h + 1;
  return EDGE(s, h)->to;
}
#define DONE(s)     ((s)->phase == PH_DONE)

/*
** An object's size in its 32-bit field: exact below 2 GiB; from there a
** count of 4 KiB pages with the top bit set, up to 8 TiB (an error of at
** most 4 KiB in several GiB). SIZE reads it back as bytes.
*/
#define BIGSIZE   2147483648.0
static inline void setsize (hobj *o, double bytes) {
  if (bytes < BIGSIZE) o->size = (uint32_t)bytes;
  else if (bytes < BIGSIZE * 4096) o->size = 0x80000000u | (uint32_t)(bytes / 4096);
  else o->size = 0xffffffffu;
}
static inline double objsize (const hobj *o) {
  return (o->size & 0x80000000u) ? (double)(o->size & 0x7fffffffu) * 4096
                                 : (double)o->size;
}
#define SETSIZE(o, bytes)  setsize((o), (double)(bytes))
#define SIZE(o)            objsize(o)
#define PROTO(s, i) MP_AT(&(s)->proto, (i), pinfo)

/*
** What reaching a value or a part of a function does: in the walk,
** memprobe_discover records it; in the second pass of modules(), it
** counts for the row walked. Returns the value's record, or -1.
*/
typedef struct walker walker;
typedef int64_t (*mp_visit) (walker *w, int vi, int t, uint32_t parent,
                             int edge, uint32_t name, int32_t label);
typedef void (*mp_visitpart) (walker *w, uint32_t r, int32_t label);

/* One step's view of a walk: the snapshot, its queue on the stack, the
** budget; set up by memprobe_walker_init for the walk. */
struct walker {
  lua_State *L;
  snap *s;
  int ud, W;                /* stack indices of the snapshot and queue */
  int hseg, tseg;           /* stack slots: the head's and tail's segment */
  uint32_t hsegno, tsegno;  /* which segments they hold (k of W[k]), or 0 */
  uint64_t units, limit;    /* units done, allowed */
  double deadline;
  double last, gap, maxgap; /* last clock read, longest stretch, cap */
  mp_visit visit;           /* memprobe_discover, or a row's count */
  mp_visitpart part;
};

/*
** The size model applied: the bytes of a table and of a string. Inline in
** each file: the walk sizes every table and string with them and counts
** every integer key with ceillog2; as calls into heapmodel.c, which reads
** the model, they cost the walk about 1% more instructions.
*/
static inline uint32_t ceillog2 (uint32_t x) {
#if defined(__GNUC__)
  return x <= 1 ? 0 : 32 - (uint32_t)__builtin_clz(x - 1);
#else
  uint32_t k = 0;
  while (k < 32 && ((uint64_t)1 << k) < x) k++;
  return k;
#endif
}

/* Bytes of a table part of 2^k slots (size = 2^k, or 0); linear past
** the calibrated sizes. */
static inline double part (const double *v, int n, uint32_t size) {
  int k = 0;
  if (size == 0) return 0;
  while ((1u << k) < size) k++;
  if (k < n) return v[k];
  return v[n - 1] + (v[n - 1] - v[n - 2]) / (double)(1u << (n - 2)) *
         ((double)size - (double)(1u << (n - 1)));
}

/*
** Array size after the VM's last rehash, from how many integer keys fall
** in each slice (2^(i-1), 2^i]: the largest power of two n such that more
** than n/2 of the slots 1..n are in use. Every runtime rehashes this way;
** the rest of the keys go to the hash part, rounded up to a power of two.
*/
static inline double tablesize (const model *m, const uint32_t *nums,
                                 uint32_t nint, uint32_t nent) {
  uint32_t a = 0, na = 0, optimal = 0, nh;
  uint64_t twotoi = 1;
  int i;
  for (i = 0; i < 32 && twotoi / 2 < nint; i++, twotoi *= 2) {
    if (nums[i] > 0) {
      a += nums[i];
      if (a > twotoi / 2) { optimal = (uint32_t)twotoi; na = a; }
    }
  }
  nh = nent - na;
  return m->tbase + part(m->arr, m->narr, optimal) +
         part(m->hash, m->nhash, nh ? 1u << ceillog2(nh) : 0);
}

/* Up to 64 bytes: measured; past: the size at 1024 plus whole padding
** steps, which 'first' bytes past 1024 start. An interned string (up to
** imax bytes) also holds a slot of the VM's string table, which grows
** with the strings and shrinks back once they are gone: one slot each,
** the table's average share (docs/heap.md). */
static inline double stringsize (const model *m, size_t len) {
  double d, share = (double)len <= m->imax ? m->strslot : 0;
  if (len <= 64) return m->str[len] + share;
  d = (double)len - 1024;
  return m->slong + floor((d + m->salign - m->sfirst) / m->salign) * m->salign +
         share;
}

/*
** Data-like edges: those whose argument is data rather than a name
** (indices, number and object keys, key objects, stack slots), and the
** fields of a table of more than DATAWIDE entries. Diffs group the objects
** under them together, and patterns show them as [*]. parent is the
** referrer's record + 1 (0 for none).
*/
#define DATAWIDE  64
static inline int memprobe_datalike (const snap *s, int edge,
                                     uint32_t parent) {
  const hobj *up;
  if (edge == E_INDEX || edge == E_NUMKEY || edge == E_OBJKEY ||
      edge == E_KEY || edge == E_STACK)
    return 1;
  if (edge != E_FIELD || parent == 0) return 0;
  up = REC(s, parent - 1);
  return up->type == LUA_TTABLE && up->aux > DATAWIDE;
}

/* The walk's own objects and the code the host shares are not the
** state's: no view counts them, and shared code gets its own row. */
static inline int counted (const hobj *o) {
  return !(o->flags & (F_IGNORE | F_HOST));
}

/* heapwalk.c: the bookkeeping outside the Lua heap */
MP_API void memprobe_nomem (lua_State *L);
MP_API void *memprobe_xrealloc (lua_State *L, snap *s, void *p, size_t osz,
                                size_t nsz);
MP_API void memprobe_queue_free (snap *s);
MP_API void memprobe_snap_free (snap *s);
MP_API uint32_t memprobe_mix (uint64_t x);
MP_API uint32_t memprobe_hashptr (const void *p);
MP_API int64_t memprobe_find (const snap *s, const void *p, uint32_t h,
                              uint32_t *slot);
MP_API int64_t memprobe_lookup (const snap *s, const void *p);
MP_API uint32_t memprobe_newrec (lua_State *L, snap *s, const void *p,
                                 int type, int indexed, uint32_t h,
                                 uint32_t slot);
MP_API uint32_t memprobe_intern (lua_State *L, snap *s, const char *str,
                                 size_t len);
MP_API const char *memprobe_name_of (const snap *s, uint32_t name);

/* heapdom.c: the dominator tree, over the recorded edges */
MP_API int memprobe_dom_step (walker *w);
MP_API void memprobe_dom_free (snap *s);
MP_API int memprobe_dom_release (snap *s, size_t bytes);
MP_API void memprobe_open_heapdom (lua_State *L);

/*
** For the readers of a finished snapshot whose dominators are known
** (s->d.done): the immediate dominator of record r as a record + 1 (0:
** the virtual root, so r is a root or shared between roots), or -1 when
** no edge path from the roots reaches r (or none were computed); and the
** bytes r retains: its own and those of every object it dominates, -1
** when unknown.
*/
static inline int64_t memprobe_idom (const snap *s, uint32_t r) {
  uint32_t i;
  if (!s->d.done || r + 1 >= s->d.nv ||
      (i = DOM32(&s->d, DA_NUM)[r + 1]) == 0)
    return -1;
  return (int64_t)DOM32(&s->d, DA_IDOM)[i];
}
static inline double memprobe_retained (const snap *s, uint32_t r) {
  uint32_t i;
  if (!s->d.done || r + 1 >= s->d.nv ||
      (i = DOM32(&s->d, DA_NUM)[r + 1]) == 0)
    return -1;
  return DOMRET(&s->d)[i];
}

/* heapwalk.c: the walk */
MP_API int memprobe_collectable (int t);
MP_API const void *memprobe_ident (lua_State *L, int i, int t);
MP_API void memprobe_walker_init (walker *w, lua_State *L, snap *s, int ud,
                                  int W);
MP_API void memprobe_enqueue (walker *w, int vi, uint32_t rec,
                              int32_t label);
MP_API int64_t memprobe_discover (walker *w, int vi, int t, uint32_t parent,
                                  int edge, uint32_t name, int32_t label);
MP_API void memprobe_walker_rows (walker *w);
MP_API int memprobe_count_writer (lua_State *L, const void *p, size_t sz,
                                  void *ud);
MP_API int memprobe_budget (walker *w);
MP_API int memprobe_run (walker *w);
MP_API int memprobe_settle (walker *w);
MP_API int memprobe_sort_protos (walker *w);
MP_API void memprobe_tally_free (snap *s);


/* sharedcode.c: what the host shares between states (skynet) */
MP_API int memprobe_shared_proto (lua_State *L, int fi);
MP_API int memprobe_shared_object (lua_State *L, int i, int t);

/* heapmodel.c: the model memprobe.heap calibrated (the table at index t) */
MP_API double memprobe_getnum (lua_State *L, int t, const char *k);
MP_API void memprobe_readmodel (lua_State *L, int t, model *m);

/* heapmodel.c: a table's bytes, exact where the model knows the VM's
** layout (read from the header), else tablesize() of its keys */
MP_API double memprobe_tablebytes (const model *m, const void *t,
                                   const uint32_t *nums, uint32_t nint,
                                   uint32_t nent);

/* heapmodel.c: calibration samples and helpers, registered by heap.c */
MP_API int memprobe_l_sample (lua_State *L);
MP_API int memprobe_l_dumpsize (lua_State *L);
MP_API int memprobe_l_thread (lua_State *L);
MP_API int memprobe_l_walk_buffers (lua_State *L);

/* heapmodel.c: the model measured in a scratch state, as a job */
MP_API int memprobe_l_model_job (lua_State *L);
MP_API int memprobe_model_step (lua_State *L, int ji, double deadline);
MP_API void memprobe_open_model (lua_State *L);

/* heap.c: the C functions that run the walk, whose frames are its own */
MP_API int memprobe_step_body (lua_State *L);
MP_API int memprobe_l_snapshot (lua_State *L);
MP_API int memprobe_l_step (lua_State *L);
MP_API int memprobe_l_rows (lua_State *L);

/* heap.c: paths as Lua sees them, arrays of edges { kind, key, data } */
MP_API void memprobe_pushedge (lua_State *L, const snap *s, int edge,
                               uint32_t name, int data);
MP_API void memprobe_pushpath (lua_State *L, const snap *s, uint32_t r);
MP_API const char *memprobe_typename (int t);

/* heapsnapshot.c: snap:save(path, "heapsnapshot"), as a job; the text of
** a record's path, as memprobe.heap joins them, into a buffer */
MP_API void memprobe_open_heapsnapshot (lua_State *L);
MP_API size_t memprobe_path_text (const snap *s, uint32_t r, char *buf,
                                  size_t cap);

/* heap.c: for heapdiff.c, the diff of two snapshots as a job */
MP_API snap *memprobe_checksnap (lua_State *L, int i);
MP_API void memprobe_setnum (lua_State *L, const char *k, double v);
MP_API void memprobe_pushnum (lua_State *L, double v);
MP_API void memprobe_open_heapdiff (lua_State *L);

#endif
