/*
** procfs.c: reading /proc and /sys. Files are kept open, one fd per path,
** and read with pread(fd, buf, n, 0), which costs a third of
** open+read+close. /proc/self is resolved when the file is opened, so the
** kept fds are dropped when getpid() changes (a fork) and when config{}
** points the readers at another root.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


#define MP_READMAX  (64u << 20)  /* no /proc file is this large */

static const char *const default_root[2] = { "/proc", "/sys" };

/*
** What would help, per file and errno: the message after the strerror.
*/
static const struct hint {
  int root;
  const char *prefix;
  int err;
  const char *text;
} hints[] = {
  { MP_PROC, "slabinfo", EACCES, "needs root or CAP_DAC_READ_SEARCH" },
  { MP_PROC, "slabinfo", ENOENT,
    "kernel built without CONFIG_SLUB_DEBUG, or /proc not mounted" },
  { MP_PROC, "vmallocinfo", EACCES, "needs root or CAP_DAC_READ_SEARCH" },
  { MP_PROC, "pagetypeinfo", EACCES, "needs root or CAP_DAC_READ_SEARCH" },
  { MP_PROC, "allocinfo", ENOENT,
    "needs kernel 6.10+ with CONFIG_MEM_ALLOC_PROFILING" },
  { MP_PROC, "allocinfo", EACCES, "needs root or CAP_DAC_READ_SEARCH" },
  { MP_PROC, "sys/vm/drop_caches", EACCES, "needs root (euid 0)" },
  { MP_PROC, "sys/vm/drop_caches", EPERM, "needs root (euid 0)" },
  { MP_PROC, "sys/vm/drop_caches", EROFS,
    "/proc/sys is mounted read-only, as in most containers; "
    "run on the host" },
  { MP_PROC, "sys/vm/drop_caches", EINVAL,
    "the kernel refused the value" },
  { MP_SYS, "kernel/slab", EACCES, "needs root or CAP_DAC_READ_SEARCH" },
  { MP_SYS, "kernel/slab", ENOENT, "no such cache, or kernel without SLUB" },
  { MP_PROC, "sysvipc/shm", ENOENT, "kernel built without CONFIG_SYSVIPC" },
  { MP_PROC, "swaps", ENOENT, "kernel built without CONFIG_SWAP" },
  { MP_SYS, "devices/system/node", ENOENT,
    "kernel built without CONFIG_NUMA, or /sys not mounted" },
  { MP_PROC, "", ENOSYS, "not supported on this platform" },
};

static const char *hint_for (int root, const char *rel, int err) {
  size_t i;
  for (i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
    const struct hint *h = &hints[i];
    if (h->root == root && h->err == err &&
        strncmp(rel, h->prefix, strlen(h->prefix)) == 0)
      return h->text;
  }
  return NULL;
}

/*
** Pushes nil, "path: reason (what would help)", errno; returns 3 so that
** a Lua function can end with 'return memprobe_fail(...)'. Allocation
** failures are not environment failures: they raise, like everywhere in
** Lua.
*/
int memprobe_fail (lua_State *L, mp_ctx *c, int root, const char *rel,
                   int err) {
  const char *hint = hint_for(root, rel, err);
  if (err == ENOMEM) {
    lua_pushliteral(L, "not enough memory");
    return lua_error(L);
  }
  lua_pushnil(L);
  if (err == ENOSYS)
    lua_pushliteral(L, "not supported on this platform");
  else if (hint != NULL)
    lua_pushfstring(L, "%s/%s: %s (%s)", c->root[root], rel, strerror(err),
                    hint);
  else
    lua_pushfstring(L, "%s/%s: %s", c->root[root], rel, strerror(err));
  lua_pushinteger(L, err);
  return 3;
}

void memprobe_closeall (mp_ctx *c) {
  int i;
  for (i = 0; i < MP_NSLOTS; i++) {
    if (c->slot[i].fd >= 0)
      close(c->slot[i].fd);
    c->slot[i].fd = -1;
    c->slot[i].path[0] = '\0';
  }
  c->next = 0;
}

