--- Load cost of modules: `account_requires()` wraps `require`, and
-- `requires()` tells what each module cost to load and what it kept.
--
-- Each accounted require runs full collections before and after
-- the load, so that `retained` is what survives a full GC: use it to
-- diagnose, not on a hot path. `seconds` is CPU time (os.clock).
-- @module memprobe.requires

local core = require "memprobe.core"
local settle = require("memprobe.settle").settle

local M = {}

local rows = {}      -- one per accounted load, in load order
local stack = {}     -- frames of the loads in progress (nested requires)
local plain          -- the require that was wrapped, while wrapped

-- The tracker's live bytes: the allocator's, which on 5.5 include the
-- external strings (luaL_Buffer results over 1 KiB) that the collector
-- does not count.
local function count(t)
  return t:stats().live
end

-- Loads `name` under the scope tag `name`, measuring around it. Every
-- table this needs is made before the first measurement.
local function accounted(name)
  if plain == nil or package.loaded[name] ~= nil then
    return (plain or require)(name)
  end
  local t = core.track()
  local row = { name = name, retained = 0, inclusive = 0, peak = 0,
                allocs = 0, seconds = 0 }
  local frame = { nested = 0 }
  stack[#stack + 1] = frame
  local at = #rows + 1
  rows[at] = row
  local allocs0 = t:stats().allocs
  settle()
  local live0 = count(t)
  local saved = t:reset_peak()
  local clock0 = os.clock()
  local ok, r1, r2 = pcall(core.scope, name, plain, name)
  row.seconds = os.clock() - clock0
  local inner = t:reset_peak(saved)
  if inner > saved then t:reset_peak(inner) end
  stack[#stack] = nil
  if not ok then
    table.remove(rows, at)
    error(r1, 0)
  end
  settle()
  local inclusive = count(t) - live0
  row.inclusive = inclusive
  row.retained = inclusive - frame.nested
  row.peak = inner - live0
  row.allocs = t:stats().allocs - allocs0
  local parent = stack[#stack]
  if parent then parent.nested = parent.nested + inclusive end
  return r1, r2
end

--- Accounts every module required from now on (wraps the global
-- `require`). Modules loaded this way are also `scope` tags, so
-- `ledger()` shows their live bytes over time. Loader errors propagate
-- unchanged. `account_requires(false)` puts the plain `require` back.
-- @tparam[opt] boolean on false to stop
function M.account_requires(on)
  if on == false then
    if plain ~= nil then
      _G.require = plain
      plain = nil
    end
    return
  end
  if plain == nil then
    core.track()
    plain = _G.require
    _G.require = accounted
  end
end

--- One row per accounted module, in load order:
-- `{ name, retained, inclusive, peak, allocs, seconds }`. `retained` is
-- what the module itself kept after a full collection (nested requires
-- are charged to themselves); `inclusive` adds what it required; `peak`
-- is the highest live bytes above the start of the load; `allocs` and
-- `seconds` cover the whole load, nested requires included.
-- @treturn table rows
function M.requires()
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = { name = r.name, retained = r.retained, inclusive = r.inclusive,
               peak = r.peak, allocs = r.allocs, seconds = r.seconds }
  end
  return out
end

return M
