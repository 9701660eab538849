--- The Lua heap: a census by type, live bytes per module, snapshots and
-- their diffs, reference paths. The walk is in C (`memprobe.core`); the
-- size model it uses is measured here, on the running VM, and the paths it
-- returns as segments are joined and grouped here. See docs/heap.md.
-- @module memprobe.heap

local core = require "memprobe.core"
local settle = require("memprobe.settle").settle

local M = {}

local load = loadstring or load  -- luacheck: ignore 113
local PARTS = 12                 -- calibrated table parts: 1 .. 2^11 slots

--- Live bytes of the Lua heap from `collectgarbage("count")`, which is exact.
local function gc_live()
  return collectgarbage("count") * 1024
end

-- Runs fn with the collector stopped and (on LuaJIT) the trace compiler
-- off, so that a byte delta is the cost of the objects fn creates.
local function quiet(fn)
  local ok, running = pcall(collectgarbage, "isrunning")
  if not ok or type(running) ~= "boolean" then running = true end
  local jit_on = jit and jit.status and jit.status()
  if jit_on then jit.off(); jit.flush() end
  collectgarbage("collect")
  collectgarbage("stop")
  local res = { pcall(fn) }
  if running then collectgarbage("restart") end
  if jit_on then jit.on() end
  if not res[1] then error(res[2], 0) end
  return res[2]
end

