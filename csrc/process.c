/*
** process.c: the process's own view of its memory. rss() is the hot path
** (one pread of the kept /proc/self/statm); process() is status + statm;
** smaps() is smaps_rollup, or the sum over smaps on kernels before 4.14;
** mallinfo() is glibc's C heap.
*/
/***
@submodule memprobe
*/
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#if defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define MP_HAVE_MALLINFO2  1
#endif


/*
** {======================================================
** Pure parsers (fuzzed on their own)
** =======================================================
*/

/*
** Reads the numbers of a statm line (size resident shared text lib data
** dt, in pages) into v[0..max-1]. Returns how many were read.
*/
int memprobe_parse_statm (const char *s, size_t len, int64_t *v, int max) {
  const char *end = s + len;
  int n = 0;
  while (n < max) {
    const char *p;
    s = memprobe_skipspace(s, end);
    if ((p = memprobe_int64(s, end, &v[n])) == NULL || v[n] < 0)
      break;
    n++;
    s = p;
  }
  return n;
}

/* Fields of /proc/<pid>/status that look numeric but are not decimal
** counts: hex masks, an octal umask, lists, per-namespace pid lists
** (one number or several, depending on nesting). */
static const char *const not_counts[] = {
  "CapAmb", "CapBnd", "CapEff", "CapInh", "CapPrm", "Cpus_allowed",
  "Cpus_allowed_list", "Mems_allowed", "Mems_allowed_list", "NSpgid",
  "NSpid", "NSsid", "NStgid", "ShdPnd", "SigBlk", "SigCgt", "SigIgn",
  "SigPnd", "Umask", "untag_mask", NULL
};

/* Fields of status kept as strings. */
static const char *const string_fields[] = { "Name", "State", "Umask", NULL };

/* k may hold NULs: compare lengths first, never read past *list. The
** first byte goes before: status runs this on every line. */
static int in_list (const char *const *list, const char *k, size_t klen) {
  for (; *list != NULL; list++)
    if ((*list)[0] == k[0] && strlen(*list) == klen &&
        memcmp(*list, k, klen) == 0)
      return 1;
  return 0;
}

/*
** /proc/<pid>/status: "Key:\tvalue" lines. Reports "n kB" as MP_BYTES
** (the caller multiplies), bare decimal numbers as MP_COUNT, Name, State
** and Umask as MP_STRING (trimmed); skips masks, lists and anything else.
** Returns the number of fields reported.
*/
int memprobe_parse_status (const char *s, size_t len, mp_status_cb cb,
                           void *ud) {
  const char *end = s + len;
  int n = 0;
  while (s < end) {
    const char *line = s, *colon, *p, *eol;
    size_t klen;
    int64_t v;
    s = memprobe_line(line, end, &eol);
    colon = memchr(line, ':', (size_t)(eol - line));
    if (colon == NULL || colon == line || colon - line > 64)
      continue;
    klen = (size_t)(colon - line);
    p = memprobe_skipspace(colon + 1, eol);
    if (in_list(string_fields, line, klen)) {
      const char *q = eol;
      while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
      cb(ud, line, klen, MP_STRING, 0, p, (size_t)(q - p));
      n++;
      continue;
    }
    if (in_list(not_counts, line, klen))
      continue;
    if ((p = memprobe_int64(p, eol, &v)) == NULL)
      continue;
    p = memprobe_skipspace(p, eol);
    if (eol - p >= 2 && p[0] == 'k' && p[1] == 'B') {
      p = memprobe_skipspace(p + 2, eol);
      if (p == eol) {
        cb(ud, line, klen, MP_BYTES, v, NULL, 0);
        n++;
      }
    }
    else if (p == eol) {
      cb(ud, line, klen, MP_COUNT, v, NULL, 0);
      n++;
    }
  }
  return n;
}

