/*
** meminfo.c: /proc/meminfo verbatim, the procps-compatible free()
** summary derived from it, and /proc/vmstat.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <errno.h>
#include <string.h>


/* Sets t[key] = value (kB become bytes), the key string from the
** reader's keys table (fill.c): refilling a table does not allocate. */
static void set_field (void *ud, const char *key, size_t klen, int64_t v,
                       int kb) {
  mp_fill *f = (mp_fill *)ud;
  memprobe_fill_key(f, key, klen);
  mp_pushint(f->L, memprobe_bytes(v, kb ? 1024 : 1));
  lua_rawset(f->L, f->t);
}

/* The same for a field whose key is the one of last time; nothing when
** its line is too and the table has its value. */
static void set_same (void *ud, size_t i, int64_t v, int kb, int kept) {
  mp_fill *f = (mp_fill *)ud;
  (void)i;
  if (kept && memprobe_fill_kept(f))
    return;
  memprobe_fill_same(f);
  mp_pushint(f->L, kb ? memprobe_bytes(v, 1024) : memprobe_bytes(v, 1));
  lua_rawset(f->L, f->t);
}

/* meminfo's lines come in the same order every time: checked against
** the keys of last time in place, parsed in full from the first that
** differs. */
static void fill_kv (mp_fill *f, const char *s, size_t len) {
  memprobe_fill_again(f);
  memprobe_fill_check(f, 1024);
  memprobe_parse_kv_seq(s, len, f->k, set_same, set_field, f);
  memprobe_fill_done(f);
}

static void fill_pairs (mp_fill *f, const char *s, size_t len) {
  memprobe_parse_pairs(s, len, set_field, f);
}

