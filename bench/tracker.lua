-- An allocation-heavy loop, run by bench/tracker.sh under callgrind in
-- three modes: "none" (memprobe loaded, no hook), "track" (the hook) and
-- "ledger" (the hook with every block entered under a scope tag).
local memprobe = require "memprobe"
local mode, n = arg[1] or "none", tonumber(arg[2]) or 200000

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
else
  work()
end
