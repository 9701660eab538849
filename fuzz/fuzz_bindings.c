/*
** The readers through a lua_State, finalizers included. The input is a
** /proc tree: its parts, split at NUL bytes, become meminfo, slabinfo,
** vmallocinfo, self/status, zoneinfo, vmstat and swaps under a temporary
** config{} root (a missing part, a missing file). Every reader is called
** while objects whose finalizers call readers are collected at each
** allocation, so each parse is interrupted by others (issue: a shared
** read buffer). A reader must return a table or nil, a message and a
** number, never raise, and (the small ones) give the same result twice.
** Seeds: proc/meminfo+proc/slabinfo+proc/vmallocinfo+proc/self/status+proc/zoneinfo+proc/vmstat+proc/swaps
** proc/meminfo+proc/slabinfo proc/meminfo
*/
#include "fuzz.h"

#include <stdio.h>
#include <unistd.h>

#include "lualib.h"
#include "memprobe.h"


static const char *const files[] = {
  "meminfo", "slabinfo", "vmallocinfo", "self/status", "zoneinfo",
  "vmstat", "swaps"
};
#define NFILES  (sizeof(files) / sizeof(files[0]))

/* Runs with (m, root); returns true when every check held. */
static const char script[] =
  "local m, root = ...\n"
  "m.config{ proc = root .. '/proc', sys = root .. '/sys' }\n"
  "local calls = {\n"
  "  function() return m.meminfo() end, function() return m.free() end,\n"
  "  function() return m.vmstat() end,\n"
  "  function() return m.slabinfo{ sort = 'c' } end,\n"
  "  function() return m.vmallocinfo{ areas = true } end,\n"
  "  function() return m.process() end, function() return m.zoneinfo() end,\n"
  "  function() return m.swaps() end, function() return m.overcommit() end }\n"
  "local ok = true\n"
  "local function shape(r, msg, errno)\n"
  "  if r == nil then return type(msg) == 'string' and type(errno) == 'number' end\n"
  "  return type(r) == 'table' or type(r) == 'number'\n"
  "end\n"
  "local function flat(v, out)\n"
  "  if type(v) ~= 'table' then out[#out + 1] = tostring(v) return end\n"
  "  local keys = {}\n"
  "  for k in pairs(v) do keys[#keys + 1] = tostring(k) end\n"
  "  table.sort(keys)\n"
  "  for _, k in ipairs(keys) do\n"
  "    out[#out + 1] = k\n"
  "    local x = v[k]\n"
  "    if x == nil then x = v[tonumber(k)] end\n"
  "    flat(x, out)\n"
  "  end\n"
  "end\n"
  /* the small results are compared whole, the large ones by shape */
  "local small = { true, true, true, false, false, true, false, true, true }\n"
  "local function text(i)\n"
  "  local r = { calls[i]() }\n"
  "  if not shape(r[1], r[2], r[3]) then return nil end\n"
  "  if not small[i] then return '' end\n"
  "  local t = {} flat(r, t) return table.concat(t, ' ')\n"
  "end\n"
  "collectgarbage('stop')\n"
  "local want = {}\n"
  "for i = 1, #calls do want[i] = text(i) end\n"
  "collectgarbage('restart')\n"
  "local function check(i) ok = ok and want[i] ~= nil and text(i) == want[i] end\n"
  /* each call runs while objects whose finalizers call readers die */
  "for round = 1, 2 do\n"
  "  for i = 1, #calls do\n"
  "    for j = 1, 3 do\n"
  "      local g = (i + j + round) % #calls + 1\n"
  "      setmetatable({}, { __gc = function() check(g) end })\n"
  "    end\n"
  "    check(i)\n"
  "  end\n"
  "end\n"
  "return ok\n";

typedef struct harness {
  lua_State *L;
  char root[64];
} harness;

/* The state and the root, made once: a harness lives for the process. */
static harness *setup (void) {
  static harness h;
  char cmd[192];
  if (h.L != NULL)
    return &h;
  strcpy(h.root, "/tmp/memprobe-fuzz-XXXXXX");
  FZ_CHECK(mkdtemp(h.root) != NULL);
  snprintf(cmd, sizeof(cmd), "mkdir -p %s/proc/self %s/sys", h.root,
           h.root);
  FZ_CHECK(system(cmd) == 0);
  h.L = luaL_newstate();
  FZ_CHECK(h.L != NULL);
  luaL_openlibs(h.L);
  /* as lua.c runs 5.4: minor collections run finalizers often */
  FZ_CHECK(luaL_dostring(h.L, "collectgarbage('generational')") == 0);
  FZ_CHECK(luaL_loadbuffer(h.L, script, sizeof(script) - 1, "fuzz") == 0);
  lua_setfield(h.L, LUA_REGISTRYINDEX, "fuzz.script");
  luaL_requiref(h.L, "memprobe.core", luaopen_memprobe_core, 0);
  lua_setfield(h.L, LUA_REGISTRYINDEX, "fuzz.m");
  return &h;
}

static void put (const harness *h, const char *rel, const char *s,
                 size_t n) {
  char path[160];
  FILE *f;
  snprintf(path, sizeof(path), "%s/proc/%s", h->root, rel);
  if (s == NULL) {
    unlink(path);
    return;
  }
  f = fopen(path, "wb");
  FZ_CHECK(f != NULL);
  FZ_CHECK(n == 0 || fwrite(s, 1, n, f) == n);
  FZ_CHECK(fclose(f) == 0);
}

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size) {
  harness *h = setup();
  const char *s = (const char *)data, *end = s + size;
  int more = 1;  /* a part is left: the first always is */
  size_t i;
  for (i = 0; i < NFILES; i++) {
    const char *nul;
    if (!more) {
      put(h, files[i], NULL, 0);
      continue;
    }
    nul = memchr(s, '\0', (size_t)(end - s));
    put(h, files[i], s, (size_t)((nul ? nul : end) - s));
    if (nul != NULL)
      s = nul + 1;
    else
      more = 0;
  }
  lua_getfield(h->L, LUA_REGISTRYINDEX, "fuzz.script");
  lua_getfield(h->L, LUA_REGISTRYINDEX, "fuzz.m");
  lua_pushstring(h->L, h->root);
  if (lua_pcall(h->L, 2, 1, 0) != 0) {
    fprintf(stderr, "fuzz_bindings: %s\n", lua_tostring(h->L, -1));
    abort();
  }
  FZ_CHECK(lua_toboolean(h->L, -1));
  lua_settop(h->L, 0);
  return 0;
}
