/*
** embed.c: the C API of memprobe.h for hosts. A state made by
** memprobe_newstate has the hook as its allocator from its first block;
** its tracker belongs to the host (t->host), so Lua cannot untrack it and
** the tracker's finalizer leaves it alone: memprobe_close retires it after
** lua_close has freed the last block through it. The state's ud is the
** host's, as with track() (see hookcell.c).
*/
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "memprobe.h"

static void *plain_alloc (void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

/*
** What luaL_newstate installs, so that memprobe_newstate is a drop-in:
** the one place in memprobe that prints, because the process is about to
** be aborted by Lua anyway.
*/
static int panic (lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  if (msg == NULL)
    msg = "error object is not a string";
  fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n", msg);
  fflush(stderr);
  return 0;
}

lua_State *memprobe_newstate (lua_Alloc f, void *ud) {
  mp_tracker *t;
  lua_State *L;
  lua_Alloc hf;
  void *hud;
  if (f == NULL)
    f = plain_alloc;
  if ((t = memprobe_cell_claim(f, ud, NULL, &hf, &hud)) == NULL)
    return NULL;
  if ((L = mp_newstate(hf, hud)) == NULL) {
    memprobe_cell_retire(t->cell, 1);
    return NULL;
  }
  t->host = 1;
  lua_atpanic(L, panic);
  return L;
}

int memprobe_stats (lua_State *L, memprobe_counts *out) {
  mp_tracker *t = memprobe_current(L);
  if (t == NULL)
    return 0;
  out->live = t->live;
  out->peak = t->peak;
  out->allocs = memprobe_allocs(t);
  out->frees = t->frees;
  out->reallocs = t->reallocs;
  out->failed = t->failed;
  return 1;
}

void memprobe_close (lua_State *L) {
  mp_tracker *t = memprobe_current(L);
  lua_close(L);
  if (t != NULL && t->host)  /* the state is gone: its cell is free */
    memprobe_cell_retire(t->cell, 1);
}