/* Reads rel under /proc into the table given as argument 1 (or a new one)
** with fill; upvalue 2 is the reader's keys table. */
static int read_into (lua_State *L, const char *rel,
                      void (*fill) (mp_fill *, const char *, size_t)) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len;
  mp_fill f;
  int err;
  memprobe_fill_start(&f, L, memprobe_into(L, 1), lua_upvalueindex(2));
  f.nested = c->depth > 1;
  if ((err = memprobe_read(c, MP_PROC, rel, &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, rel, err);
  fill(&f, data, len);
  lua_settop(L, f.t);
  return 1;
}

/***
Every /proc/meminfo key verbatim (`MemTotal`, `Active(file)`,
`HugePages_Total` ...). kB become bytes; unit-less counts stay counts;
absent keys are nil. Lines that do not parse (2.4-style `Mem:` byte lines)
are skipped.
@function meminfo
@tparam[opt] table into a table to refill: no garbage once warm. A refill
writes only the fields whose line changed since this table's last refill,
so keep the table for meminfo alone: a value the program or another
reader writes into one of its fields may stay until the kernel changes that
line (a table emptied is refilled whole)
@treturn table the fields, or nil, message, errno
*/
static int meminfo (lua_State *L) {
  return read_into(L, "meminfo", fill_kv);
}

static int l_meminfo (lua_State *L) {
  return memprobe_leased(L, meminfo, 2);
}

/***
Every /proc/vmstat counter as a number (pages or events, as the kernel
counts them; `pgpgin`/`pgpgout` are KiB).
@function vmstat
@tparam[opt] table into a table to refill
@treturn table the counters, or nil, message, errno
*/
static int vmstat (lua_State *L) {
  return read_into(L, "vmstat", fill_pairs);
}

static int l_vmstat (lua_State *L) {
  return memprobe_leased(L, vmstat, 2);
}

/* The meminfo fields free() needs, in mp_free.in[] order. */
enum { TOTAL, MFREE, AVAIL, BUFFERS, CACHED, SRECL, SHMEM, STOTAL, SFREE,
       AFILE, IFILE };
static const char *const fieldname[MP_FREE_NIN] = {
  "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached",
  "SReclaimable", "Shmem", "SwapTotal", "SwapFree", "Active(file)",
  "Inactive(file)"
};

/* The fields free() returns, in mp_free.out[] order. */
enum { O_TOTAL, O_FREE, O_USED, O_CLASSIC, O_SHARED, O_BUFFERS, O_CACHE,
       O_BC, O_AVAIL, O_STOTAL, O_SFREE, O_SUSED };
const char *const memprobe_free_names[MP_FREE_NOUT] = {
  "total", "free", "used", "used_classic", "shared", "buffers", "cache",
  "buff_cache", "available", "swap_total", "swap_free", "swap_used"
};

static void pick_field (void *ud, const char *key, size_t klen, int64_t v,
                        int kb) {
  mp_free *f = (mp_free *)ud;
  int i;
  for (i = 0; i < MP_FREE_NIN; i++)
    if (strlen(fieldname[i]) == klen && memcmp(fieldname[i], key, klen) == 0) {
      f->in[i] = memprobe_bytes(v, kb ? 1024 : 1);
      f->seen |= 1u << i;
      return;
    }
}

static void sum_low (void *ud, const char *key, size_t klen, int64_t v,
                     int kb) {
  mp_free *f = (mp_free *)ud;
  (void)kb;
  if (klen == 3 && memcmp(key, "low", 3) == 0) {
    f->low = memprobe_add(f->low, v);
    f->zones++;
  }
}

static int has (const mp_free *f, int i) { return (f->seen >> i) & 1; }

static int64_t min64 (int64_t a, int64_t b) { return a < b ? a : b; }

/*
** MemAvailable for kernels before 3.14, computed as the kernel's
** si_mem_available() does (and psutil after it): free memory above the
** low watermarks, plus the half of the page cache and of reclaimable slab
** that can go without pushing the machine below them.
*/
static int64_t estimate_available (const mp_free *f, int64_t pagesize) {
  int64_t ps = pagesize > 0 ? pagesize : 4096;
  int64_t pages = f->low < 0 ? 0 : min64(f->low, MP_BYTES_MAX / ps);
  int64_t low = pages * ps;
  int64_t pagecache = f->in[AFILE] + f->in[IFILE];
  int64_t avail = f->in[MFREE] - low;
  avail += pagecache - min64(pagecache / 2, low);
  avail += f->in[SRECL] - min64(f->in[SRECL] / 2, low);
  return avail < 0 ? 0 : avail;
}

/* Parses meminfo; returns 1 when MemAvailable is missing (or 0) and
** zoneinfo is wanted for the estimate. */
int memprobe_free_meminfo (mp_free *f, const char *s, size_t len) {
  memset(f, 0, sizeof(*f));
  memprobe_parse_kv(s, len, pick_field, f);
  return !has(f, AVAIL) || f->in[AVAIL] == 0;
}

void memprobe_free_zoneinfo (mp_free *f, const char *s, size_t len) {
  memprobe_parse_pairs(s, len, sum_low, f);
}

static void put (mp_free *f, int i, int ok, int64_t v) {
  f->out[i] = v;
  if (ok)
    f->have |= 1u << i;
}

/*
** The summary procps >= 4.0.1 prints. 'used' is total - available
** (procps 4, psutil 7.1); 'used_classic' is the older
** total - free - buffers - cache. 'cache' includes SReclaimable, as
** procps counts it. Returns 0 when meminfo had no MemTotal or MemFree,
** -1 when one of them is out of range (8 PiB or more).
*/
int memprobe_free_finish (mp_free *f, int64_t pagesize) {
  const int64_t *v = f->in;
  int64_t avail = v[AVAIL], cache = v[CACHED] + v[SRECL], used;
  int bc = has(f, BUFFERS) && has(f, CACHED);
  f->have = 0;
  f->estimated = 0;
  if (!has(f, TOTAL) || !has(f, MFREE))
    return 0;
  if (v[TOTAL] >= MP_BYTES_MAX || v[MFREE] >= MP_BYTES_MAX)
    return -1;
  if (!has(f, AVAIL) || avail == 0) {
    f->estimated = 1;
    avail = f->zones > 0 ? estimate_available(f, pagesize) : v[MFREE];
  }
  used = v[TOTAL] - avail;
  if (used < 0)  /* procps does the same */
    used = v[TOTAL] - v[MFREE];
  put(f, O_TOTAL, 1, v[TOTAL]);
  put(f, O_FREE, 1, v[MFREE]);
  put(f, O_USED, 1, used);
  put(f, O_CLASSIC, bc, v[TOTAL] - v[MFREE] - v[BUFFERS] - cache);
  put(f, O_SHARED, has(f, SHMEM), v[SHMEM]);
  put(f, O_BUFFERS, has(f, BUFFERS), v[BUFFERS]);
  put(f, O_CACHE, has(f, CACHED), cache);
  put(f, O_BC, bc, v[BUFFERS] + cache);
  put(f, O_AVAIL, 1, avail);
  put(f, O_STOTAL, has(f, STOTAL), v[STOTAL]);
  put(f, O_SFREE, has(f, SFREE), v[SFREE]);
  put(f, O_SUSED, has(f, STOTAL) && has(f, SFREE), v[STOTAL] - v[SFREE]);
  return 1;
}

/***
The summary procps `free` (>= 4.0.1) prints, in bytes: `total used free
shared buffers cache buff_cache available swap_total swap_used swap_free`,
plus `used_classic` (total - free - buffers - cache) and
`available_estimated` (true when the kernel has no MemAvailable and it was
estimated from the zones' low watermarks).
@function free
@tparam[opt] table into a table to refill
@treturn table the summary, or nil, message, errno
*/
MP_READER(l_free) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len;
  mp_free f;
  int t, err, i;
  t = memprobe_into(L, 1);
  if ((err = memprobe_read(c, MP_PROC, "meminfo", &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, "meminfo", err);
  if (memprobe_free_meminfo(&f, data, len)) {
    /* no zoneinfo only makes the estimate cruder; no memory must raise */
    if ((err = memprobe_read(c, MP_PROC, "zoneinfo", &data, &len)) == 0)
      memprobe_free_zoneinfo(&f, data, len);
    else if (err == ENOMEM)
      return memprobe_fail(L, c, MP_PROC, "zoneinfo", err);
  }
  if ((i = memprobe_free_finish(&f, c->pagesize)) != 1)
    return memprobe_result(L, 0, i == 0
                           ? "%s/meminfo: no MemTotal or MemFree line"
                           : "%s/meminfo: MemTotal or MemFree out of range "
                             "(8 PiB or more)", c->root[MP_PROC]);
  for (i = 0; i < MP_FREE_NOUT; i++) {
    if ((f.have >> i) & 1)
      mp_pushint(L, f.out[i]);
    else
      lua_pushnil(L);
    lua_setfield(L, t, memprobe_free_names[i]);
  }
  lua_pushboolean(L, f.estimated);
  lua_setfield(L, t, "available_estimated");
  lua_settop(L, t);
  return 1;
}

/* Module table at -2, context at -1. meminfo and vmstat have a second
** upvalue each: the table of their key strings by line. */
void memprobe_open_meminfo (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "free",    l_free },
    { NULL, NULL }
  };
  static const luaL_Reg keyed[] = {
    { "meminfo", l_meminfo },
    { "vmstat",  l_vmstat },
    { NULL, NULL }
  };
  int i;
  (void)c;
  memprobe_register(L, funcs);
  for (i = 0; keyed[i].name != NULL; i++) {
    lua_pushvalue(L, -1);
    memprobe_fill_keys(L);
    lua_pushcclosure(L, keyed[i].func, 2);
    lua_setfield(L, -3, keyed[i].name);
  }
}
