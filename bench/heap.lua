-- Census and snapshot throughput on a heap of about a million objects, the
-- bookkeeping the walk keeps per object, and the longest slice of a sliced
-- snapshot (the call that starts it included); a full collection of the
-- same heap (the collector's own walk) is the reference. Run with the
-- build on LUA_CPATH, e.g.:
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so' \
--     lua5.4 bench/heap.lua [objects] [rows]
-- With "rows", prints "key value" lines for bench/heap_bench.lua.
local memprobe = require "memprobe"
local core = require "memprobe.core"

local n = tonumber(arg and arg[1]) or 1000000
local rows = arg and arg[2] == "rows"

-- The size model first: calibrating on a small heap is quicker.
memprobe.calibrate()
require("memprobe.heap").model()

local dir = (arg and arg[0] or ""):match("^(.-)[^/]*$")
dofile(dir .. "heap_world.lua")(n)

local function clock(fn)
  local t0 = os.clock()
  local r = fn()
  return os.clock() - t0, r
end

local out = {}
local function put(key, value, line)
  out[#out + 1] = rows and ("%s %.17g"):format(key, value) or line
end

local gc = clock(function() collectgarbage("collect") end)
local dt, h = clock(memprobe.heap)
put("objects", h.objects, ("heap      %d objects"):format(h.objects))
put("gc_ns", gc / h.objects * 1e9, ("collect   %.3f s: %.2f M objects/s (reference)")
  :format(gc, h.objects / gc / 1e6))
put("census_ns", dt / h.objects * 1e9, ("census    %.3f s: %.2f M objects/s")
  :format(dt, h.objects / dt / 1e6))
local snap
dt, snap = clock(memprobe.snapshot)
local st = snap:stats()
put("snapshot_ns", dt / st.objects * 1e9, ("snapshot  %.3f s: %.2f M objects/s")
  :format(dt, st.objects / dt / 1e6))
put("bookkeeping", st.bookkeeping / st.objects,
  ("snapshot  %.1f bytes of bookkeeping per object"):format(st.bookkeeping / st.objects))
snap:close()
-- The first slice is the call that starts the walk.
local t0 = os.clock()
local s2 = memprobe.snapshot{ max_ms = 2 }
local steps, worst = 1, os.clock() - t0
while true do
  t0 = os.clock()
  local done = s2:step(2)
  local d = os.clock() - t0
  if d > worst then worst = d end
  steps = steps + 1
  if done then break end
end
st = s2:stats()
put("slice_ms", worst * 1000,
  ("sliced    %d steps of 2 ms, longest %.2f ms, %.1f bytes/object")
  :format(steps, worst * 1000, st.bookkeeping / st.objects))
s2:close()
put("buffers", core.heap_walk_buffers(),
  ("C buffers held after close(): %d bytes"):format(core.heap_walk_buffers()))
print(table.concat(out, "\n"))
