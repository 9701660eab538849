/*
** textfile.c: _replace_file(path, data), the atomic file replacement
** behind memprobe.export.textfile. The data goes to a temporary file in
** the same directory, created exclusively (O_EXCL, a name not in use, so
** two writers never share one), written in full, fsync'ed and closed,
** each step checked; only then is it renamed over path, and the
** directory fsync'ed. On any error the temporary file is removed and
** path is left as it was: a full disk never replaces a good file with an
** empty one. Returns true, or nil, "path: message", errno.
**
** _write_file(path, data) writes a file in place (profiles, flame
** graphs): the open does not wait for a FIFO's reader, and a FIFO or a
** socket is refused, so that a mistyped path cannot hang the host.
*/
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TMP_TRIES  64

/* Writes all of data[0..len); returns 0 or an errno value. */
static int write_all (int fd, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Creates a new file "<path>.tmp<suffix>" exclusively; its name is left
** in tmp. Returns the fd, or -1 with errno set. */
static int create_tmp (const char *path, char *tmp, size_t size) {
  struct timespec ts;
  unsigned long seed;
  int i;
  clock_gettime(CLOCK_REALTIME, &ts);
  seed = (unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 16);
  for (i = 0; i < TMP_TRIES; i++) {
    int fd, n;
    seed = seed * 6364136223846793005UL + 1442695040888963407UL;
    n = snprintf(tmp, size, "%s.tmp%08lx", path, (seed >> 24) & 0xffffffffUL);
    if (n < 0 || (size_t)n >= size) {
      errno = ENAMETOOLONG;
      return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd >= 0 || errno != EEXIST) return fd;
  }
  return -1;
}

/* fsync of the directory holding path, so that the rename is durable;
** filesystems that cannot (EINVAL) are not an error. */
static int sync_dir (const char *path, char *dir, size_t size) {
  const char *slash = strrchr(path, '/');
  size_t n = slash == NULL ? 1 : (slash == path ? 1 : (size_t)(slash - path));
  int fd, err = 0;
  if (n >= size) return 0;
  if (slash == NULL) memcpy(dir, ".", 1);
  else memcpy(dir, slash == path ? "/" : path, n);
  dir[n] = '\0';
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return 0;
  if (fsync(fd) != 0 && errno != EINVAL) err = errno;
  close(fd);
  return err;
}

static int l_replace_file (lua_State *L) {
  size_t plen, len;
  const char *path = luaL_checklstring(L, 1, &plen);
  const char *data;
  char tmp[MP_PATHMAX + 16];
  int fd, err;
  luaL_argcheck(L, plen > 0 && strlen(path) == plen, 1, "path expected");
  data = luaL_checklstring(L, 2, &len);
  fd = create_tmp(path, tmp, sizeof(tmp));
  if (fd < 0) {
    err = errno;
    return memprobe_result(L, err, "%s: %s", path, strerror(err));
  }
  err = write_all(fd, data, len);
  if (err == 0 && fsync(fd) != 0) err = errno;
  if (close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && rename(tmp, path) != 0) err = errno;
  if (err != 0) {
    unlink(tmp);
    return memprobe_result(L, err, "%s: %s", path, strerror(err));
  }
  err = sync_dir(path, tmp, sizeof(tmp));
  if (err != 0) {
    return memprobe_result(L, err, "%s: %s", path, strerror(err));
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Writes data[0..len) to path, created or truncated; 0 or an errno. */
int memprobe_write_file (const char *path, const char *data, size_t len) {
  struct stat st;
  int err, fl;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK,
                0644);
  if (fd < 0) return errno == ENXIO ? EINVAL : errno;  /* FIFO, no reader */
  if (fstat(fd, &st) != 0) err = errno;
  else if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) err = EINVAL;
  else if ((fl = fcntl(fd, F_GETFL)) == -1 ||
           fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1) err = errno;
  else err = write_all(fd, data, len);
  if (close(fd) != 0 && err == 0) err = errno;
  return err;
}

static int l_write_file (lua_State *L) {
  size_t plen, len;
  const char *path = luaL_checklstring(L, 1, &plen);
  const char *data;
  int err;
  luaL_argcheck(L, plen > 0 && strlen(path) == plen, 1, "path expected");
  data = luaL_checklstring(L, 2, &len);
  if ((err = memprobe_write_file(path, data, len)) != 0)
    return memprobe_result(L, err, "%s: %s", path,
                           err == EINVAL ? "not a regular file" : strerror(err));
  lua_pushboolean(L, 1);
  return 1;
}

void memprobe_open_textfile (lua_State *L, mp_ctx *c) {
  static const luaL_Reg fns[] = {
    {"_replace_file", l_replace_file},
    {"_write_file", l_write_file},
    {NULL, NULL}
  };
  (void)c;
  memprobe_register(L, fns);
}
