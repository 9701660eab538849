/*
** sysvm.c: swap areas (/proc/swaps), the overcommit policy
** (/proc/sys/vm/overcommit_* with CommitLimit and Committed_AS) and
** SysV shared memory (/proc/sysvipc/shm, /proc/sys/kernel/shm*). The
** parsers come first and use no Lua, for the fuzz targets.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <stdio.h>
#include <string.h>


#define MP_MAXCOLS  64  /* table columns kept; the kernel prints 16 */


/*
** Whitespace-separated tables whose first non-blank line names the
** columns. Reports every cell as (row, col, text) with row 0 the header,
** and (row, -1, NULL, 0) after the last cell of each row. Cells past
** MP_MAXCOLS are counted but not reported. Returns the number of rows.
*/
int memprobe_parse_table (const char *s, size_t len, mp_cell_cb cb,
                          void *ud) {
  const char *end = s + len;
  int row = 0;
  while (s < end) {
    const char *eol, *next = memprobe_line(s, end, &eol);
    const char *p = memprobe_skipspace(s, eol);
    int col = 0;
    s = next;
    if (p == eol)
      continue;
    while (p < eol) {
      const char *q = p;
      while (q < eol && *q != ' ' && *q != '\t')
        q++;
      if (col < MP_MAXCOLS)
        cb(ud, row, col, p, (size_t)(q - p));
      col++;
      p = memprobe_skipspace(q, eol);
    }
    cb(ud, row, -1, NULL, 0);
    row++;
  }
  return row;
}

/*
** One unsigned decimal on its own, as a sysctl prints it: blanks and a
** newline around it are allowed, nothing else. Returns 0, or -1 when the
** text is something else or does not fit 64 bits.
*/
int memprobe_parse_u64 (const char *s, size_t len, uint64_t *v) {
  const char *end = s + len, *p = memprobe_skipspace(s, end), *start;
  uint64_t acc = 0;
  for (start = p; p < end && *p >= '0' && *p <= '9'; p++) {
    unsigned d = (unsigned)(*p - '0');
    if (acc > (UINT64_MAX - d) / 10)
      return -1;
    acc = acc * 10 + d;
  }
  if (p == start)
    return -1;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n'))
    p++;
  if (p != end)
    return -1;
  *v = acc;
  return 0;
}

/*
** The kernel escapes blanks, newlines and backslashes in paths it prints
** (seq_path) as \ooo octal. Decodes s[0..n) into out, which has room for
** n bytes (decoding never grows), and returns the decoded length.
*/
size_t memprobe_unescape (const char *s, size_t n, char *out) {
  size_t i = 0, o = 0;
  while (i < n) {
    if (s[i] == '\\' && n - i >= 4 &&
        s[i + 1] >= '0' && s[i + 1] <= '3' &&
        s[i + 2] >= '0' && s[i + 2] <= '7' &&
        s[i + 3] >= '0' && s[i + 3] <= '7') {
      out[o++] = (char)(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) |
                        (s[i + 3] - '0'));
      i += 4;
    }
    else
      out[o++] = s[i++];
  }
  return o;
}


/* ---------------------------------------------------------------------
** Lua bindings
** --------------------------------------------------------------------- */

/* A whole cell as an int64 (base 10, or 8 for perms). */
static int cell_int (const char *s, size_t n, int base, int64_t *v) {
  const char *end = s + n;
  if (base == 10) {
    const char *p = memprobe_int64(s, end, v);
    return p == end;
  }
  else {
    int64_t acc = 0;
    if (n == 0 || n > 20)
      return 0;
    for (; s < end; s++) {
      if (*s < '0' || *s > '7')
        return 0;
      acc = acc * 8 + (*s - '0');
    }
    *v = acc;
    return 1;
  }
}

/* Pushes v, exactly while it fits int64, else as the nearest float. */
static void push_u64 (lua_State *L, uint64_t v) {
  if (v <= (uint64_t)INT64_MAX)
    mp_pushint(L, (int64_t)v);
  else
    lua_pushnumber(L, (lua_Number)v);
}

/* v * m, or the nearest float when that leaves int64. */
static void push_scaled (lua_State *L, uint64_t v, uint64_t m) {
  if (m == 0 || v <= (uint64_t)INT64_MAX / m)
    mp_pushint(L, (int64_t)(v * m));
  else
    lua_pushnumber(L, (lua_Number)v * (lua_Number)m);
}

/*
** Table rows become Lua tables keyed by the header's names. The stack
** holds, from 'list': the result list, the header's names, the row being
** filled. A row with a cell count other than the header's is dropped (a
** line cut short), and so is everything when the first header name is
** not 'first'.
*/
typedef struct tstate {
  lua_State *L;
  int list;
  int n;
  int ncols;       /* header cells */
  int cells;       /* cells of the current row */
  int badheader;
  const char *first;
  void (*cell) (struct tstate *t, const char *name, const char *s,
                size_t n);
} tstate;