/*
** smaps names to Lua names: "Private_Clean" -> "private_clean",
** "SwapPss" -> "swap_pss", "AnonHugePages" -> "anon_huge_pages",
** "KSM" -> "ksm". An underscore goes before a capital that follows a
** lowercase letter. Returns the length written (at most cap - 1).
*/
size_t memprobe_snakecase (const char *k, size_t klen, char *out,
                           size_t cap) {
  size_t i, o = 0;
  for (i = 0; i < klen && o + 2 < cap; i++) {
    char ch = k[i];
    if (ch >= 'A' && ch <= 'Z') {
      if (i > 0 && k[i - 1] >= 'a' && k[i - 1] <= 'z')
        out[o++] = '_';
      ch = (char)(ch - 'A' + 'a');
    }
    out[o++] = ch;
  }
  out[o] = '\0';
  return o;
}

/* }====================================================== */


/*
** Checks the optional pid at 'arg' and writes "self" or the pid into
** buf. Returns 1 for another process, 0 for self. Misuse raises.
*/
static int check_pid (lua_State *L, int arg, char *buf, size_t cap) {
  lua_Number n;
  if (lua_isnoneornil(L, arg)) {
    snprintf(buf, cap, "self");
    return 0;
  }
  if (lua_type(L, arg) != LUA_TNUMBER)
    return luaL_argerror(L, arg, lua_pushfstring(L,
                         "pid expected, got %s", luaL_typename(L, arg)));
  n = lua_tonumber(L, arg);
  if (!(n >= 1 && n <= INT_MAX && n == (lua_Number)(int)n))
    return luaL_argerror(L, arg, "pid must be a positive integer");
  snprintf(buf, cap, "%d", (int)n);
  return 1;
}

/*
** Reads <pid>/<file>: the kept fd for self, a one-off open for another
** pid, so that other processes' files never take a kept slot.
*/
static int read_pid (mp_ctx *c, int other, const char *rel,
                     const char **data, size_t *len) {
  return other ? memprobe_read_nocache(c, MP_PROC, rel, data, len)
               : memprobe_read(c, MP_PROC, rel, data, len);
}

/* nil, message, errno for a /proc/<pid> file; names the vanished process
** and the ptrace rule, which the generic hints cannot match by prefix. */
static int pid_fail (lua_State *L, mp_ctx *c, int other, const char *rel,
                     int err) {
  if (other && (err == ENOENT || err == ESRCH))
    return memprobe_result(L, err, "%s/%s: %s (no such process)",
                           c->root[MP_PROC], rel, strerror(err));
  if (other && (err == EACCES || err == EPERM))
    return memprobe_result(L, err, "%s/%s: %s (needs the same user, or "
                           "CAP_SYS_PTRACE)", c->root[MP_PROC], rel,
                           strerror(err));
  return memprobe_fail(L, c, MP_PROC, rel, err);
}

