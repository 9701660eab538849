/*
** internal.h: declarations shared by the C files of memprobe.core.
** Nothing here is exported: every symbol is hidden but luaopen_memprobe_core.
*/
#ifndef MEMPROBE_INTERNAL_H
#define MEMPROBE_INTERNAL_H

/* pread, O_CLOEXEC, mallinfo2, dladdr: include this header first. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lua.h"
#include "lauxlib.h"
#include "compat.h"

#if defined(__GNUC__)
#define MP_API  __attribute__((visibility("hidden")))
#else
#define MP_API
#endif

/* Roots a reader can be pointed at with config{}. */
enum { MP_PROC = 0, MP_SYS = 1 };

#define MP_ROOTMAX   512   /* longest root accepted by config{} */
#define MP_PATHMAX   1024  /* root + relative path */
#define MP_NSLOTS    16    /* kept-open files per state */

typedef struct mp_slot {
  int fd;                   /* -1 when free */
  int whole;                /* the kernel makes it in one go */
  char path[MP_PATHMAX];    /* full path, the key */
} mp_slot;

/* A read buffer: malloc'ed, off the Lua heap, grown by reads. */
typedef struct mp_buf {
  char *p;
  size_t cap;
} mp_buf;

/*
** Per-state context: one per lua_State, reached as upvalue 1 of every
** function in memprobe.core, so two states never share mutable C data.
*/
typedef struct mp_ctx {
  char root[2][MP_ROOTMAX];  /* "/proc" and "/sys", or config{} roots */
  pid_t pid;                 /* owner of the kept fds (/proc/self!) */
  volatile unsigned char *alive;  /* 1, and 0 in a forked child */
  unsigned next;             /* round-robin victim when slots are full */
  mp_slot slot[MP_NSLOTS];
  mp_buf *bufs;              /* bufs[i]: the buffer of the reader at depth i */
  unsigned nbufs;
  unsigned depth;            /* readers running (memprobe_leased) */
  uintptr_t outer;           /* the frame of the outermost of them */
  int down;                  /* the C stack grows towards lower addresses */
  long pagesize;
  size_t heap_bytes;         /* C buffers held by heap walks (heap.c) */
} mp_ctx;

#define MP_CTX_MT  "memprobe.Context"

/* core.c */
MP_API mp_ctx *memprobe_ctx (lua_State *L);
MP_API void memprobe_register (lua_State *L, const luaL_Reg *l);