/*
** Makes room for 'need' more bytes after 'used'. The buffer comes from
** malloc, not from the state's allocator: memprobe's own bookkeeping
** stays out of the heap it measures, so a tracker's 'live' keeps equal to
** collectgarbage("count") however large a /proc file gets.
*/
static int grow (mp_ctx *c, size_t used, size_t need) {
  size_t ncap = c->cap ? c->cap : 8192;
  char *nb;
  while (ncap - used < need)
    ncap *= 2;
  nb = (char *)realloc(c->buf, ncap);
  if (nb == NULL)
    return ENOMEM;
  c->buf = nb;
  c->cap = ncap;
  return 0;
}

/* Reads fd from offset 0 to EOF into c->buf, NUL-terminated. */
static int read_all (mp_ctx *c, int fd, size_t *len) {
  size_t off = 0;
  for (;;) {
    ssize_t n;
    if (c->cap - off < 4096 || c->cap == 0) {
      int err;
      if (off >= MP_READMAX)
        return EFBIG;
      if ((err = grow(c, off, 4096 + 1)) != 0)
        return err;
    }
    n = pread(fd, c->buf + off, c->cap - off - 1, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (n == 0)
      break;
    off += (size_t)n;
  }
  c->buf[off] = '\0';
  *len = off;
  return 0;
}

static int fullpath (mp_ctx *c, int root, const char *rel, char *out) {
  int n = snprintf(out, MP_PATHMAX, "%s/%s", c->root[root], rel);
  return (n < 0 || n >= MP_PATHMAX) ? ENAMETOOLONG : 0;
}

#if defined(__linux__)

static int open_slot (mp_ctx *c, const char *path) {
  int i, fd;
  pid_t pid = getpid();
  if (pid != c->pid) {  /* forked: our fds point at the parent's /proc/self */
    memprobe_closeall(c);
    c->pid = pid;
  }
  for (i = 0; i < MP_NSLOTS; i++)
    if (c->slot[i].fd >= 0 && strcmp(c->slot[i].path, path) == 0)
      return c->slot[i].fd;
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  for (i = 0; i < MP_NSLOTS && c->slot[i].fd >= 0; i++)
    ;
  if (i == MP_NSLOTS) {  /* full: evict round-robin */
    i = (int)(c->next++ % MP_NSLOTS);
    close(c->slot[i].fd);
  }
  c->slot[i].fd = fd;
  strcpy(c->slot[i].path, path);
  return fd;
}

static void drop_slot (mp_ctx *c, int fd) {
  int i;
  for (i = 0; i < MP_NSLOTS; i++)
    if (c->slot[i].fd == fd) {
      close(fd);
      c->slot[i].fd = -1;
      c->slot[i].path[0] = '\0';
    }
}

/*
** Reads root/rel whole into c->buf (valid until the next read). Returns 0
** or an errno value for memprobe_fail. A kept fd that fails (the process
** it described has exited) is dropped so the next call opens afresh.
*/
int memprobe_read (mp_ctx *c, int root, const char *rel,
                   const char **data, size_t *len) {
  char path[MP_PATHMAX];
  int fd, err = fullpath(c, root, rel, path);
  if (err != 0)
    return err;
  if ((fd = open_slot(c, path)) < 0)
    return errno;
  if ((err = read_all(c, fd, len)) != 0) {
    drop_slot(c, fd);
    return err;
  }
  *data = c->buf;
  return 0;
}

/* The same for files read once in a while (other pids, cgroup files):
** they do not evict the hot ones. */
int memprobe_read_nocache (mp_ctx *c, int root,
                           const char *rel, const char **data, size_t *len) {
  char path[MP_PATHMAX];
  int err = fullpath(c, root, rel, path);
  if (err != 0)
    return err;
  return memprobe_read_path(c, path, data, len);
}

/* And for a whole path already put together from a root (cgroup files
** found through mountinfo, which may lie outside the sys root). */
int memprobe_read_path (mp_ctx *c, const char *path, const char **data,
                        size_t *len) {
  int fd, err;
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return errno;
  err = read_all(c, fd, len);
  close(fd);
  *data = c->buf;
  return err;
}

#else  /* not Linux: every reader reports the platform */

int memprobe_read (mp_ctx *c, int root, const char *rel,
                   const char **data, size_t *len) {
  (void)c; (void)root; (void)rel; (void)data; (void)len;
  return ENOSYS;
}

int memprobe_read_nocache (mp_ctx *c, int root,
                           const char *rel, const char **data, size_t *len) {
  return memprobe_read(c, root, rel, data, len);
}

int memprobe_read_path (mp_ctx *c, const char *path, const char **data,
                        size_t *len) {
  return memprobe_read(c, MP_PROC, path, data, len);
}

#endif

/* Pushes the table to fill: argument 'arg' when it is a table, else a new
** one. Reusing a table makes the hot readers allocation-free once warm. */
int memprobe_into (lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg))
    lua_newtable(L);
  else {
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_pushvalue(L, arg);
  }
  return lua_gettop(L);
}

