-- The heap walk at scale: heap(), modules() and snapshot() on a heap of
-- N objects built like bench/heap.lua, cold (the first call of a fresh
-- state, which also measures the size model) and warm, whole and in
-- slices of 2 ms. For each: the total time, the longest slice (the call
-- that starts a job counted as one), objects/s, the C bookkeeping per
-- object at its peak, and the ratio of the total to a full
-- collectgarbage("collect") of the same heap (the collector's own walk).
-- For snapshot(), also without retained sizes (the walk alone) and the
-- dominator pass on its own: its slices, its peak bookkeeping, and its
-- cost against the walk's slices in the same run.
-- Times are CPU time (os.clock), which a busy machine disturbs less than
-- the wall clock. `make bench-scale` runs it for 1M and 10M objects on
-- 5.4 and LuaJIT, one interpreter at a time. Run alone with:
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so' \
--     lua5.4 bench/heap_scale.lua [objects]
local memprobe = require "memprobe"
local core = require "memprobe.core"

local n = tonumber(arg and arg[1]) or 1000000
local MS = 2

local dir = (arg and arg[0] or ""):match("^(.-)[^/]*$")
dofile(dir .. "heap_world.lua")(n)

local clock = os.clock

-- The host's allocator, not the walk: right after millions of small
-- blocks were freed (the collection above), glibc's malloc does deferred
-- work at the first large request and at the first small ones that its
-- caches cannot serve, whoever makes them (on 5.4 at 3M objects: 18 ms
-- for the first 300 empty tables, or for parsing a 100-line chunk, and
-- under 1 ms the next time). Measured apart, so that the cold rows are
-- the walk's own first call.
local first_malloc = (function()
  local t = clock()
  local _ = string.rep("x", 100000)
  local small = {}
  for i = 1, 300 do small[i] = {} end
  assert(#small == 300)
  return clock() - t
end)()

-- A job or snapshot driven to its end in slices of MS: total, longest
-- slice, peak bookkeeping, objects.
local function sliced(start)
  local peak = 0
  local t0 = clock()
  local job = start()
  local first = clock() - t0
  local total, worst = first, first
  peak = math.max(peak, core.heap_walk_buffers())
  local objects
  while true do
    local t = clock()
    local done = job:step(MS)
    local d = clock() - t
    total = total + d
    if d > worst then worst = d end
    peak = math.max(peak, core.heap_walk_buffers())
    if job.progress then objects = job:progress() else objects = job:stats().objects end
    if done then break end
  end
  if job.close then job:close() end
  return total, worst, peak, objects
end

local function whole(fn)
  local t0 = clock()
  local r = fn()
  return clock() - t0, r
end

local gc = whole(function() collectgarbage("collect") end)
local lines = {}
local function row(name, total, worst, peak, objects)
  lines[#lines + 1] = ("%-26s %9.3f s %10s %8.2f M/s %9s %6.2fx")
    :format(name, total, worst and ("%.2f ms"):format(worst * 1e3) or "-",
      objects / total / 1e6, peak and ("%.1f B"):format(peak / objects) or "-",
      total / gc)
end

-- cold: the first call of this state, the size model measured in it
local t, w, p, o = sliced(function() return memprobe.heap{ max_ms = MS } end)
row("heap{max_ms=2} cold", t, w, p, o)
local objects = o
-- warm
local dt = whole(memprobe.heap)
row("heap()", dt, dt, nil, objects)
t, w, p, o = sliced(function() return memprobe.heap{ max_ms = MS } end)
row("heap{max_ms=2}", t, w, p, o)
dt = whole(memprobe.modules)
row("modules()", dt, dt, nil, objects)
t, w, p, o = sliced(function() return memprobe.modules{ max_ms = MS } end)
row("modules{max_ms=2}", t, w, p, o)
local snap
dt, snap = whole(function() return memprobe.snapshot{ retained = false } end)
local book = snap:stats().bookkeeping
snap:close()
row("snapshot{retained=false}", dt, dt, book, objects)
local walk_only = dt
dt, snap = whole(memprobe.snapshot)
book = snap:stats().bookkeeping
local st = snap:stats()
snap:close()
row("snapshot()", dt, dt, book, objects)
t, w, p, o = sliced(function() return memprobe.snapshot{ max_ms = MS } end)
row("snapshot{max_ms=2}", t, w, p, o)

-- The dominator pass of a sliced snapshot: the steps that start in one
-- of its phases, against the steps of the walk before it, and the peak
-- bookkeeping while it runs.
local DOM = { dfs = true, preds = true, semi = true, idom = true, retain = true }
local dom = { total = 0, worst = 0, steps = 0, peak = 0, walk = 0 }
do
  local t0 = clock()
  local s = memprobe.snapshot{ max_ms = MS }
  dom.walk = clock() - t0
  while true do
    local phase = s:stats().phase
    local t1 = clock()
    local done = s:step(MS)
    local d = clock() - t1
    if DOM[phase] or DOM[s:stats().phase] then
      dom.total, dom.steps = dom.total + d, dom.steps + 1
      if d > dom.worst then dom.worst = d end
      dom.peak = math.max(dom.peak, core.heap_walk_buffers())
    else
      dom.walk = dom.walk + d
    end
    if done then break end
  end
  s:close()
end
row("dominators (in slices)", dom.total, dom.worst, dom.peak, objects)

print(("%s, %d objects (%.0f MB), full collection %.3f s (%.2f M objects/s)")
  :format(jit and jit.version or _VERSION, objects, collectgarbage("count") / 1024,
    gc, objects / gc / 1e6))
print(("first 100 KB block and 300 small ones after the build: %.2f ms (the host's allocator)")
  :format(first_malloc * 1e3))
print(("snapshot(): %d edges (%.2f per object), edge log %.1f B/object; "
  .. "snapshot() %.2fx snapshot{retained=false}; dominators %.2fx the walk "
  .. "(%d slices, longest %.2f ms)")
  :format(st.edges, st.edges / objects, st.edge_bytes / objects, dt / walk_only,
    dom.total / dom.walk, dom.steps, dom.worst * 1e3))
print(("%-26s %11s %10s %12s %9s %7s"):format("call", "total", "longest", "objects/s",
  "book/obj", "/gc"))
print(table.concat(lines, "\n"))
