-- The heap walk with many roots: N package.loaded entries (70000 by
-- default), each a small table, walked by modules{max_ms = 2} and
-- heap{max_ms = 2} and snapshot{max_ms = 2} in slices of 2 ms, warm (the size model measured
-- first). Prints the call that starts the job, the longest step and the
-- total, CPU time. Run with:
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so' \
--     lua5.4 bench/heap_roots.lua [entries]
local memprobe = require "memprobe"

local n = tonumber(arg and arg[1]) or 70000
local MS = 2
local clock = os.clock

memprobe.heap()  -- the size model, measured before the entries exist
for i = 1, n do
  package.loaded[("bench.mod%06d"):format(i)] = { name = "m" .. i, i }
end
collectgarbage("collect")

local function sliced(name, start)
  local t0 = clock()
  local job = start()
  local first = clock() - t0
  local total, worst, steps = first, 0, 1
  while true do
    local t = clock()
    local done = job:step(MS)
    local d = clock() - t
    total, steps = total + d, steps + 1
    if d > worst then worst = d end
    if done then break end
  end
  print(("%-20s first call %7.2f ms, longest step %7.2f ms, %5d steps, total %7.1f ms")
    :format(name, first * 1e3, worst * 1e3, steps, total * 1e3))
  return job.result and job:result()
end

print(("%s, %d package.loaded entries"):format(jit and jit.version or _VERSION, n))
local rows = sliced("modules{max_ms=2}", function() return memprobe.modules{ max_ms = MS } end)
assert(#rows >= n, "a row per entry")
sliced("heap{max_ms=2}", function() return memprobe.heap{ max_ms = MS } end)
sliced("snapshot{max_ms=2}", function() return memprobe.snapshot{ max_ms = MS } end)