/* Readers that take no arguments raise on one given: it is a mistake (a
** table meant for a refilling reader, an option that does not exist). */
void memprobe_noargs (lua_State *L) {
  int i, top = lua_gettop(L);
  for (i = 1; i <= top; i++)
    luaL_argcheck(L, lua_isnil(L, i), i, "no arguments expected");
}

/* nil, "path: unexpected content", 0: the file is there but is not what
** the kernel writes (a truncated or foreign fixture). */
int memprobe_badformat (lua_State *L, mp_ctx *c, int root, const char *rel) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s/%s: unexpected content", c->root[root], rel);
  lua_pushinteger(L, 0);
  return 3;
}

static void set_root (mp_ctx *c, int root, const char *dir) {
  size_t n = strlen(dir);
  while (n > 1 && dir[n - 1] == '/')  /* "/host/proc/" == "/host/proc" */
    n--;
  memcpy(c->root[root], dir, n);
  c->root[root][n] = '\0';
}

/***
Points every reader at another root (a host's /proc mounted in a
container, test fixtures). `config{}` restores `/proc` and `/sys`;
`config()` changes nothing. Kept files are reopened.
@function config
@tparam[opt] table t `proc` and `sys` directories
@treturn table the settings in force
*/
static int l_config (lua_State *L) {
  mp_ctx *c = memprobe_ctx(L);
  static const char *const keys[2] = { "proc", "sys" };
  int i;
  if (!lua_isnoneornil(L, 1)) {
    const char *dir[2];
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING
                      ? lua_tostring(L, -2) : NULL;
      if (k == NULL || (strcmp(k, "proc") != 0 && strcmp(k, "sys") != 0))
        return luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'",
                             k ? k : luaL_typename(L, -2)));
      lua_pop(L, 1);
    }
    for (i = 0; i < 2; i++) {
      size_t n;
      lua_getfield(L, 1, keys[i]);
      dir[i] = lua_isnil(L, -1) ? default_root[i] : NULL;
      if (dir[i] == NULL) {
        if (lua_type(L, -1) != LUA_TSTRING)
          return luaL_argerror(L, 1, lua_pushfstring(L,
                               "'%s' must be a string", keys[i]));
        dir[i] = lua_tolstring(L, -1, &n);
        if (n == 0 || n >= MP_ROOTMAX || strlen(dir[i]) != n)
          return luaL_argerror(L, 1, lua_pushfstring(L,
                               "'%s' must be a path of 1 to %d bytes",
                               keys[i], MP_ROOTMAX - 1));
      }
    }
    memprobe_closeall(c);
    for (i = 0; i < 2; i++)
      set_root(c, i, dir[i]);
    lua_settop(L, 1);
  }
  lua_createtable(L, 0, 2);
  for (i = 0; i < 2; i++) {
    lua_pushstring(L, c->root[i]);
    lua_setfield(L, -2, keys[i]);
  }
  return 1;
}

/***
The page size, from sysconf(_SC_PAGESIZE).
@function pagesize
@treturn integer bytes
*/
static int l_pagesize (lua_State *L) {
  mp_pushint(L, memprobe_ctx(L)->pagesize);
  return 1;
}

void memprobe_open_procfs (lua_State *L, mp_ctx *c) {
  static const luaL_Reg funcs[] = {
    { "config",   l_config },
    { "pagesize", l_pagesize },
    { NULL, NULL }
  };
  set_root(c, MP_PROC, default_root[MP_PROC]);
  set_root(c, MP_SYS, default_root[MP_SYS]);
  memprobe_register(L, funcs);
}