/***
Resident bytes of this process: statm's resident pages times the page
size, from one pread of a kept file. Allocates nothing in the Lua heap
once warm, so it can be polled from a game loop.
@function rss
@treturn integer bytes, or nil, message, errno
*/
MP_READER(l_rss) {
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len;
  int64_t v[2];
  int err;
  memprobe_noargs(L);
  if ((err = memprobe_read(c, MP_PROC, "self/statm", &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, "self/statm", err);
  if (memprobe_parse_statm(data, len, v, 2) < 2)
    return memprobe_result(L, 0, "%s/self/statm: unexpected content",
                           c->root[MP_PROC]);
  mp_pushint(L, memprobe_bytes(v[1], c->pagesize));
  return 1;
}

/* t[key] = value; the key strings of self's status are kept (fill.c),
** another process's are made anew: they do not follow self's lines. */
static void set_status (void *ud, const char *key, size_t klen, int kind,
                        int64_t v, const char *str, size_t slen) {
  mp_fill *f = (mp_fill *)ud;
  if (f->keys != 0)
    memprobe_fill_key(f, key, klen);
  else
    lua_pushlstring(f->L, key, klen);
  if (kind == MP_STRING)
    lua_pushlstring(f->L, str, slen);
  else
    mp_pushint(f->L, memprobe_bytes(v, kind == MP_BYTES ? 1024 : 1));
  lua_rawset(f->L, f->t);
}

/***
A process's /proc/<pid>/status and statm. Every decimal status field
under its kernel name (`VmRSS VmHWM VmSize VmData VmSwap RssAnon RssFile
RssShmem Threads Pid PPid` ...; kB as bytes, counts as counts), `Name`,
`State` and `Umask` as strings; masks and lists (`SigBlk`, `CapEff`,
`Cpus_allowed`, `NSpid` ...) are left out. `statm` is `{ size, resident,
shared, text, data }` in bytes. Refilling `into` (its `statm` table
included) allocates nothing once warm; `process(into)` reads self.
@function process
@tparam[opt] integer pid a positive pid; this process when absent
@tparam[opt] table into a table to refill
@treturn table the fields, or nil, message, errno (ENOENT or ESRCH when
the process does not exist)
*/
static int process (lua_State *L) {
  static const char *const statm_names[] = {
    "size", "resident", "shared", "text", NULL, "data"
  };
  mp_ctx *c = memprobe_ctx(L);
  char pid[16], rel[48];
  const char *data;
  size_t len;
  int64_t v[6];
  int other, err, n, i, st;
  mp_fill s;
  if (lua_istable(L, 1) && lua_isnone(L, 2)) {  /* process(into) */
    lua_pushnil(L);
    lua_insert(L, 1);
  }
  other = check_pid(L, 1, pid, sizeof(pid));
  memprobe_fill_start(&s, L, memprobe_into(L, 2), lua_upvalueindex(2));
  if (other)
    s.keys = 0;
  snprintf(rel, sizeof(rel), "%s/status", pid);
  if ((err = read_pid(c, other, rel, &data, &len)) != 0)
    return pid_fail(L, c, other, rel, err);
  if (memprobe_parse_status(data, len, set_status, &s) == 0)
    return memprobe_result(L, 0, "%s/%s: unexpected content",
                           c->root[MP_PROC], rel);
  snprintf(rel, sizeof(rel), "%s/statm", pid);
  if ((err = read_pid(c, other, rel, &data, &len)) != 0)
    return pid_fail(L, c, other, rel, err);
  n = memprobe_parse_statm(data, len, v, 6);
  lua_getfield(L, s.t, "statm");
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 5);
    lua_pushvalue(L, -1);
    lua_setfield(L, s.t, "statm");
  }
  st = lua_gettop(L);
  for (i = 0; i < 6; i++) {
    if (statm_names[i] == NULL)  /* lib: always 0 since 2.6 */
      continue;
    if (i < n)
      mp_pushint(L, memprobe_bytes(v[i], c->pagesize));
    else
      lua_pushnil(L);
    lua_setfield(L, st, statm_names[i]);
  }
  lua_settop(L, s.t);
  return 1;
}

/* Everything but the per-VMA page sizes and the mapping's own size. */
static int summable (const char *k, size_t klen) {
  static const char *const skip[] = {
    "KernelPageSize", "MMUPageSize", "Size", NULL
  };
  return !in_list(skip, k, klen);
}

typedef struct smaps_acc { lua_State *L; int t; int sum; } smaps_acc;

/* Sets (rollup) or adds (smaps) t[snake_case(key)] in bytes. */
static void add_smaps (void *ud, const char *key, size_t klen, int64_t v,
                       int kb) {
  smaps_acc *a = (smaps_acc *)ud;
  char name[72];
  size_t n;
  if (!kb || !summable(key, klen))
    return;
  n = memprobe_snakecase(key, klen, name, sizeof(name));
  lua_pushlstring(a->L, name, n);
  if (a->sum) {
    lua_pushvalue(a->L, -1);
    lua_rawget(a->L, a->t);
    v = memprobe_add(memprobe_bytes(v, 1024),
                     (int64_t)lua_tointeger(a->L, -1));
    lua_pop(a->L, 1);
  }
  else
    v = memprobe_bytes(v, 1024);
  mp_pushint(a->L, v);
  lua_rawset(a->L, a->t);
}