static void table_cell (void *ud, int row, int col, const char *s,
                        size_t n) {
  tstate *t = (tstate *)ud;
  lua_State *L = t->L;
  int names = t->list + 1, rowt = t->list + 2;
  if (t->badheader)
    return;
  if (row == 0) {
    if (col < 0)
      return;
    if (col == 0 && (n != strlen(t->first) ||
                     strncmp(s, t->first, n) != 0)) {
      t->badheader = 1;
      return;
    }
    lua_pushlstring(L, s, n);
    lua_rawseti(L, names, col + 1);
    t->ncols = col + 1;
    return;
  }
  if (col == 0) {
    lua_settop(L, names);
    lua_createtable(L, 0, t->ncols + 1);
    t->cells = 0;
  }
  if (col < 0) {
    if (t->cells == t->ncols) {
      lua_pushvalue(L, rowt);
      lua_rawseti(L, t->list, ++t->n);
    }
    return;
  }
  t->cells++;
  if (col < t->ncols) {
    lua_rawgeti(L, names, col + 1);
    t->cell(t, lua_tostring(L, -1), s, n);
    lua_pop(L, 1);
  }
}

/* Reads /proc/rel and leaves its rows as a list at the stack top, or
** returns the values for a failure (3) or a bad header (3). */
static int read_table (lua_State *L, mp_ctx *c, const char *rel,
                       tstate *t) {
  const char *data;
  size_t len;
  int err;
  if ((err = memprobe_read(c, MP_PROC, rel, &data, &len)) != 0)
    return memprobe_fail(L, c, MP_PROC, rel, err);
  lua_newtable(L);
  t->L = L;
  t->list = lua_gettop(L);
  lua_newtable(L);
  memprobe_parse_table(data, len, table_cell, t);
  lua_settop(L, t->list);
  if (t->badheader)
    return memprobe_result(L, 0, "%s/%s: unexpected header",
                           c->root[MP_PROC], rel);
  return 0;
}

/* Header names of /proc/swaps and the fields they become. */
static void swap_cell (tstate *t, const char *name, const char *s,
                       size_t n) {
  lua_State *L = t->L;
  int row = t->list + 2;
  int64_t v;
  if (strcmp(name, "Filename") == 0) {
    char buf[4096];
    if (n <= sizeof(buf))
      lua_pushlstring(L, buf, memprobe_unescape(s, n, buf));
    else
      lua_pushlstring(L, s, n);
    lua_setfield(L, row, "filename");
  }
  else if (strcmp(name, "Type") == 0) {
    lua_pushlstring(L, s, n);
    lua_setfield(L, row, "type");
  }
  else if (strcmp(name, "Size") == 0 || strcmp(name, "Used") == 0) {
    if (cell_int(s, n, 10, &v) && v >= 0) {
      push_scaled(L, (uint64_t)v, 1024);
      lua_setfield(L, row, name[0] == 'S' ? "size" : "used");
    }
  }
  else if (strcmp(name, "Priority") == 0) {
    if (cell_int(s, n, 10, &v)) {
      mp_pushint(L, v);
      lua_setfield(L, row, "priority");
    }
  }
}

/***
swaps(): one { filename, type, size, used, priority } per swap area,
sizes in bytes (the file says KiB); filename with the kernel's \040
escapes decoded. No swap: an empty list.
@function swaps
@treturn table the list of swap areas, or nil, message, errno
*/
MP_READER(l_swaps) {
  mp_ctx *c = memprobe_ctx(L);
  tstate t;
  int r;
  memprobe_noargs(L);
  lua_settop(L, 0);
  memset(&t, 0, sizeof(t));
  t.first = "Filename";
  t.cell = swap_cell;
  if ((r = read_table(L, c, "swaps", &t)) != 0)
    return r;
  return 1;
}

/* /proc/sysvipc/shm: numbers stay numbers, perms is octal, and the key
** is kept as printed (signed) plus the 0x%08x form ipcs shows. */
static void shm_cell (tstate *t, const char *name, const char *s,
                      size_t n) {
  lua_State *L = t->L;
  int row = t->list + 2;
  int64_t v;
  if (strcmp(name, "perms") == 0) {
    if (cell_int(s, n, 8, &v)) {
      mp_pushint(L, v);
      lua_setfield(L, row, name);
    }
    return;
  }
  if (!cell_int(s, n, 10, &v)) {
    lua_pushlstring(L, s, n);
    lua_setfield(L, row, name);
    return;
  }
  mp_pushint(L, v);
  lua_setfield(L, row, name);
  if (strcmp(name, "key") == 0) {
    char hex[24];
    snprintf(hex, sizeof(hex), "0x%08lx",
             (unsigned long)((uint64_t)v & 0xffffffffu));
    lua_pushstring(L, hex);
    lua_setfield(L, row, "key_hex");
  }
}

/* Reads one number from /proc/sys/rel; 0, an errno, or -1. */
static int sysctl (mp_ctx *c, const char *rel, uint64_t *v) {
  const char *data;
  size_t len;
  int err = memprobe_read_nocache(c, MP_PROC, rel, &data, &len);
  if (err != 0)
    return err;
  return memprobe_parse_u64(data, len, v);
}

