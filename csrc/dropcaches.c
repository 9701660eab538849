/*
** dropcaches.c: drop_caches(level). Writes 1 (page cache), 2 (reclaimable
** slab: dentries and inodes) or 3 (both) to /proc/sys/vm/drop_caches
** after a sync(), and tells whether the kernel did it through the
** drop_pagecache / drop_slab counters of /proc/vmstat (Linux 4.15+). The
** file is write-only (0200): it is never read.
*/
/***
@submodule memprobe
*/
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/vfs.h>
#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC  0x9fa0
#endif
#endif


#define DROP_REL  "sys/vm/drop_caches"

typedef struct counters {
  int64_t pagecache, slab;
  int seen;  /* bit 0: drop_pagecache, bit 1: drop_slab */
} counters;

static void pick_counter (void *ud, const char *key, size_t klen, int64_t v,
                          int kb) {
  counters *k = (counters *)ud;
  (void)kb;
  if (klen == 14 && memcmp(key, "drop_pagecache", 14) == 0) {
    k->pagecache = v;
    k->seen |= 1;
  }
  else if (klen == 9 && memcmp(key, "drop_slab", 9) == 0) {
    k->slab = v;
    k->seen |= 2;
  }
}

static void read_counters (mp_ctx *c, counters *k) {
  const char *data;
  size_t len;
  memset(k, 0, sizeof(*k));
  if (memprobe_read(c, MP_PROC, "vmstat", &data, &len) == 0)
    memprobe_parse_pairs(data, len, pick_counter, k);
}

/* Pushes free() (upvalue 2), or nil when meminfo cannot be read. */
static void push_free (lua_State *L) {
  lua_pushvalue(L, lua_upvalueindex(2));
  if (lua_isfunction(L, -1))
    lua_call(L, 0, 1);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

/*
** Writes the level; returns 0, an errno value or MP_ENOTPROC. Only the
** kernel's file is written: a symlink, a FIFO or any file of another
** filesystem under a config{} root is refused before the sync, and
** nothing is truncated.
*/
static int write_level (mp_ctx *c, int level) {
#if defined(__linux__)
  char path[MP_PATHMAX], text[3];
  struct statfs fs;
  int fd, err = 0;
  ssize_t n;
  if (snprintf(path, sizeof(path), "%s/" DROP_REL, c->root[MP_PROC]) >=
      (int)sizeof(path))
    return ENAMETOOLONG;
  fd = open(path, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)  /* a symlink, a FIFO without a reader, a directory */
    return errno == ELOOP || errno == ENXIO || errno == EISDIR
           ? MP_ENOTPROC : errno;
  if (fstatfs(fd, &fs) != 0 || fs.f_type != PROC_SUPER_MAGIC) {
    close(fd);
    return MP_ENOTPROC;
  }
  sync();  /* dirty pages cannot be dropped: write them out first */
  text[0] = (char)('0' + level);
  text[1] = '\n';
  text[2] = '\0';
  do
    n = write(fd, text, 2);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    err = errno;
  else if (n != 2)
    err = EIO;
  if (close(fd) != 0 && err == 0)
    err = errno;
  return err;
#else
  (void)c; (void)level;
  return ENOSYS;
#endif
}

/*
** drop_caches(level) -> true, { level, before, after, freed, confirmed }
** 'before' and 'after' are free() results; 'freed' is the growth of
** MemFree in bytes (negative if something else allocated meanwhile);
** 'confirmed' is true when the vmstat counters moved, false when they did
** not, nil when the kernel has none.
*/
/***
Syncs, then writes `level` to /proc/sys/vm/drop_caches: 1 drops the page
cache, 2 reclaimable slab (dentries and inodes), 3 both. The file is
write-only and never read. `before` and `after` are `free()` results,
`freed` the growth of MemFree in bytes, `confirmed` whether vmstat's
drop_pagecache / drop_slab counters moved (nil when the kernel has none).
Not root, a read-only /proc/sys (containers) and a refused value give nil,
a message saying so, and EACCES, EROFS or EINVAL.
@function drop_caches
@tparam int level 1, 2 or 3; anything else raises
@treturn boolean true
@treturn table `{ level, before, after, freed, confirmed }`
*/
static int drop_caches (lua_State *L) {
  mp_ctx *c = memprobe_ctx(L);
  lua_Number v = lua_tonumber(L, 1);
  int level, err, t, want;
  counters k0, k1;
  /* named by hand: under pcall 5.1, 5.2 and LuaJIT cannot name a C
  ** function, and this message is the one people act on */
  if (lua_type(L, 1) != LUA_TNUMBER || !(v == 1 || v == 2 || v == 3))
    return luaL_error(L, "bad argument #1 to 'drop_caches' "
                      "(level must be 1, 2 or 3)");
  level = (int)v;
  lua_settop(L, 1);
  lua_createtable(L, 0, 6);
  t = lua_gettop(L);
  mp_pushint(L, level);
  lua_setfield(L, t, "level");
  push_free(L);
  lua_setfield(L, t, "before");
  read_counters(c, &k0);
  if ((err = write_level(c, level)) != 0)
    return memprobe_fail(L, c, MP_PROC, DROP_REL, err);
  read_counters(c, &k1);
  push_free(L);
  lua_setfield(L, t, "after");
  lua_getfield(L, t, "before");
  lua_getfield(L, -1, "free");
  lua_getfield(L, t, "after");
  lua_getfield(L, -1, "free");
  if (lua_isnumber(L, -1) && lua_isnumber(L, -3)) {
    mp_pushint(L, (int64_t)lua_tonumber(L, -1) - (int64_t)lua_tonumber(L, -3));
    lua_setfield(L, t, "freed");
  }
  lua_settop(L, t);
  want = level;  /* the level's bits are the counters' bits in 'seen' */
  if ((k0.seen & want) == want && (k1.seen & want) == want) {
    int ok = 1;
    if (want & 1)
      ok = ok && k1.pagecache > k0.pagecache;
    if (want & 2)
      ok = ok && k1.slab > k0.slab;
    lua_pushboolean(L, ok);
    lua_setfield(L, t, "confirmed");
  }
  lua_pushboolean(L, 1);
  lua_insert(L, t);
  return 2;
}

/*
** The module table is at -2 and the context at -1, as for every opener.
** drop_caches keeps free() as its second upvalue, so meminfo.c must have
** registered it first (core.c opens this file after it).
*/
static int l_drop_caches (lua_State *L) {
  return memprobe_leased(L, drop_caches, 2);
}

void memprobe_open_dropcaches (lua_State *L, mp_ctx *c) {
  (void)c;
  lua_pushvalue(L, -1);
  lua_getfield(L, -3, "free");
  lua_pushcclosure(L, l_drop_caches, 2);
  lua_setfield(L, -3, "drop_caches");
}