/***
A process's /proc/<pid>/smaps_rollup in bytes under snake_case names:
`rss pss pss_anon pss_file pss_shmem pss_dirty shared_clean shared_dirty
private_clean private_dirty referenced anonymous swap swap_pss locked`
..., plus `uss` = private_clean + private_dirty (what the process would
give back by exiting) and `source`: "smaps_rollup", or "smaps" when the
kernel (before 4.14) has no rollup and every mapping was summed.
Another user's process needs CAP_SYS_PTRACE.
@function smaps
@tparam[opt] integer pid a positive pid; this process when absent
@treturn table the fields, or nil, message, errno
*/
MP_READER(l_smaps) {
  mp_ctx *c = memprobe_ctx(L);
  char pid[16], rel[48];
  const char *data;
  size_t len;
  int other = check_pid(L, 1, pid, sizeof(pid)), err;
  smaps_acc a;
  lua_settop(L, 1);
  lua_newtable(L);
  a.L = L;
  a.t = 2;
  a.sum = 0;
  snprintf(rel, sizeof(rel), "%s/smaps_rollup", pid);
  err = read_pid(c, other, rel, &data, &len);
  if (err == ENOENT) {  /* before 4.14, or the process is gone */
    a.sum = 1;
    snprintf(rel, sizeof(rel), "%s/smaps", pid);
    err = memprobe_read_nocache(c, MP_PROC, rel, &data, &len);
  }
  if (err != 0)
    return pid_fail(L, c, other, rel, err);
  if (memprobe_parse_kv(data, len, add_smaps, &a) == 0 && !a.sum)
    return memprobe_result(L, 0, "%s/%s: unexpected content",
                           c->root[MP_PROC], rel);
  lua_getfield(L, 2, "private_clean");
  lua_getfield(L, 2, "private_dirty");
  if (lua_isnumber(L, -1) && lua_isnumber(L, -2)) {
    mp_pushint(L, memprobe_add((int64_t)lua_tointeger(L, -1),
                               (int64_t)lua_tointeger(L, -2)));
    lua_setfield(L, 2, "uss");
  }
  lua_pop(L, 2);
  lua_pushstring(L, a.sum ? "smaps" : "smaps_rollup");
  lua_setfield(L, 2, "source");
  return 1;
}

/***
The C heap as glibc's mallinfo2 sees it, over every arena. Bytes: `arena`
(from sbrk), `hblkhd` (mmap'ed blocks), `uordblks` (in use), `fordblks`
(free), `fsmblks` (free fastbin blocks), `keepcost` (trimmable top);
counts: `ordblks smblks hblks`. Needs glibc 2.33 or later at build time.
@function mallinfo
@tparam[opt] table into a table to refill
@treturn table the figures, or nil, message, ENOSYS
*/
static int l_mallinfo (lua_State *L) {
#if defined(MP_HAVE_MALLINFO2)
  struct mallinfo2 mi = mallinfo2();
  int t = memprobe_into(L, 1);
  mp_pushint(L, mi.arena);    lua_setfield(L, t, "arena");
  mp_pushint(L, mi.ordblks);  lua_setfield(L, t, "ordblks");
  mp_pushint(L, mi.smblks);   lua_setfield(L, t, "smblks");
  mp_pushint(L, mi.hblks);    lua_setfield(L, t, "hblks");
  mp_pushint(L, mi.hblkhd);   lua_setfield(L, t, "hblkhd");
  mp_pushint(L, mi.fsmblks);  lua_setfield(L, t, "fsmblks");
  mp_pushint(L, mi.uordblks); lua_setfield(L, t, "uordblks");
  mp_pushint(L, mi.fordblks); lua_setfield(L, t, "fordblks");
  mp_pushint(L, mi.keepcost); lua_setfield(L, t, "keepcost");
  return 1;
#else
  if (!lua_isnoneornil(L, 1))
    luaL_checktype(L, 1, LUA_TTABLE);
  return memprobe_result(L, ENOSYS,
                         "mallinfo: not supported (needs glibc 2.33 or later)");
#endif
}

static int l_process (lua_State *L) {
  return memprobe_leased(L, process, 2);
}

void memprobe_open_process (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "mallinfo", l_mallinfo },
    { "rss",      l_rss },
    { "smaps",    l_smaps },
    { NULL, NULL }
  };
  (void)c;
  memprobe_register(L, funcs);
  lua_pushvalue(L, -1);  /* process() keeps the key strings of status */
  memprobe_fill_keys(L);
  lua_pushcclosure(L, l_process, 2);
  lua_setfield(L, -3, "process");
}
