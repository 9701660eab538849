--- What grew and what shrank between two readings of the same source.
-- Works on the results of `meminfo()`, `slabinfo()` and `vmallocinfo()`.
-- @module memprobe.diff

local M = {}

--- The byte series of one result, by name, and the name of its source.
-- meminfo: every field but the unit-less HugePages_* counts; slabinfo:
-- each cache's `active_size` (bytes in objects in use: a leak shows there
-- at once, while slab pages lag behind because the allocator reuses the
-- empty slabs it keeps); vmallocinfo: each caller's `virtual` (address
-- space: ioremap areas have no pages to count), keyed "caller [module]".
-- @tparam table r a result of meminfo(), slabinfo() or vmallocinfo()
-- @treturn table name -> bytes
-- @treturn string "meminfo", "slabinfo" or "vmallocinfo"
-- @tparam[opt] number argn the argument number to blame (1)
-- @tparam[opt] string fname the function to name in errors ("series")
function M.series(r, argn, fname)
  local function bad()
    error(("bad argument #%d to '%s' (expected a meminfo, slabinfo or vmallocinfo result)")
      :format(argn or 1, fname or "series"), 4)
  end
  if type(r) ~= "table" then bad() end
  local t = {}
  if r.caches and r.totals then
    for _, c in ipairs(r.caches) do t[c.name] = (t[c.name] or 0) + c.active_size end
    return t, "slabinfo"
  elseif r.by_caller and r.totals then
    for _, c in ipairs(r.by_caller) do
      local k = c.caller .. " [" .. c.module .. "]"
      t[k] = (t[k] or 0) + c.virtual
    end
    return t, "vmallocinfo"
  elseif r.MemTotal then
    for k, v in pairs(r) do
      if type(v) == "number" and not k:match("^HugePages_") then t[k] = v end
    end
    return t, "meminfo"
  end
  bad()
end

--- Compares two readings of one source.
-- @tparam table a the older reading
-- @tparam table b the newer reading
-- @treturn table `{ source, grew = {...}, shrank = {...}, total }`: each
-- entry is `{ name, before, after, delta }` (bytes; before is nil for a
-- new name, after nil for a gone one). grew is sorted by delta, largest
-- first; shrank by delta, most negative first; unchanged names are left
-- out. total is the sum of the deltas.
function M.diff(a, b)
  local sa, ka = M.series(a, 1, "diff")
  local sb, kb = M.series(b, 2, "diff")
  if ka ~= kb then
    error(("bad argument #2 to 'diff' (a %s result after a %s one)"):format(kb, ka), 2)
  end
  local grew, shrank, total = {}, {}, 0
  local function add(name, x, y)
    local d = (y or 0) - (x or 0)
    if d == 0 then return end
    local e = { name = name, before = x, after = y, delta = d }
    if d > 0 then grew[#grew + 1] = e else shrank[#shrank + 1] = e end
    total = total + d
  end
  for k, v in pairs(sb) do add(k, sa[k], v) end
  for k, v in pairs(sa) do
    if sb[k] == nil then add(k, v, nil) end
  end
  local function order(x, y)
    if x.delta ~= y.delta then
      return math.abs(x.delta) > math.abs(y.delta)
    end
    return x.name < y.name
  end
  table.sort(grew, order)
  table.sort(shrank, order)
  return { source = ka, grew = grew, shrank = shrank, total = total }
end

return M