/* procfs.c: reading. A reader runs through memprobe_leased, which lends
** it a buffer of its own for the whole call; memprobe_read fills it. */
#define MP_ENOTREG   (-1)  /* not a regular file, nor a procfs/sysfs one */
#define MP_ENOTPROC  (-2)  /* a write target that is not a procfs file */
MP_API int memprobe_leased (lua_State *L, lua_CFunction f, int nup);
/* Defines the Lua function 'name' (upvalue: the context) as its body,
** name_, run through memprobe_leased: MP_READER(l_meminfo) { ... } */
#define MP_READER(name) \
  static int name##_ (lua_State *L); \
  static int name (lua_State *L) { return memprobe_leased(L, name##_, 1); } \
  static int name##_ (lua_State *L)
MP_API void memprobe_freebufs (mp_ctx *c);
MP_API int memprobe_stack_down (void);
MP_API int memprobe_read (mp_ctx *c, int root, const char *rel,
                          const char **data, size_t *len);
MP_API int memprobe_read_nocache (mp_ctx *c, int root,
                                  const char *rel, const char **data,
                                  size_t *len);
MP_API int memprobe_read_path (mp_ctx *c, const char *path,
                               const char **data, size_t *len);
MP_API int memprobe_result (lua_State *L, int err, const char *fmt, ...);
MP_API int memprobe_write_file (const char *path, const char *data,
                                size_t len);
MP_API int memprobe_fail (lua_State *L, mp_ctx *c, int root, const char *rel,
                          int err);
MP_API void memprobe_closeall (mp_ctx *c);
MP_API void memprobe_watch_fork (mp_ctx *c);
MP_API void memprobe_unwatch_fork (mp_ctx *c);
MP_API int memprobe_into (lua_State *L, int arg);
MP_API void memprobe_noargs (lua_State *L);

/*
** The keys a reader's fields had last time, in order: e[i] is field i.
** fill.c keeps one per reader, next to the Lua string of each key;
** memprobe_parse_kv_seq checks a new read against it in place, and keeps
** there the whole line it last parsed for the key, with its value.
*/
#define MP_KEYMAX   64  /* the parsers report keys of 1 to 64 bytes */
#define MP_LINEMAX  53  /* longest key or line kept: an entry is 64 bytes */
typedef struct mp_key {
  int64_t v;              /* the kept line's value */
  unsigned char n;        /* the key's length; 0 when there is none */
  unsigned char len;      /* the kept line's, newline included; 0: none */
  unsigned char kb;       /* the kept line's value is in kB */
  char k[MP_LINEMAX];     /* the key, and after it the rest of the line */
} mp_key;
typedef struct mp_keys {
  size_t cap;
  mp_key *e;              /* malloc'ed, cap of them */
  /* what a refill may leave alone (fill.c: memprobe_fill_again) */
  unsigned fills;         /* refills started; a nested one changes it */
  size_t whole;           /* fields of the last whole refill; 0: none */
  size_t counted;         /* fields whose keys were checked for repeats */
  int rekeyed;            /* a key changed since then */
  int repeats;            /* two of those fields have the same key */
} mp_keys;

/* fill.c: refilling a table by line, with the key strings of last time
** (a keys table per reader, made by memprobe_fill_keys). */
typedef struct mp_fill {
  lua_State *L;
  int t, keys, n;           /* the table filled, the keys table, fields */
  mp_keys *k;
  unsigned fill;            /* this refill's number (k->fills) */
  size_t again;             /* the first 'again' fields may be left alone */
  int nested;               /* run inside another reader (a finalizer's) */
} mp_fill;
MP_API void memprobe_fill_keys (lua_State *L);
MP_API void memprobe_fill_start (mp_fill *f, lua_State *L, int t, int keys);
MP_API void memprobe_fill_again (mp_fill *f);
MP_API void memprobe_fill_check (mp_fill *f, int64_t kb);
MP_API void memprobe_fill_done (mp_fill *f);
MP_API void memprobe_fill_key (mp_fill *f, const char *key, size_t klen);
/* Pushes the key of the next field when the caller checked that it is
** the one of last time, k->e[f->n] (memprobe_parse_kv_seq). */
static inline void memprobe_fill_same (mp_fill *f) {
  lua_rawgeti(f->L, f->keys, (lua_Integer)++f->n);
}
/* Skips the next field when its line is the one kept in k->e[f->n] and
** the table already holds its value (memprobe_fill_again): 1 if so. */
static inline int memprobe_fill_kept (mp_fill *f) {
  if ((size_t)f->n >= f->again || f->k->fills != f->fill)
    return 0;
  f->n++;
  return 1;
}

/* parse.c: pure parsers, no Lua, fuzzed on their own */
typedef void (*mp_kv_cb) (void *ud, const char *key, size_t klen,
                          int64_t value, int unit_kb);
MP_API int memprobe_parse_kv (const char *s, size_t len, mp_kv_cb cb,
                              void *ud);
MP_API int memprobe_parse_pairs (const char *s, size_t len, mp_kv_cb cb,
                                 void *ud);
typedef void (*mp_seq_cb) (void *ud, size_t i, int64_t value, int unit_kb,
                           int kept);
MP_API int memprobe_parse_kv_seq (const char *s, size_t len,
                                  mp_keys *seq, mp_seq_cb same,
                                  mp_kv_cb cb, void *ud);
MP_API const char *memprobe_nextline (const char *s, const char *end);
MP_API const char *memprobe_line (const char *s, const char *end,
                                  const char **eol);
MP_API const char *memprobe_dataline (const char **s, const char *end,
                                      int comments, const char **eol);
MP_API size_t memprobe_countlines (const char *s, size_t len);
MP_API const char *memprobe_skipspace (const char *s, const char *end);
MP_API const char *memprobe_int64 (const char *s, const char *end,
                                   int64_t *v);
/*
** The one rule for sizes: n units (1 for bytes and counts, 1024 for kB,
** the page size for pages) as bytes, held to +-MP_BYTES_MAX (8 PiB, exact
** in a double) instead of overflowing; sums through memprobe_add. Inline:
** the hot readers convert every field.
*/
#define MP_BYTES_MAX  ((int64_t)1 << 53)
static inline int64_t memprobe_bytes (int64_t n, int64_t unit) {
  const uint64_t max = (uint64_t)MP_BYTES_MAX;
  uint64_t a = n < 0 ? 0 - (uint64_t)n : (uint64_t)n;
  uint64_t b = unit < 0 ? 0 - (uint64_t)unit : (uint64_t)unit;
  uint64_t p = (b != 0 && a > max / b) ? max : a * b;
  if (p > max)
    p = max;
  return ((n < 0) != (unit < 0)) ? -(int64_t)p : (int64_t)p;
}
static inline int64_t memprobe_add (int64_t a, int64_t b) {
  return memprobe_bytes(memprobe_bytes(a, 1) + memprobe_bytes(b, 1), 1);
}

/* zones.c: zoneinfo, buddyinfo and the NUMA node files */
enum {
  MP_ZI_ZONE,      /* "Node N, zone NAME": key = NAME, v = N */
  MP_ZI_FIELD,     /* a zone's "key value" line; "pages free" as "free" */
  MP_ZI_NODESTAT,  /* a line of the "per-node stats" block */
  MP_ZI_PROT,      /* one element of "protection: (...)", in order */
  MP_BI_ORDER      /* buddyinfo: the free block count of the next order */
};
typedef void (*mp_event_cb) (void *ud, int kind, const char *key,
                             size_t klen, int64_t v);
MP_API int memprobe_parse_zoneinfo (const char *s, size_t len,
                                    mp_event_cb cb, void *ud);
MP_API int memprobe_parse_buddyinfo (const char *s, size_t len,
                                     mp_event_cb cb, void *ud);
typedef void (*mp_int_cb) (void *ud, int64_t v);
MP_API int memprobe_parse_rangelist (const char *s, size_t len,
                                     mp_int_cb cb, void *ud);
MP_API int memprobe_parse_intlist (const char *s, size_t len,
                                   mp_int_cb cb, void *ud);
MP_API int memprobe_parse_nodememinfo (const char *s, size_t len,
                                       mp_kv_cb cb, void *ud);

/* sysvm.c: whitespace tables (/proc/swaps, /proc/sysvipc/shm), sysctls */
typedef void (*mp_cell_cb) (void *ud, int row, int col, const char *s,
                            size_t n);
MP_API int memprobe_parse_table (const char *s, size_t len, mp_cell_cb cb,
                                 void *ud);
MP_API int memprobe_parse_u64 (const char *s, size_t len, uint64_t *v);
MP_API size_t memprobe_unescape (const char *s, size_t n, char *out);
/* slab.c: one /proc/slabinfo cache line; -1 marks an absent tunable */
typedef struct mp_slab {
  const char *name;
  size_t nlen;
  int64_t active_objs, num_objs, objsize, objperslab, pagesperslab;
  int64_t limit, batchcount, sharedfactor;
  int64_t active_slabs, num_slabs, sharedavail;
} mp_slab;
typedef void (*mp_slab_cb) (void *ud, const mp_slab *s);
typedef void (*mp_node_cb) (void *ud, int node, int64_t v);
MP_API int memprobe_parse_slabinfo (const char *s, size_t len, int *major,
                                    int *minor, int *skipped, mp_slab_cb cb,
                                    void *ud);
MP_API int memprobe_parse_nodecounts (const char *s, size_t len, int64_t *v,
                                      mp_node_cb per_node, void *ud);

/* vmalloc.c: one /proc/vmallocinfo area; strings point into the buffer */
typedef struct mp_vmarea {
  const char *addr, *caller, *module, *phys;
  size_t alen, clen, flen, mlen, plen;  /* flen: caller without +off/len */
  int64_t size, pages;                  /* pages -1 when not printed */
  const char *kind;                     /* "vmalloc", "ioremap", ... */
  unsigned flags;                       /* bit i: flag word i was there */
} mp_vmarea;
#define MP_VM_IVMALLOC  2
#define MP_VM_IVPAGES   6
#define MP_VM_UNPURGED  (1u << 8)
typedef void (*mp_vmarea_cb) (void *ud, const mp_vmarea *a);
MP_API int memprobe_parse_vmallocinfo (const char *s, size_t len,
                                       int *skipped, mp_vmarea_cb cb,
                                       void *ud);

/* vmalloc.c: one /proc/allocinfo call site */
typedef struct mp_allocsite {
  int64_t bytes, calls, line;
  const char *file, *module, *func;
  size_t flen, mlen, fnlen;
  int accurate;                         /* -1 when not printed */
} mp_allocsite;
typedef void (*mp_allocsite_cb) (void *ud, const mp_allocsite *s);
MP_API int memprobe_parse_allocinfo (const char *s, size_t len,
                                     int *skipped, mp_allocsite_cb cb,
                                     void *ud);

/* process.c: pure parsers */
enum { MP_COUNT = 0, MP_BYTES = 1, MP_STRING = 2 };
typedef void (*mp_status_cb) (void *ud, const char *key, size_t klen,
                              int kind, int64_t value, const char *str,
                              size_t slen);
MP_API int memprobe_parse_status (const char *s, size_t len,
                                  mp_status_cb cb, void *ud);
MP_API int memprobe_parse_statm (const char *s, size_t len, int64_t *v,
                                 int max);
MP_API size_t memprobe_snakecase (const char *k, size_t klen, char *out,
                                  size_t cap);

/* cgroup.c: pure parsers */
typedef struct mp_cgpaths {
  const char *v1;  /* path of the v1 hierarchy with "memory", or NULL */
  size_t v1len;
  const char *v2;  /* path of the "0::" line, or NULL */
  size_t v2len;
} mp_cgpaths;
MP_API void memprobe_parse_proc_cgroup (const char *s, size_t len,
                                        mp_cgpaths *out);
MP_API int memprobe_parse_limit (const char *s, size_t len, int64_t *v);
/* A cgroup mount from mountinfo, unescaped; point[0] is '\0' for none. */
typedef struct mp_cgmount {
  char root[MP_PATHMAX];   /* the directory of the hierarchy mounted */
  char point[MP_PATHMAX];  /* where: an absolute path */
  int score;               /* how well it fits the cgroup's path */
} mp_cgmount;
typedef struct mp_cgmounts {
  mp_cgmount v1;  /* a "cgroup" mount with the memory controller */
  mp_cgmount v2;  /* a "cgroup2" mount */
} mp_cgmounts;
MP_API void memprobe_parse_mountinfo (const char *s, size_t len,
                                      const char *v1path,
                                      const char *v2path, mp_cgmounts *out);
MP_API void memprobe_cgroup_reldir (const char *path, const char *root,
                                    char *out);

/*
** meminfo.c: the free() arithmetic apart from Lua, so that fuzz/ runs the
** very code the binding runs. Feed meminfo to memprobe_free_meminfo; when
** it returns 1 (no MemAvailable) feed zoneinfo to memprobe_free_zoneinfo;
** then memprobe_free_finish fills out[] and 'have' (a bit per field in
** memprobe_free_names order). Values are held to +-MP_BYTES_MAX, far
** above any machine and exact in a double, so the sums cannot overflow;
** memprobe_free_finish returns -1 when MemTotal or MemFree is at the cap.
*/
#define MP_FREE_NIN   11
#define MP_FREE_NOUT  12
typedef struct mp_free {
  int64_t in[MP_FREE_NIN];    /* meminfo fields it needs, bytes */
  unsigned seen;              /* a bit per field of in[] */
  int64_t low;                /* sum of the zones' low watermarks, pages */
  int zones;                  /* zoneinfo "low" lines seen */
  int64_t out[MP_FREE_NOUT];  /* results, bytes */
  unsigned have;              /* a bit per field of out[] */
  int estimated;              /* available was estimated */
} mp_free;
MP_API extern const char *const memprobe_free_names[MP_FREE_NOUT];
MP_API int memprobe_free_meminfo (mp_free *f, const char *s, size_t len);
MP_API void memprobe_free_zoneinfo (mp_free *f, const char *s, size_t len);
MP_API int memprobe_free_finish (mp_free *f, int64_t pagesize);

/* one opener per concern file */
/*
** One opener per concern file. Each is called by luaopen_memprobe_core with
** the module table and the context on the stack, and registers its
** functions with memprobe_register.
*/
MP_API void memprobe_open_procfs (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_meminfo (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_zones (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_sysvm (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_slab (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_vmalloc (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_dropcaches (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_tracker (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_ledger (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_process (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_cgroup (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_clock (lua_State *L, mp_ctx *c);
/* clock.c: seconds on the monotonic clock, the one every timing and
** budget reads (memprobe.clock() in Lua) */
MP_API double memprobe_now (void);
MP_API void memprobe_open_textfile (lua_State *L, mp_ctx *c);
MP_API void memprobe_open_pids (lua_State *L, mp_ctx *c);

/*
** blocktab.c: block address -> tag, an open-addressing hash kept in the C
** heap so that the bookkeeping never shows up in what it measures. Pure C,
** no Lua: the allocator hook calls it.
*/
typedef struct mp_blk { uintptr_t key; unsigned tag; } mp_blk;
typedef struct mp_btab {
  mp_blk *v;       /* NULL until the first insertion */
  size_t mask;     /* capacity - 1; capacity is a power of two */
  size_t n;        /* entries in use */
} mp_btab;
MP_API int memprobe_btab_reserve (mp_btab *b);
MP_API void memprobe_btab_put (mp_btab *b, const void *p, unsigned tag);
MP_API unsigned memprobe_btab_get (const mp_btab *b, const void *p);
MP_API void memprobe_btab_del (mp_btab *b, const void *p);
MP_API void memprobe_btab_free (mp_btab *b);

/*
** tracker.c: the allocator hook. One mp_tracker per lua_State, malloc'ed
** (outside the heap it measures), reached through the state's cell
** (hookcell.c): the allocator's ud stays the host's.
*/
#define MP_NCLASS  65   /* histogram: classes 1..64 (2^k bytes) */
#define MP_NTAGS   16   /* osize type tags, variant bits folded away */

struct mp_cell;
struct mp_prof;

typedef struct mp_tracker {
  lua_Alloc f;            /* the allocator we chain to, and its ud */
  void *ud;
  size_t live, peak;
  size_t guard;           /* min(limit, mark), 0 in ledger mode: past
                             it, the hook takes the slow path */
  size_t limit;           /* SIZE_MAX when none */
  size_t mark;            /* watermark, SIZE_MAX when none or fired */
  int marked;             /* live crossed the mark; fn not called yet */
  size_t crossed;         /* live just after the crossing */
  int host;               /* installed by memprobe_newstate: host frees it */
  int ledger;             /* the block table is on */
  int sentinel;           /* a watermark sentinel is pending */
  unsigned cur;           /* tag charged for new blocks; 0 = none */
  unsigned ntags, tagcap; /* tag ids are 1..ntags */
  int64_t *tag_live;      /* live bytes per tag id */
  mp_btab blocks;
  uint64_t frees, reallocs, failed;  /* allocs: the sum of hist */
  uint64_t hist[MP_NCLASS];
  uint64_t type_n[MP_NTAGS], type_b[MP_NTAGS];
  struct mp_cell *cell;   /* the hook's way to this tracker */
  /* the fast path's one countdown (memprobe_rearm) and the profiler's */
  size_t left;            /* bytes that may grow before the slow path */
  size_t armed;           /* left when it was last reset */
  size_t sample;          /* bytes to the next sample then; SIZE_MAX: none */
  int freeslow;           /* frees take a look: ledger, or pseen */
  const unsigned char *pseen;  /* sampled live blocks per address bucket,
                                  NULL when there is none */
  struct mp_prof *prof;   /* the attached profile, or NULL */
} mp_tracker;

/*
** hookcell.c: what the hook finds for the ud it is called with: a cell,
** holding the tracker. Cells live as long as the process: a block made
** through the hook may come back to it after untrack() (5.5 external
** strings). A retired cell's tracker has no limit, mark or ledger: it
** forwards every call, and what it counts then is never read.
*/
typedef struct mp_cell {
  void *key;              /* the ud the hook is called with */
  lua_Alloc f;            /* what it forwards to */
  void *ud;
  mp_tracker *t;          /* &tr while a state tracks with it, else NULL */
  const void *owner;      /* the state's close sentinel; NULL: a host's */
  int closed;             /* the owner state is closing or closed */
  int boxed;              /* installed as the ud itself (key == cell) */
  unsigned gen;           /* changes at claim, retire and new handle */
  struct mp_cell *next;   /* the next in its bucket (table cells) */
  struct mp_cell *all;    /* every cell, for claims */
  mp_tracker tr;
} mp_cell;

/*
** Buckets of cells by ud, a fixed array so that the hook's lookup is a
** shift, a mask and a load; a bucket's cells are chained through 'next',
** the newest first. uds are pointers to structs, 16-aligned from malloc:
** their low bits say nothing, the next ones spread well enough.
*/
#define MP_CELLBITS  12
MP_API extern mp_cell *memprobe_cells[1 << MP_CELLBITS];

static inline mp_cell **memprobe_bucket (const void *ud) {
  return &memprobe_cells[((uintptr_t)ud >> 4) & ((1 << MP_CELLBITS) - 1)];
}

/*
** The hook's lookup, without a lock: the cell whose key is ud. Present by
** construction (a state calls memprobe_hook with a ud only after its cell
** was published, and cells never leave their bucket).
*/
static inline mp_cell *memprobe_cell_find (void *ud) {
  mp_cell *c = __atomic_load_n(memprobe_bucket(ud), __ATOMIC_ACQUIRE);
  while (c->key != ud)
    c = c->next;
  return c;
}

MP_API mp_cell *memprobe_cell_get (void *ud);
MP_API mp_tracker *memprobe_cell_claim (lua_Alloc f, void *ud,
                                        const void *owner, lua_Alloc *hf,
                                        void **hud);
MP_API void memprobe_cell_retire (mp_cell *c, int closed);
MP_API void memprobe_cell_closing (const void *owner);

#define MP_TRACKER_MT  "memprobe.Tracker"
#define MP_TRACKER_REG "memprobe.Tracker.state"

MP_API void *memprobe_hook (void *ud, void *ptr, size_t osize, size_t nsize);
MP_API void *memprobe_hook_boxed (void *ud, void *ptr, size_t osize,
                                  size_t nsize);
MP_API void memprobe_tracker_init (mp_tracker *t, lua_Alloc f, void *ud);
MP_API void memprobe_tracker_clear (mp_tracker *t);
MP_API mp_tracker *memprobe_current (lua_State *L);
MP_API mp_tracker *memprobe_track (lua_State *L);
MP_API void memprobe_guard (mp_tracker *t);
MP_API void memprobe_rearm (mp_tracker *t);
MP_API uint64_t memprobe_allocs (const mp_tracker *t);
MP_API void memprobe_safepoint (lua_State *L, mp_tracker *t, int protect);
MP_API void memprobe_open_heap (lua_State *L, mp_ctx *c);

/*
** profile.c: the sampled allocation-site profiler. memprobe_prof_note is
** the allocator's side (no Lua): the slow path calls it for every call it
** forwards while a profile is attached; memprobe_prof_forget for a free
** of a block whose address bucket holds a sampled block.
*/
#define MP_SEENBITS  16
static inline unsigned memprobe_seenslot (const void *p) {
  return (unsigned)(((uintptr_t)p >> 4) & ((1u << MP_SEENBITS) - 1));
}
MP_API void memprobe_prof_note (mp_tracker *t, void *p, void *ptr,
                                size_t osize, size_t nsize);
MP_API void memprobe_prof_forget (mp_tracker *t, void *ptr);
MP_API void memprobe_prof_detach (mp_tracker *t);
MP_API void memprobe_open_profile (lua_State *L, mp_ctx *c);

/* pprof.c: profile.proto, gzip'd, from neutral arrays (see there) */
typedef struct mp_pp_frame {
  const char *src, *func;     /* file, function name */
  int line, linedefined;
} mp_pp_frame;
typedef struct mp_pp_sample {
  int64_t v[4];               /* alloc objects, bytes, inuse objects, bytes */
  uint32_t n;                 /* frames, leaf first: 1-based frame indexes */
  const uint32_t *f;
} mp_pp_sample;
MP_API int memprobe_pprof_write (const char *path, const mp_pp_sample *s,
                                 size_t ns, const mp_pp_frame *f, size_t nf,
                                 int64_t period, int def);

/*
** heapbook.c: the heap walk's bookkeeping containers, in the C heap and
** counted in 'bytes' and '*total' (the context's heap_bytes). None copies
** its contents to grow: vectors add chunks that never move, indexes
** double a few entries per insertion. Pure C: NULL or 0 on no memory.
*/
typedef struct mp_book {
  size_t bytes;               /* held by one walk */
  size_t *total;              /* held by all walks of the state */
} mp_book;
/* Blocks of MP_MAPPED bytes and more are mapped, smaller ones malloc'ed. */
#define MP_MAPPED     (1u << 16)
MP_API void *memprobe_book_alloc (mp_book *b, void *p, size_t osz,
                                  size_t nsz);
/* Zeroed pages, mapped (the kernel clears each as it is first touched:
** nothing is cleared at once); size a multiple of MP_PAGE. Unmapping may
** give back any page-aligned part. */
#define MP_PAGE       4096u
#define MP_PAGES(n)   (((n) + MP_PAGE - 1) & ~(size_t)(MP_PAGE - 1))
MP_API void *memprobe_book_map (mp_book *b, size_t size);
MP_API void *memprobe_book_zalloc (mp_book *b, size_t size);
MP_API void memprobe_book_unmap (mp_book *b, void *p, size_t size);

#define MP_CHUNKBITS  12
#define MP_CHUNK      (1u << MP_CHUNKBITS)
typedef struct mp_vec {
  char **c;                   /* chunks of MP_CHUNK elements */
  uint32_t ccap, n;           /* chunk slots, elements */
} mp_vec;
#define MP_AT(v, i, T) \
  ((T *)(void *)(v)->c[(i) >> MP_CHUNKBITS] + ((i) & (MP_CHUNK - 1)))
MP_API void *memprobe_vec_push (mp_book *b, mp_vec *v, size_t elsize);
MP_API void memprobe_vec_free (mp_book *b, mp_vec *v, size_t elsize);

/* Hash of value 'value' into *h; 0 when that value is not indexed. */
typedef int (*mp_rehash) (const void *owner, uint32_t value, uint32_t *h);
typedef struct mp_index {
  uint32_t *v;                /* MP_SLOT per slot, 0 empty */
  uint32_t *nv;               /* the table of twice the size, while growing */
  uint32_t mask, nmask;       /* capacities - 1 (powers of two) */
  uint32_t n;                 /* values in v */
  size_t cleared;             /* bytes of nv cleared so far */
  uint32_t moved, upto;       /* values below upto move to nv in order */
  uint32_t *old;              /* the table nv replaced, being released */
  size_t oldsize, unmapped;   /* its bytes, and those released so far */
} mp_index;
/*
** A slot holds value + 1 in its low MP_IDXBITS bits and the top bits of
** the value's hash above them (0: empty). A probe compares those bits
** first and looks at the entry itself only when they match: a lookup that
** misses (every new object of a walk) then seldom reads a record, which
** is a cache miss at a random place of the bookkeeping.
*/
#define MP_IDXBITS  28
#define MP_IDXMASK  ((1u << MP_IDXBITS) - 1)
#define MP_IDXMAX   (MP_IDXMASK - 1)  /* the largest value an index holds */
#define MP_TAG(h)   ((uint32_t)(h) & ~MP_IDXMASK)
#define MP_SLOT(h, value)  (MP_TAG(h) | ((uint32_t)(value) + 1))
#define MP_VALUE(slot)     (((slot) & MP_IDXMASK) - 1)
/* Probes x for hash h: the loop body, run for the slots whose hash bits
** match, tests MP_VALUE(x->v[i]); after the loop, i is the empty slot
** where the value goes. */
#define MP_PROBE(x, h, i) \
  for ((i) = (h) & (x)->mask; (x)->v[i] != 0; (i) = ((i) + 1) & (x)->mask) \
    if (MP_TAG((x)->v[i] ^ (h)) == 0)
MP_API int memprobe_index_init (mp_book *b, mp_index *x, uint32_t cap);
MP_API int memprobe_index_put (mp_book *b, mp_index *x, uint32_t slot,
                               uint32_t h, uint32_t value, uint32_t count,
                               mp_rehash rehash, const void *owner);
MP_API int memprobe_index_settle (mp_book *b, mp_index *x, uint32_t count,
                                  mp_rehash rehash, const void *owner);
MP_API void memprobe_index_free (mp_book *b, mp_index *x);
MP_API int memprobe_index_release (mp_book *b, mp_index *x);
MP_API int memprobe_vec_pop_chunk (mp_book *b, mp_vec *v, size_t elsize);

#endif
