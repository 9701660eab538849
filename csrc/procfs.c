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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#endif


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
  { MP_PROC, "sys/vm/drop_caches", MP_ENOTPROC,
    "only the kernel's drop_caches is written; symlinks are not followed" },
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
** The one environment-failure result: pushes nil, the message (a
** lua_pushfstring format and its arguments) and err, and returns 3, so
** that a Lua function can end with 'return memprobe_result(...)'. err is
** the errno value saved before any Lua call, or 0 when no system call
** failed (the file is there but is not what the kernel writes).
*/
int memprobe_result (lua_State *L, int err, const char *fmt, ...) {
  va_list ap;
  lua_pushnil(L);
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  lua_pushinteger(L, err);
  return 3;
}

/*
** The result for root/rel failing with err: "path: reason (what would
** help)". Allocation failures are not environment failures: they raise,
** like everywhere in Lua.
*/
int memprobe_fail (lua_State *L, mp_ctx *c, int root, const char *rel,
                   int err) {
  const char *hint = hint_for(root, rel, err), *why;
  if (err == ENOMEM) {
    lua_pushliteral(L, "not enough memory");
    return lua_error(L);
  }
  if (err == ENOSYS)
    return memprobe_result(L, err, "not supported on this platform");
  why = err == MP_ENOTREG ? "not a regular file"
      : err == MP_ENOTPROC ? "not a procfs file" : strerror(err);
  if (err == MP_ENOTREG || err == MP_ENOTPROC)
    err = 0;  /* no system call failed: the file is not the kernel's */
  if (hint != NULL)
    return memprobe_result(L, err, "%s/%s: %s (%s)", c->root[root], rel,
                           why, hint);
  return memprobe_result(L, err, "%s/%s: %s", c->root[root], rel, why);
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
** {======================================================
** Buffer leases
** =======================================================
** A reader parses its file while it creates Lua values, and creating one
** can run a finalizer that calls another reader. So no two running
** readers share a buffer: the reader at nesting depth i owns bufs[i] from
** its start to its return. The outermost reader (depth 0) is called
** directly; a nested one, which only a finalizer can start, runs under
** lua_pcall so that its depth is given back even when it raises. An
** outermost reader that raised leaves depth > 0 behind; the next call
** tells that from a live outer reader by the C stack: a live one is an
** ancestor of the new call, so its frame lies on the far side of the
** new call's frame in the direction the stack grows from.
*/

/* Buffers above this are given back when their reader returns. */
#define MP_KEEPMAX  (1u << 20)

/* Whether the C stack grows towards lower addresses, from the frames of
** a caller and its callee; new_ctx asks once. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int below (const volatile char *outer) {
  volatile char here = 0;
  return (uintptr_t)&here < (uintptr_t)outer;
}

int memprobe_stack_down (void) {
  volatile char here = 0;
  return below(&here);
}

void memprobe_freebufs (mp_ctx *c) {
  unsigned i;
  for (i = 0; i < c->nbufs; i++)
    free(c->bufs[i].p);
  free(c->bufs);
  c->bufs = NULL;
  c->nbufs = 0;
  c->depth = 0;
}

/* Makes bufs[depth] exist; 0 or ENOMEM. */
static int reserve (mp_ctx *c, unsigned depth) {
  mp_buf *nb;
  if (depth < c->nbufs)
    return 0;
  nb = (mp_buf *)realloc(c->bufs, (depth + 1) * sizeof(mp_buf));
  if (nb == NULL)
    return ENOMEM;
  c->bufs = nb;
  for (; c->nbufs <= depth; c->nbufs++) {
    nb[c->nbufs].p = NULL;
    nb[c->nbufs].cap = 0;
  }
  return 0;
}

/* A buffer grown by a large file does not stay for the life of the
** state. */
static void trim (mp_buf *b) {
  if (b->cap > MP_KEEPMAX) {
    free(b->p);
    b->p = NULL;
    b->cap = 0;
  }
}

/* A nested reader: called with the reader as an extra first argument,
** and with the upvalues of the function that was called. */
static int nested (lua_State *L) {
  lua_CFunction f = lua_tocfunction(L, 1);
  lua_remove(L, 1);
  return f(L);
}

/*
** Runs the reader f with a buffer that no other running reader uses, as
** if f had been called: f sees the upvalues of the running function
** ('nup' of them) and its arguments. Every function that calls
** memprobe_read runs through here.
*/
int memprobe_leased (lua_State *L, lua_CFunction f, int nup) {
  mp_ctx *c = memprobe_ctx(L);
  volatile char here = 0;
  uintptr_t at = (uintptr_t)&here;
  int nargs, i, status, n;
  if (c->depth > 0 && (c->down ? at >= c->outer : at <= c->outer)) {
    trim(&c->bufs[0]);  /* the outer reader raised: none is running */
    c->depth = 0;
  }
  if (c->depth == 0) {
    if (reserve(c, 0) != 0)
      return luaL_error(L, "not enough memory");
    c->depth = 1;
    c->outer = at;
    n = f(L);
    trim(&c->bufs[0]);
    c->depth = 0;
    return n;
  }
  /* In a finalizer run during another reader: the closure first, as this
  ** allocates and may run finalizers (which find depth as it is). */
  nargs = lua_gettop(L);
  for (i = 1; i <= nup; i++)
    lua_pushvalue(L, lua_upvalueindex(i));
  lua_pushcclosure(L, nested, nup);
  lua_insert(L, 1);
  lua_pushcfunction(L, f);
  lua_insert(L, 2);
  if (reserve(c, c->depth) != 0)
    return luaL_error(L, "not enough memory");
  c->depth++;
  status = lua_pcall(L, nargs + 1, LUA_MULTRET, 0);
  c->depth--;
  trim(&c->bufs[c->depth]);
  if (status != 0)
    return lua_error(L);
  return lua_gettop(L);
}

/* }====================================================== */

/*
** Makes room for 'need' more bytes after 'used', up to MP_READMAX plus
** the NUL. The buffer comes from malloc, not from the state's allocator:
** memprobe's own bookkeeping stays out of the heap it measures, so a
** tracker's 'live' keeps equal to collectgarbage("count") however large
** a /proc file gets.
*/
static int grow (mp_buf *b, size_t used, size_t need) {
  size_t ncap = b->cap ? b->cap : 8192;
  char *nb;
  while (ncap - used < need && ncap <= MP_READMAX)
    ncap *= 2;
  if (ncap > MP_READMAX + 1)
    ncap = MP_READMAX + 1;
  nb = (char *)realloc(b->p, ncap);
  if (nb == NULL)
    return ENOMEM;
  b->p = nb;
  b->cap = ncap;
  return 0;
}

/* Reads fd from offset 0 to EOF into b, NUL-terminated; a file of more
** than MP_READMAX bytes is EFBIG. With 'whole', a read that does not fill
** the buffer is the end: no second read to see EOF. */
static int read_all (mp_buf *b, int fd, int whole, size_t *len) {
  size_t off = 0;
  for (;;) {
    ssize_t n;
    size_t want;
    int err;
    if ((b->cap == 0 || b->cap - off < 4096 + 1) &&
        b->cap < MP_READMAX + 1 && (err = grow(b, off, 4096 + 1)) != 0)
      return err;
    want = b->cap - off - 1;
    if (want > 0)
      n = pread(fd, b->p + off, want, (off_t)off);
    else {  /* full: one byte more is too much */
      char probe;
      n = pread(fd, &probe, 1, (off_t)off);
      if (n > 0)
        return EFBIG;
    }
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    off += (size_t)n;
    if (n == 0 || (whole && (size_t)n < want))
      break;
  }
  b->p[off] = '\0';
  *len = off;
  return 0;
}

/* root/rel into out (MP_PATHMAX bytes); no snprintf: every read does it. */
static int fullpath (mp_ctx *c, int root, const char *rel, char *out) {
  size_t a = strlen(c->root[root]), b = strlen(rel);
  if (a + 1 + b >= MP_PATHMAX)
    return ENAMETOOLONG;
  memcpy(out, c->root[root], a);
  out[a] = '/';
  memcpy(out + a + 1, rel, b + 1);
  return 0;
}

/* The buffer of the reader running now. */
static mp_buf *current (mp_ctx *c) {
  return c->depth > 0 ? &c->bufs[c->depth - 1] : NULL;
}

#if defined(__linux__)

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC  0x9fa0
#endif
#ifndef SYSFS_MAGIC
#define SYSFS_MAGIC       0x62656572
#endif

/* The filesystem fd lives on: PROC_SUPER_MAGIC, SYSFS_MAGIC ..., or 0. */
static long fs_type (int fd) {
  struct statfs fs;
  return fstatfs(fd, &fs) == 0 ? (long)fs.f_type : 0;
}

/*
** Opens path for reading. Only regular files and the files of procfs and
** sysfs are read: a FIFO would block (hence O_NONBLOCK, which regular
** and kernel files ignore), a device never ends. Sets *keep when the fd
** may be kept: only the kernel's own files stay what they are; a file
** under a config{} root can be replaced, deleted or rewritten.
*/
static int open_file (const char *path, int *fd, int *keep) {
  struct stat st;
  long type;
  if ((*fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0)
    return errno;
  type = fs_type(*fd);
  *keep = type == PROC_SUPER_MAGIC || type == SYSFS_MAGIC;
  if (fstat(*fd, &st) != 0) {
    int err = errno;
    close(*fd);
    return err;
  }
  if (!S_ISREG(st.st_mode) && !*keep) {
    close(*fd);
    return MP_ENOTREG;
  }
  return 0;
}

/*
** Whether the process forked since the fds were opened. A child's copy of
** the page that MADV_WIPEONFORK clears reads 0; without one (kernels
** before 4.14), getpid() tells, a system call per read.
*/
static int forked (mp_ctx *c) {
  if (c->alive != NULL) {
    if (*c->alive)
      return 0;
    *c->alive = 1;
    return 1;
  }
  if (getpid() == c->pid)
    return 0;
  c->pid = getpid();
  return 1;
}

/*
** Files the kernel makes in one go (single_open): a read that does not
** fill the buffer has the whole file. Others (vmstat, zoneinfo ...) are
** a record at a time, and a read may stop at a page's worth of records.
*/
static int in_one_go (const char *path) {
  static const char *const whole[] = { "/meminfo", "/self/statm",
                                       "/self/status", NULL };
  size_t n = strlen(path), i;
  for (i = 0; whole[i] != NULL; i++) {
    size_t w = strlen(whole[i]);
    if (n >= w && memcmp(path + n - w, whole[i], w) == 0)
      return 1;
  }
  return 0;
}

/* The kept slot of path, or NULL when it has none. */
static mp_slot *find_slot (mp_ctx *c, const char *path) {
  int i;
  if (forked(c))  /* our fds point at the parent's /proc/self */
    memprobe_closeall(c);
  for (i = 0; i < MP_NSLOTS; i++)
    if (c->slot[i].fd >= 0 && strcmp(c->slot[i].path, path) == 0)
      return &c->slot[i];
  return NULL;
}

static void keep_slot (mp_ctx *c, const char *path, int fd) {
  int i;
  for (i = 0; i < MP_NSLOTS && c->slot[i].fd >= 0; i++)
    ;
  if (i == MP_NSLOTS) {  /* full: evict round-robin */
    i = (int)(c->next++ % MP_NSLOTS);
    close(c->slot[i].fd);
  }
  c->slot[i].fd = fd;
  c->slot[i].whole = in_one_go(path);
  strcpy(c->slot[i].path, path);
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

/* Reads path whole into the running reader's buffer; 'cache' lets a
** kernel file keep its fd. */
static int read_file (mp_ctx *c, const char *path, int cache,
                      const char **data, size_t *len) {
  mp_buf *b = current(c);
  mp_slot *slot;
  int fd, keep = 0, err;
  if (b == NULL)  /* not run through memprobe_leased: a bug */
    return EINVAL;
  if (cache && (slot = find_slot(c, path)) != NULL) {
    /* a kept fd that fails (its process exited) is reopened next time */
    if ((err = read_all(b, slot->fd, slot->whole, len)) != 0)
      drop_slot(c, slot->fd);
  }
  else {
    if ((err = open_file(path, &fd, &keep)) != 0)
      return err;
    err = read_all(b, fd, 0, len);
    if (cache && keep && err == 0)
      keep_slot(c, path, fd);
    else
      close(fd);
  }
  *data = b->p;
  return err;
}

/*
** Reads root/rel whole into the running reader's buffer (valid until its
** next read or its return). Returns 0 or an errno value (or MP_ENOTREG)
** for memprobe_fail.
*/
int memprobe_read (mp_ctx *c, int root, const char *rel,
                   const char **data, size_t *len) {
  char path[MP_PATHMAX];
  int err = fullpath(c, root, rel, path);
  return err != 0 ? err : read_file(c, path, 1, data, len);
}

/* The same for files read once in a while (other pids, cgroup files):
** they do not evict the hot ones. */
int memprobe_read_nocache (mp_ctx *c, int root,
                           const char *rel, const char **data, size_t *len) {
  char path[MP_PATHMAX];
  int err = fullpath(c, root, rel, path);
  return err != 0 ? err : read_file(c, path, 0, data, len);
}

/* And for a whole path already put together from a root (cgroup files
** found through mountinfo, which may lie outside the sys root). */
int memprobe_read_path (mp_ctx *c, const char *path, const char **data,
                        size_t *len) {
  return read_file(c, path, 0, data, len);
}

#else  /* not Linux: every reader reports the platform */

int memprobe_read (mp_ctx *c, int root, const char *rel,
                   const char **data, size_t *len) {
  (void)c; (void)root; (void)rel; (void)data; (void)len;
  (void)current;
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

/* The page of forked(), made when the context is. */
void memprobe_watch_fork (mp_ctx *c) {
  c->pid = getpid();
  c->alive = NULL;
#if defined(MADV_WIPEONFORK)
  {
    void *p = mmap(NULL, (size_t)c->pagesize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
      return;
    if (madvise(p, (size_t)c->pagesize, MADV_WIPEONFORK) != 0) {
      munmap(p, (size_t)c->pagesize);
      return;
    }
    c->alive = (volatile unsigned char *)p;
    *c->alive = 1;
  }
#endif
}

void memprobe_unwatch_fork (mp_ctx *c) {
#if defined(MADV_WIPEONFORK)
  if (c->alive != NULL)
    munmap((void *)(uintptr_t)c->alive, (size_t)c->pagesize);
#endif
  c->alive = NULL;
}

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
