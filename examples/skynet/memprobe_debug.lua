-- memprobe's console behind skynet's debug console. A service that
-- requires this module answers
--
--   dbgcmd :0000000a MEMPROBE modules 10
--
-- typed in skynet's debug console with memprobe's console (`help`, `mem`,
-- `lua`, `heap`, `modules`, `mark`, `diff` ...) run in its own Lua state:
-- every service has its own heap, so the probe lives in the service.
--
-- A heap walk takes time in proportion to the heap. Here it runs in
-- slices of SLICE ms with skynet.yield() between them, so the service
-- goes on answering its other messages while an operator looks.
local skynet = require "skynet"
local debug = require "skynet.debug"
local memprobe = require "memprobe"
local console = require "memprobe.console"

local SLICE = 2

local M = {}

-- The census of memprobe.heap(), walked in slices: a snapshot stepped
-- until it is done, the service's other messages handled in between.
local function sliced_heap(opts)
  opts = opts or {}
  local gc = collectgarbage("count") * 1024
  local snap = memprobe.snapshot{ max_ms = SLICE }
  while not snap:step(SLICE) do skynet.yield() end
  local ok, c = pcall(snap.census, snap, opts.top or 10)
  snap:close()
  if not ok then error(c, 0) end
  for _, big in ipairs(c.largest) do big.path = table.concat(big.path) end
  c.gc_bytes = gc
  c.unexplained = gc - c.total
  return c
end

-- memprobe.modules{max_ms} as a job stepped in slices where memprobe's
-- walks are jobs (step/result); where they are not, the call itself
-- walks in one go and returns the rows.
local function sliced_modules(opts)
  local o = { max_ms = SLICE }
  for k, v in pairs(opts or {}) do o[k] = v end
  local r = memprobe.modules(o)
  if r.step and r.result then
    while not r:step(SLICE) do skynet.yield() end
    r = r:result()
  end
  return r
end

--- Registers the MEMPROBE debug command in the calling service.
-- @tparam[opt] table opts `track` (default true): install the allocator
-- tracker, which the console's `lua` and `limit` commands read
-- @return the console
function M.start(opts)
  opts = opts or {}
  local c = console.new()
  -- the console's heap walks in slices; the rest is memprobe
  c.mp = setmetatable({ heap = sliced_heap, modules = sliced_modules },
                      { __index = memprobe })
  if opts.track ~= false then c.tracker = memprobe.track() end
  debug.reg_debugcmd("MEMPROBE", function(...)
    local text = c:run(table.concat({ ... }, " "))
    skynet.ret(skynet.pack(text))
  end)
  return c
end

return M
