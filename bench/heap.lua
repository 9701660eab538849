-- Census and snapshot throughput on a heap of about a million objects, and
-- the bookkeeping the walk keeps per object. Run with the build on
-- LUA_CPATH, e.g.:
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so' \
--     lua5.4 bench/heap.lua
local memprobe = require "memprobe"
local core = require "memprobe.core"

local n = tonumber(arg and arg[1]) or 1000000
local world = {}
for i = 1, n / 3 do
  world[i] = { id = i, name = "entity " .. i, pos = { i, -i } }
end
package.loaded.bench_world = world
memprobe.calibrate()
require("memprobe.heap").model()
collectgarbage("collect")

local function clock(fn)
  local t0 = os.clock()
  local r = fn()
  return os.clock() - t0, r
end

local dt, h = clock(memprobe.heap)
print(("census    %d objects in %.3f s: %.2f M objects/s"):format(
  h.objects, dt, h.objects / dt / 1e6))
local snap
dt, snap = clock(memprobe.snapshot)
local st = snap:stats()
print(("snapshot  %d objects in %.3f s: %.2f M objects/s, %.1f bytes of " ..
  "bookkeeping per object"):format(st.objects, dt, st.objects / dt / 1e6,
  st.bookkeeping / st.objects))
snap:close()
local s2 = memprobe.snapshot{ max_ms = 2 }
local steps, worst = 1, 0
while true do
  local t0 = os.clock()
  local done = s2:step(2)
  local d = os.clock() - t0
  if d > worst then worst = d end
  steps = steps + 1
  if done then break end
end
print(("sliced    %d steps of 2 ms, longest %.2f ms"):format(steps,
  worst * 1000))
s2:close()
print(("C buffers held after close(): %d bytes"):format(core.heap_walk_buffers()))
