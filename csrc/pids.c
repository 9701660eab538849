/*
** pids.c: pids(), the processes under the proc root, for rankings such
** as `memprobe top` (ps --sort=-rss, smem). Each pid is then read with
** process(pid) and smaps(pid); one may vanish in between.
*/
/***
@submodule memprobe
*/

#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>

/* A directory name that is a pid: digits only, no leading zero. */
static long pid_of (const char *name) {
  char *end;
  long v;
  if (name[0] < '1' || name[0] > '9')
    return 0;
  v = strtol(name, &end, 10);
  return (*end == '\0' && v > 0) ? v : 0;
}

/* __gc of the directory box: closes it unless done already. */
static int dir_gc (lua_State *L) {
  DIR **box = (DIR **)luaL_checkudata(L, 1, "memprobe.Dir");
  if (*box != NULL)
    closedir(*box);
  *box = NULL;
  return 0;
}

/***
The processes under the proc root (`/proc`, or the `config{}` root), in
the order the directory lists them.
@function pids
@treturn {integer,...} pids, or nil, message, errno
*/
static int l_pids (lua_State *L) {
  mp_ctx *c = memprobe_ctx(L);
  DIR **box;
  struct dirent *e;
  int n = 0;
  memprobe_noargs(L);
  lua_newtable(L);
  /* the DIR lives in a box with a finalizer: an allocation that fails
  ** while the list grows leaks no descriptor */
  box = (DIR **)mp_newuserdata(L, sizeof(DIR *));
  *box = NULL;
  if (luaL_newmetatable(L, "memprobe.Dir")) {
    lua_pushcfunction(L, dir_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  *box = opendir(c->root[MP_PROC]);
  if (*box == NULL)
    return memprobe_fail(L, c, MP_PROC, "", errno);
  while ((e = readdir(*box)) != NULL) {
    long pid = pid_of(e->d_name);
    if (pid > 0) {
      lua_pushinteger(L, (lua_Integer)pid);
      lua_rawseti(L, -3, ++n);
    }
  }
  closedir(*box);
  *box = NULL;
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg funcs[] = {
  {"pids", l_pids},
  {NULL, NULL}
};

void memprobe_open_pids (lua_State *L, mp_ctx *c) {
  (void)c;
  memprobe_register(L, funcs);
}
