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
M.diff = function(a, b) return require("memprobe.diff").diff(a, b) end

--- A sampler ranking series by growth rate; see `memprobe.watch`.
-- @function watch
M.watch = function(opts) return require("memprobe.watch").new(opts) end

--- Accounts the load cost of every module required from now on; see
-- `memprobe.requires`. `account_requires(false)` stops.
-- @function account_requires
M.account_requires = requires.account_requires

--- Load cost per accounted module: rows `{ name, retained, inclusive,
-- peak, allocs, seconds }`; see `memprobe.requires`.
-- @function requires
M.requires = requires.requires
-- memprobe.heap loads on first use: `require "memprobe"` stays light.
local function heap() return require "memprobe.heap" end

-- Options are a table or absent: anything else is misuse, named.
local function checkopts(fname, opts, argn)
  if opts ~= nil and type(opts) ~= "table" then
    error(("bad argument #%d to '%s' (table expected, got %s)")
      :format(argn or 1, fname, type(opts)), 3)
  end
end

--- Census of the Lua heap: by type, userdata by `__name`, functions by
-- prototype, the largest containers with their paths; see `memprobe.heap`.
-- @function heap
M.heap = function(opts) checkopts("heap", opts) return heap().heap(opts) end

--- Live bytes per `package.loaded` entry: rows `{ name, exclusive, shared,
-- objects, by_type, load }`; see `memprobe.heap`.
-- @function modules
M.modules = function(opts) checkopts("modules", opts) return heap().modules(opts) end

--- A snapshot of the heap, whole or in slices (`max_ms`, `max_units`);
-- `snap:diff(older)` names what was added; see `memprobe.heap`.
-- @function snapshot
M.snapshot = function(opts) checkopts("snapshot", opts) return heap().snapshot(opts) end

--- The shortest readable reference paths to an object; see `memprobe.heap`.
-- @function path
M.path = function(obj, opts) checkopts("path", opts, 2) return heap().path(obj, opts) end

--- Measures the size model of the running VM; see `memprobe.heap`.
-- @function calibrate
M.calibrate = function(opts) checkopts("calibrate", opts) return heap().calibrate(opts) end

--- Version of the C core and of this layer (one string, from memprobe.h).
M._VERSION = core._VERSION

--- One reconciliation: kernel, cgroup, process, C heap, Lua heap and
-- modules, each level stating what the level below does not explain.
-- Levels that cannot be read hold `error`; `memprobe.format.report()`
-- prints it.
-- @tparam[opt] table opts `modules = true` adds the per-module level
-- @treturn table
function M.report(opts)
  return require("memprobe.report").build(M, opts)
end

return M
