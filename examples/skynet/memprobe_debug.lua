-- memprobe's console behind skynet's debug console. A service that
-- requires this module answers
--
--   dbgcmd :0000000a MEMPROBE modules 10
--
-- typed in skynet's debug console with memprobe's console (`help`, `mem`,
-- `lua`, `heap`, `modules`, `mark`, `diff` ...) run in its own Lua state:
-- every service has its own heap, so the probe lives in the service.
--
-- A heap walk takes time in proportion to the heap. The console runs its
-- heap commands as jobs, and a skynet.timeout tick advances them by
-- SLICE ms every TICK centiseconds while one runs, so the service goes
-- on answering its other messages while an operator looks. The debug
-- command's coroutine waits (skynet.wait) until the console's reply
-- wakes it with the answer. `MEMPROBE ticks` shows the longest tick
-- and the ticks over twice the budget.
local skynet = require "skynet"
local debug = require "skynet.debug"
local memprobe = require "memprobe"
local console = require "memprobe.console"

local SLICE = 2  -- ms of a tick the console's jobs may take
local TICK = 1   -- centiseconds between two ticks while a job runs

local M = {}

--- Registers the MEMPROBE debug command in the calling service.
-- @tparam[opt] table opts `track` (default true): install the allocator
-- tracker, which the console's `lua` and `limit` commands read
-- @return the console
function M.start(opts)
  opts = opts or {}
  -- the walk's code and size model load now, not in a tick
  require("memprobe.heap").model()
  local waiting, answers = {}, {}  -- by line: coroutines, the answer
  local stats = { ticks = 0, longest = 0, over = 0 }
  local c = console.new{ budget_ms = SLICE, reply = function(line, text)
    answers[line] = text
    for _, co in ipairs(waiting[line] or {}) do skynet.wakeup(co) end
    waiting[line] = nil
  end }
  if opts.track ~= false then c.tracker = memprobe.track() end
  local ticking = false
  -- One tick: the jobs advance within SLICE (CPU time measured: the
  -- service's own, whatever else the node runs); again while one is left.
  local function tick()
    local t0 = os.clock()
    local idle = c:step(SLICE)
    local ms = (os.clock() - t0) * 1000
    stats.ticks = stats.ticks + 1
    if ms > stats.longest then stats.longest = ms end
    if ms > 2 * SLICE then stats.over = stats.over + 1 end
    ticking = not idle
    if ticking then skynet.timeout(TICK, tick) end
  end
  debug.reg_debugcmd("MEMPROBE", function(...)
    local line = table.concat({ ... }, " ")
    local text
    if line == "ticks" then
      text = ("ticks %d  longest %.2f ms of a %d ms budget  over twice %d")
        :format(stats.ticks, stats.longest, SLICE, stats.over)
    else
      answers[line] = nil
      text = c:run(line)
      if text:find("^walking heap: ") then
        if not ticking then ticking = true; skynet.timeout(TICK, tick) end
        local co = coroutine.running()
        waiting[line] = waiting[line] or {}
        table.insert(waiting[line], co)
        skynet.wait(co)
        text = answers[line] or text
      end
    end
    skynet.ret(skynet.pack(text))
  end)
  return c
end

return M
