-- memprobe in an nginx worker (lua-nginx-module): /memz runs the admin
-- console, /metrics serves Prometheus text. Each worker is its own Lua
-- state, so each keeps its own console (mark/diff, watch and track go on
-- across requests) and labels its series with its worker id.
--
-- The heap commands (heap, modules, mark, diff) walk the heap as jobs:
-- an ngx.timer advances them every TICK seconds within BUDGET_MS, so a
-- request never holds the worker for a whole walk. /memz answers with
-- the progress at once; with &wait=1 it waits (ngx.sleep, which lets the
-- worker serve other requests) until the answer is ready. /ticks shows
-- the timer's longest step and how many steps took over twice the budget.
--
--   init_worker_by_lua_block { require("memz").init_worker() }
--   content_by_lua_block { require("memz").memz() }
--   content_by_lua_block { require("memz").metrics() }
--   content_by_lua_block { require("memz").ticks() }
local memprobe = require "memprobe"
local ngx = ngx  -- luacheck: ignore 113 (lua-nginx-module's global)

local M = {}

local BUDGET_MS = 2   -- the console's share of each timer tick
local TICK = 0.005    -- seconds between ticks while a job runs
local WAIT = 30       -- seconds a &wait=1 request waits at most

local console       -- this worker's, made at init_worker (or on first use)
local answers = {}  -- line -> the answer the console's reply gave
local stats = { ticks = 0, walking = 0, longest = 0, over = 0 }

local function new_console()
  return memprobe.console.new{
    budget_ms = BUDGET_MS,
    reply = function(line, text) answers[line] = text end,
  }
end

-- One tick: the console's jobs advance within the budget. CPU time is
-- the worker's own (os.clock), whatever else the machine runs.
local function tick(premature)
  if premature or not console then return end
  local t0 = os.clock()
  local idle = console:step(BUDGET_MS)
  local ms = (os.clock() - t0) * 1000
  stats.ticks = stats.ticks + 1
  if not idle then stats.walking = stats.walking + 1 end
  if ms > stats.longest then stats.longest = ms end
  if ms > 2 * BUDGET_MS then stats.over = stats.over + 1 end
end

--- Installs the allocator tracker in this worker, makes its console (the
-- console's `lua` and `limit` commands then see the tracker) and starts
-- the timer that advances its jobs.
function M.init_worker()
  memprobe.track()
  -- the walk's code and size model load here, not in a tick
  require("memprobe.heap").model()
  console = new_console()
  -- an application's state, for the walk to take some ticks
  M.cache = {}
  for i = 1, 20000 do M.cache["/item/" .. i] = { id = i, hits = 0 } end
  assert(ngx.timer.every(TICK, tick))
end

--- /memz?cmd=slab%2010: the console's answer to the (decoded) command;
-- with &wait=1, a heap command's answer once its job is done.
function M.memz()
  console = console or new_console()
  local args = ngx.req.get_uri_args()
  local cmd = args.cmd  -- URL-decoded, unlike ngx.var.arg_cmd
  if type(cmd) ~= "string" then cmd = "mem" end  -- absent, or given twice
  ngx.header["X-Memprobe-Worker"] = ngx.worker.id()
  answers[cmd] = nil
  local text = console:run(cmd)
  if args.wait and text:find("^walking heap: ") then
    local deadline = ngx.now() + WAIT
    while answers[cmd] == nil and ngx.now() < deadline do
      ngx.sleep(TICK)
      ngx.update_time()
    end
    text = answers[cmd] or text
    answers[cmd] = nil
  end
  ngx.say(text)
end

--- /ticks: the timer's ticks so far, those with a job, the longest step
-- and the steps over twice the budget.
function M.ticks()
  ngx.say(("ticks %d  walking %d  longest step %.2f ms of a %d ms budget  over twice %d")
    :format(stats.ticks, stats.walking, stats.longest, BUDGET_MS, stats.over))
end

--- /metrics: the figures, the process and Lua series labelled with the
-- worker, so that a scrape reaching another worker makes other series.
function M.metrics()
  ngx.print(memprobe.export.prometheus{ labels = { worker = ngx.worker.id() } })
end

return M