-- The most frequent delta over a few tries: a string-table resize or a
-- stack reallocation can land inside one try, not inside most. A counter
-- that allocates to answer (zero, what measuring nothing reads, is not 0:
-- a tracker's stats()) has that answer taken off, measured again before
-- each try: the answer holds a histogram with an entry per size class
-- seen so far, so it grows when a sample allocates a size never seen.
local function measure_with(live, zero, make, a, b)
  local seen, best, bestn = {}, 0, 0
  for _ = 1, 5 do
    local z = zero
    if zero ~= 0 then
      live()
      z = live()
      z = live() - z
    end
    local before = live()
    local x = make(a, b) -- luacheck: ignore 211
    local after = live()
    local d = after - before - z
    seen[d] = (seen[d] or 0) + 1
    if seen[d] > bestn then best, bestn = d, seen[d] end
  end
  return best
end

local function nothing() return nil end

-- Least squares y = a*x1 + b*x2 over the samples {x1, x2, y}.
local function fit2(samples)
  local s11, s12, s22, s1y, s2y = 0, 0, 0, 0, 0
  for _, p in ipairs(samples) do
    s11 = s11 + p[1] * p[1]; s12 = s12 + p[1] * p[2]; s22 = s22 + p[2] * p[2]
    s1y = s1y + p[1] * p[3]; s2y = s2y + p[2] * p[3]
  end
  local det = s11 * s22 - s12 * s12
  return (s1y * s22 - s2y * s12) / det, (s11 * s2y - s12 * s1y) / det
end

-- A chunk with n functions of roughly 'body' statements each, with fresh
-- names so that its constants are new strings, as a module's are.
local function sample_chunk(n, body, tag)
  local out = { "local M = {}" }
  for i = 1, n do
    out[#out + 1] = ("function M.f%s_%d(a, b)"):format(tag, i)
    for j = 1, body do
      out[#out + 1] = ("  local v%d = a.k%s_%d_%d or b[%d] .. 'c%s%d%d'")
        :format(j, tag, i, j, j, tag, i, j)
    end
    out[#out + 1] = "  return a, b\nend"
  end
  out[#out + 1] = "return M"
  return table.concat(out, "\n")
end

--- Measures the size model of the running VM. Every figure is the exact
-- change of live bytes when a sample object is created, so no struct
-- layout is assumed; `live` defaults to `collectgarbage("count")` and may
-- be any exact live-bytes counter (an allocator tracker's).
-- @tparam[opt] {live=function} opts
-- @treturn table the model `memprobe.heap` functions take as `opts.model`
function M.calibrate(opts)
  local counter = opts and opts.live or gc_live
  local live = counter
  local zero = 0
  local m = { array = {}, hash = {} }
  local keys = {}
  for i = 1, 2 ^ (PARTS - 1) do keys[i] = "calibration key " .. i end
  local factories, pairs_of = {}, {}
  for n = 1, 3 do
    local names = {}
    for i = 1, n do names[i] = "a" .. i end
    local decl = ("local %s = %s"):format(table.concat(names, ", "),
                                          ("1, "):rep(n):sub(1, -3))
    local ret = "return " .. table.concat(names, ", ")
    factories[n] = load(("return function() %s return function() %s end end")
      :format(decl, ret))()
    pairs_of[n] = load(("return function() %s return function() %s end, " ..
      "function() %s end end"):format(decl, ret, ret))()
  end
  local co_body = function() end
  local seed = 0
  local function str(len)
    seed = seed + 1
    return core.heap_sample("string", len, seed)
  end
  -- The same for the figures taken outside measure_with.
  local function rezero()
    if zero ~= 0 then zero = measure_with(counter, 0, nothing) end
  end
  local function measure(l, make, x, y)
    return measure_with(l, zero, make, x, y)
  end
  quiet(function()
    zero = measure_with(counter, 0, nothing)
    m.zero = zero
    m.table = measure(live, function() return {} end)
    for k = 0, PARTS - 1 do
      local n = 2 ^ k
      m.array[k + 1] = measure(live, function()
        local t = {}
        for i = 1, n do t[i] = true end
        return t
      end) - m.table
      m.hash[k + 1] = measure(live, function()
        local t = {}
        for i = 1, n do t[keys[i]] = true end
        return t
      end) - m.table
    end
    -- Sizes by length up to 64; samples shorter than 4 bytes might be
    -- interned already, so they cost what 4 bytes cost. Past 64 bytes: the
    -- size at 1024 and the step of its padding.
    m.string = {}
    for len = 4, 64 do m.string[len + 1] = measure(live, str, len) end
    for len = 0, 3 do m.string[len + 1] = m.string[5] end
    local base, steps = measure(live, str, 1024), {}
    for i = 1, 16 do
      if measure(live, str, 1024 + i) > base then steps[#steps + 1] = i end
    end
    m.string_long = base
    m.string_first = steps[1] or 1
    m.string_align = measure(live, str, 1024 + m.string_first) - base
    -- Which strings are interned: making one twice costs nothing.
    local function interned(len)
      seed = seed + 1
      local a = core.heap_sample("string", len, seed)
      rezero()
      local before = live()
      local b = core.heap_sample("string", len, seed)
      return live() - before - zero == 0 and a == b
    end
    m.intern_max = 0
    if interned(1024) then m.intern_max = 2 ^ 30
    else
      for len = 4, 64 do
        if not interned(len) then break end
        m.intern_max = len
      end
    end
    -- Interned strings also fill the VM's string table, which doubles
    -- when full and halves when a collection leaves it a quarter full:
    -- what a string frees there ranges from nothing to about two slots,
    -- so the walk counts none. The slot size (two doublings tell it) is
    -- reported for docs/heap.md's error bound.
    m.string_table = 0
    if m.intern_max > 0 then
      local keep = core.heap_sample("table", 40000, 0)
      local spikes, cost = {}, m.string[9]
      rezero()
      for i = 1, 40000 do
        local before = live()
        local x = str(8)
        local d = live() - before - zero - cost
        keep[i] = x
        if d > 0 then
          spikes[#spikes + 1] = { i, d }
          if #spikes == 2 then break end
        end
      end
      if #spikes == 2 then
        local slot = spikes[1][2] / (spikes[2][1] - spikes[1][1])
        m.string_table = slot
      end
    end
    local one, three = measure(live, factories[1]), measure(live, factories[3])
    local c1 = measure(live, pairs_of[1]) - one
    local c3 = measure(live, pairs_of[3]) - three
    m.lclosure_up = (c3 - c1) / 2
    m.lclosure = c1 - m.lclosure_up
    m.upvalue = (three - c3) / 3
    m.cclosure0 = measure(live, core.heap_sample, "cclosure", 0)
    local cc1 = measure(live, core.heap_sample, "cclosure", 1)
    m.cclosure_up = (measure(live, core.heap_sample, "cclosure", 3) - cc1) / 2
    m.cclosure = cc1 - m.cclosure_up
    m.userdata = measure(live, core.heap_sample, "userdata", 0)
    -- 5.4: a block without user values has a shorter header
    m.userdata_uv, m.userdata_uvbase = 0, m.userdata
    if _VERSION >= "Lua 5.4" then  -- 5.4 and later
      local uv1 = measure(live, function()
        return core.heap_sample("userdata", 0, 1)
      end)
      local uv3 = measure(live, function()
        return core.heap_sample("userdata", 0, 3)
      end)
      m.userdata_uv = (uv3 - uv1) / 2
      m.userdata_uvbase = uv1 - m.userdata_uv
    end
    m.thread = measure(live, coroutine.create, co_body)
    local okffi, ffi = pcall(require, "ffi")
    m.cdata = okffi and measure(live, function() return ffi.new("int64_t") end)
      or 0
  end)
  -- Prototypes: load chunks of several shapes, keep their main function,
  -- and fit bytes = base * protos + per_byte * dump length. This is a
  -- fit, not an identity: see docs/heap.md.
  local samples = {}
  local shapes = { { 1, 1 }, { 1, 12 }, { 4, 3 }, { 8, 1 }, { 8, 8 },
                   { 16, 2 }, { 24, 4 }, { 2, 30 } }
  for i, shape in ipairs(shapes) do
    local src = sample_chunk(shape[1], shape[2], "c" .. i .. "x")
    local name = "=calibration " .. i
    collectgarbage("collect")
    collectgarbage("collect")
    rezero()
    local before = live()
    local f = assert(load(src, name))
    collectgarbage("collect")
    collectgarbage("collect")
    local bytes = live() - before - zero
    local nups = _VERSION == "Lua 5.1" and 0 or 1  -- _ENV
    bytes = bytes - m.lclosure - nups * (m.lclosure_up + m.upvalue)
    samples[#samples + 1] = { shape[1] + 1, core.heap_dumpsize(f), bytes }
    f = nil -- luacheck: ignore 311
  end
  m.proto_base, m.proto_byte = fit2(samples)
  -- The string samples grew the string table; let it shrink back (one
  -- halving per cycle) so that calibrating leaves the VM as it was.
  settle(16)
  return m
end

local model_cache

--- The model of this VM, measured on first use and kept.
-- @tparam[opt] table opts `model` (a model to use), `live` (a counter)
-- @treturn table the model
function M.model(opts)
  if opts and opts.model then return opts.model end
  if not model_cache then model_cache = M.calibrate(opts) end
  return model_cache
end
local model = M.model

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys
end

local function is_name(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

local function module_path(name)
  if name == "_G" then return "_G" end
  return is_name(name) and "package.loaded." .. name
    or ("package.loaded[%q]"):format(name)
end

-- The roots of a walk: every package.loaded entry, then the registry (and
-- the string metatable, which lives outside it), then the running thread.
-- Returns the roots and the row names by label.
local function roots_of()
  local roots, names = {}, {}
  local loaded = package.loaded
  for _, name in ipairs(sorted_keys(loaded)) do
    names[#names + 1] = name
    roots[#roots + 1] = { loaded[name], module_path(name), #names }
  end
  local G = _G
  if loaded._G ~= G then
    names[#names + 1] = "(globals)"
    roots[#roots + 1] = { G, "_G", #names }
  end
  names[#names + 1] = "(registry)"
  roots[#roots + 1] = { debug.getregistry(), "registry", #names }
  roots[#roots + 1] = { debug.getmetatable(""), "registry.<string metatable>",
                        #names }
  names[#names + 1] = "(stack)"
  roots[#roots + 1] = { core.heap_thread(), "thread", #names }
  return roots, names
end

--- Joins path segments into a string.
local function join(path)
  return table.concat(path)
end

--- The pattern of a path given as segments: indices, and the keys of
-- tables with many entries (data rather than names), become `[*]`.
-- @tparam {string,...} path segments (".name", "[3]", ":upvalue(x)" ...)
-- @tparam {number,...} wide entry count of the table each segment leaves
-- @treturn string
function M.pattern(path, wide)
  local out = {}
  for i, seg in ipairs(path) do
    if seg:match("^%[%d+%]$") or seg:match("^%[<") or
       ((wide[i] or 0) > 64 and (seg:match("^%.") or seg:match('^%["'))) then
      seg = "[*]"
    end
    out[i] = seg
  end
  return table.concat(out)
end
local pattern = M.pattern

-- The functions whose frames are the walk's own (filled in at the end):
-- the walk skips them on the running thread, so that their locals, garbage
-- once it returns, are not counted as live.
local own = {}

local function walk(opts, label_each, target)
  opts = opts or {}
  -- a timed walk's first slice counts from here
  local started = opts.max_ms and core.heap_clock()
  local roots, names = roots_of()
  if not label_each then
    for _, r in ipairs(roots) do r[3] = 1 end
  end
  local o = { max_objects = opts.max_objects, max_ms = opts.max_ms,
              max_units = opts.max_units, fail_after = opts.fail_after,
              target = target, own = own, started = started }
  return core.heap_snapshot(model(opts), roots, o), names, roots
end

local function finish(snap)
  while not snap:step() do end
  return snap
end

--- Census of the Lua heap.
-- @tparam[opt] table opts `top` (largest containers, default 10),
-- `model`, `max_objects`
-- @treturn table `{ by_type = {[type] = {count, bytes}}, userdata =
-- {[__name] = {count, bytes}}, functions = {["src:line"] = {count, bytes,
-- proto}}, largest = {{path, bytes, entries, type}}, total, objects,
-- gc_bytes, unexplained, shared_code = {count, bytes, by_type}}`;
-- `shared_code` is what the host shares between states (skynet's code
-- cache: prototypes and their strings; shared tables), outside this
-- state's heap and not in `total`
function M.heap(opts)
  opts = opts or {}
  local gc_bytes = gc_live()
  local snap = finish((walk(opts)))
  local ok, c = pcall(snap.census, snap, opts.top or 10)
  snap:close()
  if not ok then error(c, 0) end
  for _, big in ipairs(c.largest) do
    big.path = join(big.path)
    big.wide = nil
  end
  c.gc_bytes = gc_bytes
  c.unexplained = gc_bytes - c.total
  return c
end

--- Live bytes per `package.loaded` entry, plus rows for the registry,
-- the running thread's stack and objects shared between roots, so that
-- the `exclusive` column adds up to the census total. Code the host
-- shares between states (skynet's code cache) is outside this state's
-- heap: a row `(shared code)` whose bytes are all `shared`.
-- @tparam[opt] table opts `model`, `max_objects`
-- @treturn table rows `{ name, exclusive, shared, objects, by_type, load }`
-- sorted by exclusive bytes; fields `total` and `gc_bytes`
function M.modules(opts)
  opts = opts or {}
  local gc_bytes = gc_live()
  local snap, names, roots = walk(opts, true)
  finish(snap)
  local ok, rows = pcall(snap.rows, snap, roots)
  snap:close()
  if not ok then error(rows, 0) end
  -- load cost: the bytes a load retained, when require accounting is on
  local loads = {}
  local mp = package.loaded.memprobe
  if type(mp) == "table" and type(mp.requires) == "function" then
    local okr, r = pcall(mp.requires)
    if okr and type(r) == "table" then
      for _, row in ipairs(r) do
        if type(row) == "table" and row.name then
          loads[row.name] = row.retained
        end
      end
    end
  end
  local out, total = {}, 0
  for label, name in ipairs(names) do
    local row = rows[label]
    out[#out + 1] = { name = name, exclusive = row.exclusive,
                      shared = row.shared, objects = row.objects,
                      by_type = row.by_type, load = loads[name] }
    total = total + row.exclusive
  end
  local sh = rows[-1]
  if sh then
    out[#out + 1] = { name = "(shared)", exclusive = sh.exclusive, shared = 0,
                      objects = sh.objects, by_type = sh.by_type }
    total = total + sh.exclusive
  end
  local code = rows.shared_code
  if code and code.count > 0 then
    out[#out + 1] = { name = "(shared code)", exclusive = 0,
                      shared = code.bytes, objects = code.count,
                      by_type = code.by_type }
  end
  table.sort(out, function(a, b)
    if a.exclusive ~= b.exclusive then return a.exclusive > b.exclusive end
    return a.name < b.name
  end)
  out.total, out.gc_bytes = total, gc_bytes
  return out
end

--- Starts a snapshot of the heap. Without budgets it walks the whole heap
-- now; with `max_ms` or `max_units` it stops there and `snap:step(ms)`
-- continues. See docs/heap.md for what a snapshot taken in slices means.
-- @tparam[opt] table opts `max_objects`, `max_ms`, `max_units`, `model`
-- @return a `memprobe.Snapshot`
function M.snapshot(opts)
  return (walk(opts))
end

--- The shortest readable reference paths to obj, named keys first.
-- @param obj a table, function, userdata, thread or string
-- @tparam[opt] table opts `max` paths (default 5), `model`
-- @treturn {string,...}
function M.path(obj, opts)
  local t = type(obj)
  if t ~= "table" and t ~= "function" and t ~= "userdata" and
     t ~= "thread" and t ~= "string" then
    error(("bad argument #1 to 'path' (collectable value expected, got %s)")
      :format(t), 2)
  end
  opts = opts or {}
  local snap = finish((walk(opts, false, obj)))
  local ok, refs = pcall(snap.referrers, snap)
  snap:close()
  if not ok then error(refs, 0) end
  local list = {}
  for _, r in ipairs(refs) do
    -- named keys cost nothing, indices 1, the VM's edges (upvalues,
    -- locals, metatables) 2
    local anon = 0
    for _, seg in ipairs(r.path) do
      if seg:match("^:") then anon = anon + 2
      elseif seg:match("^%[") then anon = anon + 1 end
    end
    list[#list + 1] = { path = join(r.path), anon = anon, len = #r.path }
  end
  table.sort(list, function(a, b)
    if a.anon ~= b.anon then return a.anon < b.anon end
    if a.len ~= b.len then return a.len < b.len end
    return a.path < b.path
  end)
  -- the running thread's locals hold obj at least in this call: show
  -- them only when nothing else does
  local others = false
  for _, e in ipairs(list) do
    if not e.path:match("^thread:") then others = true end
  end
  local out, seen = {}, {}
  for _, e in ipairs(list) do
    if not seen[e.path] and #out < (opts.max or 5) and
       not (others and e.path:match("^thread:")) then
      seen[e.path] = true
      out[#out + 1] = e.path
    end
  end
  return out
end

-- Merges groups from snap:added() by path pattern, biggest first.
local function merge(groups)
  local by, out = {}, {}
  for _, g in ipairs(groups) do
    local p = pattern(g.path, g.wide)
    local e = by[p]
    if not e then
      e = { path = p, count = 0, bytes = 0 }
      by[p] = e
      out[#out + 1] = e
    end
    e.count = e.count + g.count
    e.bytes = e.bytes + g.bytes
  end
  table.sort(out, function(a, b)
    if a.bytes ~= b.bytes then return a.bytes > b.bytes end
    return a.path < b.path
  end)
  return out
end

--- What changed from `older` to `newer` (both finished snapshots):
-- objects added, grouped by reference-path pattern; tables that grew and
-- by how many entries; objects freed, grouped the same way.
-- @return `{ added = {{path, count, bytes}}, grown = {{path, before, after,
-- entries, bytes}}, freed = {...}, added_bytes, freed_bytes }`
function M.diff(newer, older, opts)
  opts = opts or {}
  local added, grown = newer:added(older, opts.top or 20)
  local freed = older:added(newer, 0)
  local d = { added = merge(added), freed = merge(freed), grown = {},
              added_bytes = 0, freed_bytes = 0 }
  for _, g in ipairs(d.added) do d.added_bytes = d.added_bytes + g.bytes end
  for _, g in ipairs(d.freed) do d.freed_bytes = d.freed_bytes + g.bytes end
  for _, g in ipairs(grown) do
    g.path = join(g.path)
    g.wide = nil
    d.grown[#d.grown + 1] = g
  end
  table.sort(d.grown, function(a, b)
    if a.entries ~= b.entries then return a.entries > b.entries end
    return a.path < b.path
  end)
  local top = opts.top or 20
  for i = #d.grown, top + 1, -1 do d.grown[i] = nil end
  return d
end

own[1], own[2], own[3], own[4], own[5], own[6] =
  walk, finish, M.heap, M.modules, M.snapshot, M.path

-- snap:diff(older) on every snapshot.
local meta = debug.getregistry()["memprobe.Snapshot"]
if meta and meta.__index then meta.__index.diff = M.diff end

return M
