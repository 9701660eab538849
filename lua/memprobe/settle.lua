--- Full collections until the collector's count stops moving.
-- The VMs' own caches (the string table, LuaJIT's buffers) shrink a step
-- per cycle; a figure taken before they settle would charge them to
-- whatever is measured next. Used by `memprobe.requires` around each
-- accounted load and by `memprobe.heap` after calibrating.
-- @module memprobe.settle
local M = {}

--- Collects until two counts in a row agree, at most `n` times (24).
-- @tparam[opt] number n the most collections to run
-- @return nothing
function M.settle(n)
  local prev
  for _ = 1, n or 24 do
    collectgarbage("collect")
    local c = collectgarbage("count")
    if c == prev then return end
    prev = c
  end
end

return M
