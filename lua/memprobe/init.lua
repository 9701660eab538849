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

for name, fn in pairs(core) do
  M[name] = fn
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
-- The Lua heap: census, modules, snapshots, paths (memprobe.heap).
local heap = require "memprobe.heap"
M.heap = heap.heap
M.modules = heap.modules
M.snapshot = heap.snapshot
M.path = heap.path
M.calibrate = heap.calibrate
M.format = require "memprobe.format"

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
