/*
** host.c: an embedding host with two Lua states in two threads, each made
** by memprobe_newstate so that it is tracked from its first allocation.
** Each thread checks that its counts equal its own collector's count at
** every step; the main thread then checks that the two states' figures
** differ as much as their work did. Exits 1 on any mismatch.
*/
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

#include "memprobe.h"

typedef struct job {
  int n;                      /* tables the script builds */
  int bad;                    /* mismatches seen */
  memprobe_counts end;        /* counts before lua_close */
  pthread_barrier_t *go;
} job;

static size_t gc_bytes (lua_State *L) {
  return (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
         (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
}

/* Compares the hook's live bytes with the collector's own count. */
static void check (lua_State *L, job *j, const char *when) {
  memprobe_counts c;
  size_t gc = gc_bytes(L);
  if (!memprobe_stats(L, &c) || c.live != gc) {
    fprintf(stderr, "n=%d %s: live %zu, collector %zu\n", j->n, when,
            c.live, gc);
    j->bad++;
  }
}

static const char script[] =
  "local n = ...\n"
  "local t = {}\n"
  "for i = 1, n do t[i] = { i, tostring(i) } end\n"
  "local tr = require 'memprobe.core'.track()\n"
  "local c = collectgarbage('count') * 1024\n"
  "local s = tr:stats()\n"
  "assert(s.live == c, 'live in Lua')\n"
  "assert(tr:untrack() == nil, 'the host owns the hook')\n"
  "t = nil\n"
  "collectgarbage()\n"
  "return s.allocs\n";

static void *run (void *arg) {
  job *j = (job *)arg;
  lua_State *L = memprobe_newstate(NULL, NULL);
  if (L == NULL) {
    j->bad++;
    return NULL;
  }
  check(L, j, "new state");
  luaL_openlibs(L);
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_memprobe_core);
  lua_setfield(L, -2, "memprobe.core");
  lua_pop(L, 2);
  check(L, j, "libraries open");
  pthread_barrier_wait(j->go);  /* both states allocate at the same time */
  if (luaL_loadstring(L, script) != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    j->bad++;
  }
  else {
    lua_pushinteger(L, j->n);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
      fprintf(stderr, "n=%d: %s\n", j->n, lua_tostring(L, -1));
      j->bad++;
    }
    lua_pop(L, 1);
  }
  check(L, j, "script done");
  memprobe_stats(L, &j->end);
  memprobe_close(L);
  return NULL;
}

int main (void) {
  pthread_barrier_t go;
  job jobs[2] = { { 100000, 0, { 0, 0, 0, 0, 0, 0 }, NULL },
                  { 1000, 0, { 0, 0, 0, 0, 0, 0 }, NULL } };
  pthread_t th[2];
  int i, bad = 0;
  pthread_barrier_init(&go, NULL, 2);
  for (i = 0; i < 2; i++) {
    jobs[i].go = &go;
    pthread_create(&th[i], NULL, run, &jobs[i]);
  }
  for (i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  pthread_barrier_destroy(&go);
  for (i = 0; i < 2; i++) {
    printf("state %d: %d tables, live %zu, peak %zu, allocs %llu, "
           "frees %llu, reallocs %llu\n", i + 1, jobs[i].n, jobs[i].end.live,
           jobs[i].end.peak, jobs[i].end.allocs, jobs[i].end.frees,
           jobs[i].end.reallocs);
    bad += jobs[i].bad;
  }
  /* 100 times the work: far more allocations and a far higher peak */
  if (jobs[0].end.allocs < 50 * jobs[1].end.allocs / 2 ||
      jobs[0].end.peak < 10 * jobs[1].end.peak) {
    fprintf(stderr, "the two states' counts are not independent\n");
    bad++;
  }
  printf("%s\n", bad ? "embed: FAILED" : "embed: counts exact and independent");
  return bad ? 1 : 0;
}
