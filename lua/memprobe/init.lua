--- Where did the memory go? The kernel's, the process's and the Lua
-- state's view of memory, side by side.
--
-- All sizes are bytes. A field the kernel does not report is nil, never 0.
-- Misuse raises an error naming the argument; the environment failing
-- (a file missing, permission denied, not Linux) returns
-- `nil, message, errno`, and the message says what would help.
-- @module memprobe

local core = require "memprobe.core"
local requires = require "memprobe.requires"

local M = {}

-- The heap walk's heap_* functions are memprobe.heap's internals: the
-- public API is heap(), modules(), snapshot(), path() and calibrate().
for name, fn in pairs(core) do
  if not name:match("^heap_") then M[name] = fn end
end

--- What grew and shrank between two meminfo(), slabinfo() or
-- vmallocinfo() results; see `memprobe.diff`.
-- @function diff
-- @tparam table a the older reading
-- @tparam table b the newer reading, of the same reader
-- @treturn table `{ source, grew, shrank, total }`
M.diff = function(a, b) return require("memprobe.diff").diff(a, b) end

--- A sampler ranking series by growth rate; see `memprobe.watch`.
-- @function watch
-- @tparam[opt] table opts `interval`, `samples`, `sources`, `clock`, `sleep`
-- @treturn Watch the watcher (`w:sample()`, `w:run()`, `w:report()`)
M.watch = function(opts) return require("memprobe.watch").new(opts) end

--- Accounts the load cost of every module required from now on; see
-- `memprobe.requires`. `account_requires(false)` stops.
-- @function account_requires
-- @tparam[opt] boolean on `false` to stop
-- @return nothing
M.account_requires = requires.account_requires

--- Load cost per accounted module: rows `{ name, retained, inclusive,
-- peak, allocs, seconds }`; see `memprobe.requires`.
-- @function requires
-- @treturn table the rows, in load order
M.requires = requires.requires

--- Starts the sampled allocation-site profiler; see `memprobe.profile`.
-- @function profile
-- @tparam[opt] table opts `rate` (bytes per sample on average, default
-- 64 KiB), `seed`, `precise` (LuaJIT, default true)
-- @treturn Profile the running profile (`p:top()`, `p:folded()`,
-- `p:pprof(path)`, `p:flamegraph(path)`, `p:stop()`, `p:reset()`)
M.profile = function(opts) return require("memprobe.profile").new(opts) end
-- LuaJIT: from here on, the JIT parameters the program sets are noted, for
-- a precise profile to put back at its end (docs/profile.md).
if jit then require "memprobe.profile" end
-- memprobe.heap loads on first use: `require "memprobe"` stays light.
-- Its functions get the clock of the public call, so that the first
-- slice of a budgeted call counts that load too.
local function heap() return require "memprobe.heap" end
local clock = core.clock
local check = require("memprobe.options").check

-- The options each heap function knows (one list per function).
local walk = { model = "table", live = "function", max_objects = "count",
               max_ms = "number", max_units = "count", fail_after = "count" }
local function with(extra)
  local t = {}
  for k, v in pairs(walk) do t[k] = v end
  for k, v in pairs(extra) do t[k] = v end
  return t
end
local spec = {
  heap = with{ top = "count" },
  modules = with{ retained = "boolean" },
  snapshot = with{ retained = "boolean" },
  path = with{ max = "count" },
  calibrate = { live = "function" },
  report = { modules = "boolean", pid = "count" },
}

--- Census of the Lua heap: by type, userdata by `__name`, functions by
-- prototype, the largest containers with their paths; see `memprobe.heap`.
-- @function heap
-- @tparam[opt] table opts `top` (largest containers, default 10), `model`,
-- `max_objects`
-- @treturn table `{ by_type, userdata, functions, largest, total, objects,
-- gc_bytes, unexplained }`
M.heap = function(opts)
  local started = clock()
  return heap().heap(check("heap", opts, spec.heap), started)
end

--- Live bytes per `package.loaded` entry: rows `{ name, exclusive, shared,
-- objects, by_type, load }`; see `memprobe.heap`.
-- @function modules
-- @tparam[opt] table opts `model`, `max_objects`
-- @treturn table the rows, largest `exclusive` first
M.modules = function(opts)
  local started = clock()
  return heap().modules(check("modules", opts, spec.modules), started)
end

--- A snapshot of the heap, whole or in slices (`max_ms`, `max_units`);
-- `snap:diff(older)` names what was added; see `memprobe.heap`.
-- @function snapshot
-- @tparam[opt] table opts `max_ms`, `max_units`, `max_objects`, `model`
-- @treturn Snapshot the snapshot (complete unless sliced: `snap:step()`)
M.snapshot = function(opts)
  local started = clock()
  return heap().snapshot(check("snapshot", opts, spec.snapshot), started)
end

--- The shortest readable reference paths to an object; see `memprobe.heap`.
-- @function path
-- @param obj a table, function, userdata, thread or string
-- @tparam[opt] table opts `max` paths (default 5), `model`
-- @treturn {string,...} the paths, shortest first
M.path = function(obj, opts)
  local started = clock()
  return heap().path(obj, check("path", opts, spec.path, 2), started)
end

--- Measures the size model of the running VM; see `memprobe.heap`.
-- @function calibrate
-- @tparam[opt] table opts `live`, a function giving live bytes
-- @treturn table the size model
M.calibrate = function(opts)
  return heap().calibrate(check("calibrate", opts, spec.calibrate))
end

--- Version of the C core and of this layer (one string, from memprobe.h).
M._VERSION = core._VERSION

--- One reconciliation: kernel, cgroup, process, C heap, Lua heap and
-- modules, each level stating what the level below does not explain.
-- Levels that cannot be read hold `error`; `memprobe.format.report()`
-- prints it.
-- @tparam[opt] table opts `modules = true` adds the per-module level
-- @treturn table
function M.report(opts)
  return require("memprobe.report").build(M, check("report", opts, spec.report))
end

-- The tools load on first use: `memprobe.console`, `memprobe.export`,
-- `memprobe.format` and `memprobe.json` are `require "memprobe.NAME"`.
local tools = { console = true, export = true, format = true, json = true }
return setmetatable(M, { __index = function(t, k)
  if tools[k] then
    local mod = require("memprobe." .. k)
    rawset(t, k, mod)
    return mod
  end
end })
