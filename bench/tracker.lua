-- An allocation-heavy loop, run by bench/tracker.sh under callgrind in
-- these modes: "none" (memprobe loaded, no hook), "track" (the hook),
-- "ledger" (the hook with every block entered under a scope tag),
-- "profile" (the hook and a profile at the default rate) and "stopped"
-- (the hook and a profile stopped before the loop).
local memprobe = require "memprobe"
local mode, n = arg[1] or "none", tonumber(arg[2]) or 200000
-- every mode loads the profiler, so that all start from the same C heap
-- (the runs also turn malloc's per-size caches off: docs/performance.md)
require "memprobe.profile"

local function work()
  local ring = {}
  for i = 1, n do
    ring[i % 512 + 1] = { i, tostring(i), { x = i } }
  end
  return #ring
end

if mode == "track" then
  memprobe.track()
  work()
elseif mode == "ledger" then
  memprobe.track()
  memprobe.scope("bench", work)
elseif mode == "profile" then
  memprobe.track()
  local p = memprobe.profile()
  work()
  p:stop()
elseif mode == "stopped" then
  memprobe.track()
  memprobe.profile():stop()
  work()
else
  work()
end
