/*
** memprobe.h: public header for hosts that embed memprobe.
**
** A host links memprobe's objects (or loads memprobe/core.so) and calls
** luaopen_memprobe_core like any other C module, for as many lua_States as
** it has: all state lives in the lua_State, none in C globals.
*/
#ifndef MEMPROBE_H
#define MEMPROBE_H

#include "lua.h"

#define MEMPROBE_VERSION_MAJOR  0
#define MEMPROBE_VERSION_MINOR  1
#define MEMPROBE_VERSION_PATCH  0
#define MEMPROBE_VERSION        "0.1.0"

#if defined(__GNUC__)
#define MEMPROBE_API  __attribute__((visibility("default")))
#else
#define MEMPROBE_API
#endif

/*
** The allocator ud. track() and memprobe_newstate install memprobe's hook
** as the state's lua_Alloc and keep the host's ud: lua_getallocf(L, &ud)
** returns the ud the host gave (skynet's service_snlua.c reads it back as
** its struct snlua), and every call reaches the host's allocator with it.
** The one exception: two states tracked at the same time with the same ud
** value (luaL_newstate gives NULL to all), where the later one gets a
** memprobe pointer as its ud. A host that gives each state its own ud
** always gets it back. After untrack() the host's (f, ud) is back.
**
** The hook finds its counters through a process-wide table keyed by the
** ud (lock-free reads, O(1)); its entries live until the process ends, so
** a block made through the hook can come back to it at any time (Lua
** 5.5's external strings free through the (f, ud) they were made with,
** after untrack() and in lua_close): it is then forwarded as it is.
*/

/* Opens memprobe.core: pushes its module table. */
MEMPROBE_API int luaopen_memprobe_core (lua_State *L);

/*
** Tracking from the first allocation. memprobe_newstate is a drop-in for
** luaL_newstate (with a panic handler like its own) whose allocator hook is in place
** before the state exists, so its counts cover every block; f/ud is the
** allocator to chain to (NULL: realloc/free). It may be called before
** luaopen_memprobe_core and from any thread: every state has its own
** counters. require"memprobe".track() in such a state returns a tracker
** over the host's hook (untrack() is refused). Close such a state with
** memprobe_close, which frees the counters after lua_close. The state's
** ud is ud, as above.
*/
typedef struct memprobe_counts {
  size_t live, peak;                 /* bytes */
  unsigned long long allocs, frees, reallocs, failed;
} memprobe_counts;

MEMPROBE_API lua_State *memprobe_newstate (lua_Alloc f, void *ud);

/* Fills *out and returns 1 when L is tracked (newstate or track()), or
** returns 0. Safe to call from the thread that runs L, between calls. */
MEMPROBE_API int memprobe_stats (lua_State *L, memprobe_counts *out);

/* lua_close, then frees what memprobe_newstate allocated. */
MEMPROBE_API void memprobe_close (lua_State *L);

#endif
