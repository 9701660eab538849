-- snap:save(path, "heapsnapshot") at scale: a snapshot of a heap of N
-- objects (bench/heap_world.lua) written whole, then in slices of 2 ms.
-- For each: the total time, the longest slice, bytes written per second,
-- the writer's C bookkeeping per object (at its peak, beyond the
-- snapshot's own), and the file's bytes per object. Times are CPU time
-- (os.clock); the file goes to $TMPDIR (default /tmp) and is removed.
-- `make bench-scale` runs it for 1M and 10M objects on 5.4 and LuaJIT.
-- Run alone with:
--   LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/5.4/?.so' \
--     lua5.4 bench/heapsnapshot_scale.lua [objects]
local memprobe = require "memprobe"
local core = require "memprobe.core"

local n = tonumber(arg and arg[1]) or 1000000
local MS = 2
local path = (os.getenv("TMPDIR") or "/tmp") .. "/memprobe-bench.heapsnapshot"

local dir = (arg and arg[0] or ""):match("^(.-)[^/]*$")
dofile(dir .. "heap_world.lua")(n)

local clock = os.clock
local snap = memprobe.snapshot()
local objects = snap:stats().objects
local base = core.heap_walk_buffers()  -- the snapshot's own

local function size(p)
  local f = assert(io.open(p, "rb"))
  local s = f:seek("end")
  f:close()
  return s
end

local lines = {}
local function row(name, total, worst, peak, bytes)
  lines[#lines + 1] = ("%-28s %8.3f s %10s %9.1f MB/s %8.1f B %8.1f B")
    :format(name, total, ("%.2f ms"):format(worst * 1e3), bytes / total / 1e6,
      peak / objects, bytes / objects)
end

-- whole: one call
local t0 = clock()
assert(snap:save(path, "heapsnapshot"))
local whole = clock() - t0
local bytes = size(path)
row('save(p, "heapsnapshot")', whole, whole, 0, bytes)

-- in slices, to a new file (truncating the last one took ms in the
-- call that opens it: the filesystem's, not the writer's)
os.remove(path)
local peak = 0
t0 = clock()
local job = snap:save(path, "heapsnapshot", { max_ms = MS })
local total = clock() - t0
local worst = total
local steps = 0
while true do
  local t = clock()
  local done = job:step()
  local d = clock() - t
  total, steps = total + d, steps + 1
  if d > worst then worst = d end
  peak = math.max(peak, core.heap_walk_buffers() - base)
  if done then break end
  assert(done == false, "write failed")
end
row('save(p, "heapsnapshot", {2 ms})', total, worst, peak, size(path))
os.remove(path)
snap:close()

print(("%s, %d objects (%.0f MB of Lua heap), %.1f MB file, %d slices")
  :format(jit and jit.version or _VERSION, objects, collectgarbage("count") / 1024,
    bytes / 1e6, steps))
print(("%-28s %10s %10s %14s %10s %10s"):format("call", "total", "longest",
  "written/s", "book/obj", "file/obj"))
print(table.concat(lines, "\n"))
