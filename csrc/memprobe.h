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

/* Opens memprobe.core: pushes its module table. */
MEMPROBE_API int luaopen_memprobe_core (lua_State *L);

#endif
