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

#define SNAP_MT   "memprobe.Snapshot"
#define NCAL      24        /* calibrated powers of two, arrays and hashes */
#define NAMEMAX   60        /* longest edge name kept */
#define NOWN      8         /* functions whose frames are the walk's own */

/* Types beyond lua.h: LuaJIT's cdata, and two parts of a function. */
enum { T_CDATA = 10, T_PROTO = 11, T_UPVAL = 12, T_NTYPES = 13 };

/* How an object was first reached from its parent. */
enum { E_ROOT, E_FIELD, E_INDEX, E_NUMKEY, E_OBJKEY, E_KEY, E_MT, E_UPVAL,
       E_UPIDX, E_UVALUE, E_ENV, E_LOCAL, E_FRAME, E_STACK, E_PROTO };

/* Record flags. */
enum { F_ROOT = 1, F_IGNORE = 2, F_SIZED = 4, F_NESTED = 8 };

#define SHARED  (-1)        /* label of an object reached from two roots */

typedef struct hobj {
  const void *p;      /* identity: lua_topointer, string contents */
  uint32_t parent;    /* first referrer + 1; 0 for roots */
  uint32_t size;      /* estimated bytes */
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
} model;

/*
** The queue. Values wait in segments of SEG slots, W[k] for positions
** (k-1)*SEG .. k*SEG-1, so that it grows and shrinks without ever copying
** values (a copy of a wide queue would not fit in a 2 ms slice); their
** records and labels wait in C chunks of the same positions, on a ring
** of chunk pointers.
*/
#define SEGBITS  10
#define SEG      (1u << SEGBITS)

typedef struct qchunk {
  uint32_t rec[SEG];
  int32_t label[SEG];
} qchunk;

typedef struct snap {
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
  qchunk **qc;              /* the ring: chunk of position p at
                               qc[(p >> SEGBITS) & qcmask] */
  qchunk *qspare;
  uint32_t qcmask, qhead, qtail;
  /* expansion of the head of the queue, which may span several steps */
  int started, keysaved;
  uint32_t nums[32], nint, nent;
  /* registry tables by name, the fallback name of a userdata's type */
  const void **regp;
  uint32_t *regname;
  uint32_t nreg;
  model m;
  uint32_t max_objects;
  int truncated, walked, done, closed, in_next, mode, ephpass, nroots;
  uint32_t ephseen;         /* objects when the ephemerons were requeued */
  /* after the walk: the prototypes sorted, a bounded stretch per unit */
  uint32_t *perm, *ptmp;    /* prototype numbers, and the merge target */
  uint32_t sw, slo, si, sj, sk, scur;
  int32_t curlabel;         /* second pass of modules(): the row walked */
  uint16_t *seen;           /* second pass: last row that reached each */
  double *rowshared;
  /* statistics */
  double units, steps, maxunits, restarts;
  double gap;               /* the last step's longest stretch between
                               two clock reads */
  /* path(): referrers of one object */
  const void *target;
  uint32_t ref[16], refedge[16], refname[16];
  int nref;
  /* frames of these functions on the walking thread are not roots */
  const void *own[NOWN];
  int nown;
  int failafter;            /* for specs: raise after this many records */
} snap;

#define REC(s, i)   MP_AT(&(s)->obj, (i), hobj)
#define PROTO(s, i) MP_AT(&(s)->proto, (i), pinfo)

typedef struct walker {
  lua_State *L;
  snap *s;
  int ud, W;                /* stack indices of the snapshot and queue */
  int hseg, tseg;           /* stack slots: the head's and tail's segment */
  uint32_t hsegno, tsegno;  /* which segments they hold (k of W[k]), or 0 */
  uint64_t units, limit;    /* units done, allowed */
  double deadline;
  double last, gap, maxgap; /* last clock read, longest stretch, cap */
} walker;

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

/* heapwalk.c: the walk */
MP_API int memprobe_collectable (int t);
MP_API const void *memprobe_ident (lua_State *L, int i, int t);
MP_API void memprobe_walker_init (walker *w, lua_State *L, snap *s, int ud,
                                  int W);
MP_API void memprobe_enqueue (walker *w, int vi, uint32_t rec,
                              int32_t label);
MP_API int64_t memprobe_discover (walker *w, int vi, uint32_t parent,
                                  int edge, uint32_t name, int32_t label);
MP_API int memprobe_count_writer (lua_State *L, const void *p, size_t sz,
                                  void *ud);
MP_API double memprobe_now (void);
MP_API int memprobe_run (walker *w);
MP_API int memprobe_settle (walker *w);
MP_API int memprobe_sort_protos (walker *w);

/* heapmodel.c: the model memprobe.heap calibrated (the table at index t),
** and the sizes of tables and strings by it */
MP_API double memprobe_getnum (lua_State *L, int t, const char *k);
MP_API void memprobe_readmodel (lua_State *L, int t, model *m);
MP_API uint32_t memprobe_ceillog2 (uint32_t x);
MP_API double memprobe_tablesize (const model *m, const uint32_t *nums,
                                  uint32_t nint, uint32_t nent);
MP_API double memprobe_stringsize (const model *m, size_t len);

/* heapmodel.c: calibration samples and helpers, registered by heap.c */
MP_API int memprobe_l_sample (lua_State *L);
MP_API int memprobe_l_dumpsize (lua_State *L);
MP_API int memprobe_l_thread (lua_State *L);
MP_API int memprobe_l_clock (lua_State *L);
MP_API int memprobe_l_walk_buffers (lua_State *L);

/* heap.c: the C functions that run the walk, whose frames are its own */
MP_API int memprobe_step_body (lua_State *L);
MP_API int memprobe_l_snapshot (lua_State *L);
MP_API int memprobe_l_step (lua_State *L);
MP_API int memprobe_l_rows (lua_State *L);

#endif
