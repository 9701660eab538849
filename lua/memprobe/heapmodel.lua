--- The size model of the running VM build: the exact cost of sample
-- objects, read as the change of live bytes when each is created (see
-- docs/heap.md). This chunk is one function with no upvalue but its
-- globals, so that `memprobe.heap` can run it in a scratch state of the
-- same build (`string.dump`, then `core.heap_model_job`): the model is a
-- property of the build, and measuring it there costs the same whatever
-- the size of the heap being inspected. Run in the program's own state
-- instead when `opts.live` names a counter of that state.
--
-- `calibrate(core, opts)`: `core` gives `heap_sample` and
-- `heap_dumpsize`; `opts.live` is the counter (`collectgarbage("count")`
-- by default), `opts.pause` is called between two samples (the scratch
-- state yields there, so that a budgeted step can stop).
-- @module memprobe.heapmodel

return function(core, opts)
  local pause = opts and opts.pause or function() end
  local load = loadstring or load  -- luacheck: ignore 113
  local PARTS = 12                 -- calibrated table parts: 1 .. 2^11 slots

  --- Live bytes of the Lua heap from `collectgarbage("count")`, which is exact.
  local function gc_live()
    return collectgarbage("count") * 1024
  end

  -- Runs fn with the collector stopped and (on LuaJIT) the trace compiler
  -- off, so that a byte delta is the cost of the objects fn creates. In
  -- the scratch state (pause given) an error ends the state anyway: no
  -- pcall, which PUC 5.1 could not yield across.
  local function quiet(fn)
    local ok, running = pcall(collectgarbage, "isrunning")
    if not ok or type(running) ~= "boolean" then running = true end
    local jit_on = jit and jit.status and jit.status()
    if jit_on then jit.off(); jit.flush() end
    collectgarbage("collect")
    collectgarbage("stop")
    local res
    if opts and opts.pause then res = { true, fn() } else res = { pcall(fn) } end
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
    pause()
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
  local function calibrate()
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
      -- LuaJIT sizes a table by what built it, which its keys do not tell
      -- (docs/heap.md): where the header's layout is found, the walk reads
      -- the sizes from it, with these bytes per array slot and hash node.
      -- PUC Lua too, by constructors, lua_createtable and shrinking keys:
      -- there the array costs array_base + slot per slot (5.5 adds a tag
      -- byte per slot and a word) and the hash part what 2^k keys cost.
      local layout = core.heap_sample("tablayout", m.table)
      local function sized(a, h)
        return measure(live, function() return core.heap_sample("table", a, h) end)
          - m.table
      end
      if layout and layout.colo then
        local slot, node = sized(40, 0) / 41, sized(0, 8) / 8
        if slot > 0 and node > 0 and sized(5, 0) == 6 * slot then
          layout.slot, layout.node = slot, node
          m.jit_layout = layout
        end
      elseif layout then
        local one = sized(1, 0)
        local slot = (sized(41, 0) - one) / 40
        local base = one - slot
        if slot > 0 and sized(5, 0) == base + 5 * slot and sized(0, 3) == m.hash[3]
          and sized(0, 8) == m.hash[4] then
          layout.slot, layout.array_base = slot, base
          m.puc_layout = layout
        end
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
          if i % 2048 == 0 then pause() end
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
      pause()
      f = nil -- luacheck: ignore 311
    end
    m.proto_base, m.proto_byte = fit2(samples)
    return m
  end
  return calibrate()
end
