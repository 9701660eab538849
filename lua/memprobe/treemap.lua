--- A squarified treemap layout (Bruls, Huizing and van Wijk, 2000): items
-- as rectangles whose areas are proportional to their bytes, laid out in
-- rows that keep them as close to squares as the rectangle allows. Pure
-- Lua, no drawing; `memprobe.htmlreport` draws the rectangles.
-- @module memprobe.treemap

local M = {}

local max, min, huge = math.max, math.min, math.huge

-- The worst aspect ratio of a row of areas (sum s, largest hi, smallest
-- lo) laid along a side of length side.
local function worst(s, hi, lo, side)
  local s2, w2 = s * s, side * side
  return max(w2 * hi / s2, s2 / (w2 * lo))
end

--- Lays out items in the rectangle (x, y, w, h).
-- @tparam {table,...} items each with a `bytes` field > 0; laid out
-- largest first (the array is sorted in place)
-- @tparam number x left
-- @tparam number y top
-- @tparam number w width
-- @tparam number h height
-- @treturn {table,...} `{ x, y, w, h, item }` per item with bytes > 0
function M.layout(items, x, y, w, h)
  local list, total = {}, 0
  for _, it in ipairs(items) do
    if it.bytes and it.bytes > 0 then
      list[#list + 1] = it
      total = total + it.bytes
    end
  end
  table.sort(list, function(a, b) return a.bytes > b.bytes end)
  local out = {}
  if total <= 0 or w <= 0 or h <= 0 then return out end
  local scale = w * h / total
  local i = 1
  while i <= #list do
    local side = min(w, h)
    -- grow the row while its worst ratio does not get worse
    local s, hi, lo = 0, 0, huge
    local j = i
    while j <= #list do
      local a = list[j].bytes * scale
      local ns, nhi, nlo = s + a, max(hi, a), min(lo, a)
      if j > i and worst(ns, nhi, nlo, side) > worst(s, hi, lo, side) then break end
      s, hi, lo = ns, nhi, nlo
      j = j + 1
    end
    -- the row fills a strip along the short side
    local thick = s / side
    local at = 0
    for k = i, j - 1 do
      local len = list[k].bytes * scale / thick
      if w >= h then
        out[#out + 1] = { x = x, y = y + at, w = thick, h = len, item = list[k] }
      else
        out[#out + 1] = { x = x + at, y = y, w = len, h = thick, item = list[k] }
      end
      at = at + len
    end
    if w >= h then x, w = x + thick, w - thick else y, h = y + thick, h - thick end
    i = j
  end
  return out
end

return M