/* t[k] = sysctl rel * scale, when it can be read. */
static void set_sysctl (lua_State *L, mp_ctx *c, int t, const char *k,
                        const char *rel, uint64_t scale) {
  uint64_t v;
  if (sysctl(c, rel, &v) == 0) {
    push_scaled(L, v, scale);
    lua_setfield(L, t, k);
  }
}

/***
shm(): { segments = { {key, key_hex, shmid, perms, size, cpid, lpid,
nattch, uid, gid, cuid, cgid, atime, dtime, ctime, rss, swap}, ... },
shmmax, shmall, shmall_bytes, shmmni }. Segment fields are named by
the file's header, so a kernel without rss/swap columns has them nil;
size, rss and swap are bytes as the kernel prints them. The limits are
unsigned longs: the 64-bit default 2^64 - 2^24 - 1 does not fit
int64 and comes back as a float (>= 2^63: no limit in practice).
@function shm
@treturn table the segments and the limits, or nil, message, errno
*/
MP_READER(l_shm) {
  mp_ctx *c = memprobe_ctx(L);
  tstate t;
  uint64_t all;
  int r;
  memprobe_noargs(L);
  lua_settop(L, 0);
  memset(&t, 0, sizeof(t));
  t.first = "key";
  t.cell = shm_cell;
  if ((r = read_table(L, c, "sysvipc/shm", &t)) != 0)
    return r;
  lua_createtable(L, 0, 5);
  lua_insert(L, 1);
  lua_setfield(L, 1, "segments");
  set_sysctl(L, c, 1, "shmmax", "sys/kernel/shmmax", 1);
  set_sysctl(L, c, 1, "shmmni", "sys/kernel/shmmni", 1);
  if (sysctl(c, "sys/kernel/shmall", &all) == 0) {
    push_u64(L, all);
    lua_setfield(L, 1, "shmall");
    push_scaled(L, all, (uint64_t)c->pagesize);
    lua_setfield(L, 1, "shmall_bytes");
  }
  return 1;
}

/* CommitLimit and Committed_AS out of meminfo. */
typedef struct commit { int64_t limit, as; int seen; } commit;

static void pick_commit (void *ud, const char *key, size_t klen, int64_t v,
                         int kb) {
  commit *m = (commit *)ud;
  if (kb) {
    if (klen == 11 && memcmp(key, "CommitLimit", 11) == 0) {
      m->limit = memprobe_bytes(v, 1024);
      m->seen |= 1;
    }
    else if (klen == 12 && memcmp(key, "Committed_AS", 12) == 0) {
      m->as = memprobe_bytes(v, 1024);
      m->seen |= 2;
    }
  }
}

static const char *const modename[] = { "heuristic", "always", "never" };

/***
overcommit(): { mode, mode_name, ratio, bytes, admin_reserve,
user_reserve, commit_limit, committed_as, headroom }. bytes is
overcommit_kbytes in bytes (0: the ratio applies); headroom is
commit_limit - committed_as, negative when overcommitted, and binding
only in mode 2 ("never").
@function overcommit
@treturn table the policy, limits and headroom, or nil, message, errno
*/
MP_READER(l_overcommit) {
  static const char rel[] = "sys/vm/overcommit_memory";
  mp_ctx *c = memprobe_ctx(L);
  const char *data;
  size_t len;
  uint64_t mode;
  commit m;
  int err;
  memprobe_noargs(L);
  lua_settop(L, 0);
  if ((err = sysctl(c, rel, &mode)) > 0)
    return memprobe_fail(L, c, MP_PROC, rel, err);
  if (err < 0)
    return memprobe_result(L, 0, "%s/%s: not a number",
                           c->root[MP_PROC], rel);
  lua_createtable(L, 0, 9);
  push_u64(L, mode);
  lua_setfield(L, 1, "mode");
  if (mode < 3) {
    lua_pushstring(L, modename[mode]);
    lua_setfield(L, 1, "mode_name");
  }
  set_sysctl(L, c, 1, "ratio", "sys/vm/overcommit_ratio", 1);
  set_sysctl(L, c, 1, "bytes", "sys/vm/overcommit_kbytes", 1024);
  set_sysctl(L, c, 1, "admin_reserve", "sys/vm/admin_reserve_kbytes", 1024);
  set_sysctl(L, c, 1, "user_reserve", "sys/vm/user_reserve_kbytes", 1024);
  memset(&m, 0, sizeof(m));
  if (memprobe_read(c, MP_PROC, "meminfo", &data, &len) == 0)
    memprobe_parse_kv(data, len, pick_commit, &m);
  if (m.seen & 1) {
    mp_pushint(L, m.limit);
    lua_setfield(L, 1, "commit_limit");
  }
  if (m.seen & 2) {
    mp_pushint(L, m.as);
    lua_setfield(L, 1, "committed_as");
  }
  if (m.seen == 3) {
    mp_pushint(L, m.limit - m.as);
    lua_setfield(L, 1, "headroom");
  }
  return 1;
}

void memprobe_open_sysvm (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "overcommit", l_overcommit },
    { "shm",        l_shm },
    { "swaps",      l_swaps },
    { NULL, NULL }
  };
  (void)c;
  memprobe_register(L, funcs);
}
