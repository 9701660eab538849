/*
** meminfo.c: /proc/meminfo verbatim, the procps-compatible free()
** summary derived from it, and /proc/vmstat.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <string.h>


/* Sets table[key] = value (kB become bytes) at the index in ud. Pushing an
** existing short string does not allocate, so refilling a table doesn't. */
typedef struct setter { lua_State *L; int t; } setter;

static void set_field (void *ud, const char *key, size_t klen, int64_t v,
                       int kb) {
  setter *s = (setter *)ud;
  lua_pushlstring(s->L, key, klen);
  mp_pushint(s->L, kb ? v * 1024 : v);
  lua_rawset(s->L, s->t);
}

/* Reads rel under /proc into the table given as argument 1 (or a new one)
** with parser p. */
static int read_into (lua_State *L, const char *rel,
                      int (*p) (const char *, size_t, mp_kv_cb, void *)) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len;
  setter s;
  int err;
  s.L = L;
  s.t = memprobe_into(L, 1);
  if ((err = memprobe_read(c, MP_PROC, rel, &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, rel, err);
  p(data, len, set_field, &s);
  lua_settop(L, s.t);
  return 1;
}

/***
Every /proc/meminfo key verbatim (`MemTotal`, `Active(file)`,
`HugePages_Total` ...). kB become bytes; unit-less counts stay counts;
absent keys are nil. Lines that do not parse (2.4-style `Mem:` byte lines)
are skipped.
@function meminfo
@tparam[opt] table into a table to refill: no garbage once warm
@treturn table the fields, or nil, message, errno
*/
static int l_meminfo (lua_State *L) {
  return read_into(L, "meminfo", memprobe_parse_kv);
}

/***
Every /proc/vmstat counter as a number (pages or events, as the kernel
counts them; `pgpgin`/`pgpgout` are KiB).
@function vmstat
@tparam[opt] table into a table to refill
@treturn table the counters, or nil, message, errno
*/
static int l_vmstat (lua_State *L) {
  return read_into(L, "vmstat", memprobe_parse_pairs);
}

/* The meminfo fields free() needs, in bytes; 'seen' has a bit per field. */
enum { TOTAL, MFREE, AVAIL, BUFFERS, CACHED, SRECL, SHMEM, STOTAL, SFREE,
       AFILE, IFILE, NFIELDS };
static const char *const fieldname[NFIELDS] = {
  "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached",
  "SReclaimable", "Shmem", "SwapTotal", "SwapFree", "Active(file)",
  "Inactive(file)"
};

typedef struct summary {
  int64_t v[NFIELDS];
  unsigned seen;
  int64_t low;  /* sum of the zones' low watermarks, in pages */
} summary;

static void pick_field (void *ud, const char *key, size_t klen, int64_t v,
                        int kb) {
  summary *m = (summary *)ud;
  int i;
  for (i = 0; i < NFIELDS; i++)
    if (strncmp(fieldname[i], key, klen) == 0 && fieldname[i][klen] == '\0') {
      m->v[i] = kb ? v * 1024 : v;
      m->seen |= 1u << i;
      return;
    }
}

static void sum_low (void *ud, const char *key, size_t klen, int64_t v,
                     int kb) {
  (void)kb;
  if (klen == 3 && memcmp(key, "low", 3) == 0)
    ((summary *)ud)->low += v;
}

static int has (const summary *m, int i) { return (m->seen >> i) & 1; }

static int64_t min64 (int64_t a, int64_t b) { return a < b ? a : b; }

/*
** MemAvailable for kernels before 3.14, computed as the kernel's
** si_mem_available() does (and psutil after it): free memory above the
** low watermarks, plus the half of the page cache and of reclaimable slab
** that can go without pushing the machine below them.
*/
static int64_t estimate_available (const summary *m, int64_t pagesize) {
  int64_t low = m->low * pagesize;
  int64_t pagecache = m->v[AFILE] + m->v[IFILE];
  int64_t avail = m->v[MFREE] - low;
  avail += pagecache - min64(pagecache / 2, low);
  avail += m->v[SRECL] - min64(m->v[SRECL] / 2, low);
  return avail < 0 ? 0 : avail;
}

static void set_int (lua_State *L, int t, const char *k, int ok, int64_t v) {
  if (ok)
    mp_pushint(L, v);
  else
    lua_pushnil(L);
  lua_setfield(L, t, k);
}

/*
** free([into]): the summary procps >= 4.0.1 prints. 'used' is
** total - available (procps 4, psutil 7.1); 'used_classic' is the older
** total - free - buffers - cache. 'cache' includes SReclaimable, as
** procps counts it.
*/
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
static int l_free (lua_State *L) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len;
  summary m;
  int t, err, estimated = 0, bc;
  int64_t avail, cache, used, classic;
  memset(&m, 0, sizeof(m));
  t = memprobe_into(L, 1);
  if ((err = memprobe_read(c, MP_PROC, "meminfo", &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, "meminfo", err);
  memprobe_parse_kv(data, len, pick_field, &m);
  if (!has(&m, TOTAL) || !has(&m, MFREE)) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s/meminfo: no MemTotal or MemFree line",
                    c->root[MP_PROC]);
    lua_pushinteger(L, 0);
    return 3;
  }
  avail = m.v[AVAIL];
  if (!has(&m, AVAIL) || avail == 0) {
    estimated = 1;
    avail = m.v[MFREE];
    if (memprobe_read(c, MP_PROC, "zoneinfo", &data, &len) == 0 &&
        memprobe_parse_pairs(data, len, sum_low, &m) > 0)
      avail = estimate_available(&m, c->pagesize);
  }
  cache = m.v[CACHED] + m.v[SRECL];
  bc = has(&m, BUFFERS) && has(&m, CACHED);
  classic = m.v[TOTAL] - m.v[MFREE] - m.v[BUFFERS] - cache;
  used = m.v[TOTAL] - avail;
  if (used < 0)  /* procps does the same */
    used = m.v[TOTAL] - m.v[MFREE];
  set_int(L, t, "total", 1, m.v[TOTAL]);
  set_int(L, t, "free", 1, m.v[MFREE]);
  set_int(L, t, "used", 1, used);
  set_int(L, t, "used_classic", bc, classic);
  set_int(L, t, "shared", has(&m, SHMEM), m.v[SHMEM]);
  set_int(L, t, "buffers", has(&m, BUFFERS), m.v[BUFFERS]);
  set_int(L, t, "cache", has(&m, CACHED), cache);
  set_int(L, t, "buff_cache", bc, m.v[BUFFERS] + cache);
  set_int(L, t, "available", 1, avail);
  lua_pushboolean(L, estimated);
  lua_setfield(L, t, "available_estimated");
  set_int(L, t, "swap_total", has(&m, STOTAL), m.v[STOTAL]);
  set_int(L, t, "swap_free", has(&m, SFREE), m.v[SFREE]);
  set_int(L, t, "swap_used", has(&m, STOTAL) && has(&m, SFREE),
          m.v[STOTAL] - m.v[SFREE]);
  lua_settop(L, t);
  return 1;
}

void memprobe_open_meminfo (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "free",    l_free },
    { "meminfo", l_meminfo },
    { "vmstat",  l_vmstat },
    { NULL, NULL }
  };
  (void)c;
  memprobe_register(L, funcs);
}
