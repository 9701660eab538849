local H = require "spec.helper"

local before_globals = H.globals()
local memprobe = require "memprobe"
local heap = require "memprobe.heap"
local core = require "memprobe.core"

local fixtures = "spec/fixtures/heapmods/?.lua;"

-- Exact live bytes (GC stopped, trace compiler off) around fn().
local function cost(fn)
  if jit then jit.off(); jit.flush() end
  collectgarbage("collect")
  collectgarbage("stop")
  local before = collectgarbage("count") * 1024
  local keep = fn()
  local after = collectgarbage("count") * 1024
  collectgarbage("restart")
  if jit then jit.on() end
  return after - before, keep
end

-- Collects until the heap stops shrinking: the VMs halve their string
-- table at most once per cycle, so one cycle may leave more to free.
local function full_gc()
  H.settle_gc(12)
end

local function row_of(rows, name)
  for _, r in ipairs(rows) do
    if r.name == name then return r end
  end
end

describe("memprobe.calibrate()", function()
  local m = heap.model()

  it("does not create globals", function()
    for k in pairs(H.globals()) do assert.is_true(before_globals[k], k) end
  end)

  it("measures sizes that match fresh objects on this VM", function()
    -- tables filled in order: the model predicts them from entry counts
    for _, n in ipairs{ 0, 1, 3, 5, 9, 17, 33, 100, 300, 1000 } do
      local bytes = cost(function()
        local t = {}
        for i = 1, n do t[i] = i end
        return t
      end)
      local k, size = 0, 1
      while size < n do k, size = k + 1, size * 2 end
      local want = m.table + (n > 0 and m.array[k + 1] or 0)
      assert.are.equal(want, bytes, "array of " .. n)
    end
    local keys = {}
    for i = 1, 600 do keys[i] = "key" .. i end
    for _, n in ipairs{ 1, 2, 3, 6, 12, 40, 130, 600 } do
      local bytes = cost(function()
        local t = {}
        for i = 1, n do t[keys[i]] = i end
        return t
      end)
      local k, size = 0, 1
      while size < n do k, size = k + 1, size * 2 end
      assert.are.equal(m.table + m.hash[k + 1], bytes, "hash of " .. n)
    end
  end)

  it("gives strings, closures, userdata their exact cost", function()
    local seed = 1e6
    for _, len in ipairs{ 5, 17, 40, 41, 64, 100, 1000, 5000 } do
      seed = seed + 1
      local bytes = cost(function()
        return core.heap_sample("string", len, seed)
      end)
      local want
      if len <= 64 then want = m.string[len + 1]
      else
        local d = len - 1024
        want = m.string_long + math.floor((d + m.string_align - m.string_first)
          / m.string_align) * m.string_align
      end
      assert.are.equal(want, bytes, "string of " .. len)
    end
    local make = (loadstring or load)(  -- luacheck: ignore 113
      "return function() local a, b = 1, 2 return function() return a, b end end")()
    local bytes = cost(make)
    assert.are.equal(m.lclosure + 2 * m.lclosure_up + 2 * m.upvalue, bytes)
    bytes = cost(function() return core.heap_sample("userdata", 100) end)
    assert.are.equal(m.userdata + 100, bytes)
    if H.since("5.4") then  -- several user values
      bytes = cost(function() return core.heap_sample("userdata", 100, 3) end)
      assert.are.equal(m.userdata_uvbase + 3 * m.userdata_uv + 100, bytes)
      assert.is_true(m.userdata_uv > 0)
    end
  end)

  it("can use any exact live-bytes counter", function()
    local calls = 0
    local m2 = heap.calibrate{ live = function()
      calls = calls + 1
      return collectgarbage("count") * 1024
    end }
    assert.is_true(calls > 100)
    assert.are.equal(m.table, m2.table)
    assert.are.same(m.array, m2.array)
  end)

  it("gives the same model from the allocator tracker's live bytes", function()
    if type(memprobe.track) ~= "function" then return end
    local had = memprobe.tracker()
    local t = memprobe.track()
    local m2 = heap.calibrate{ live = function() return t:stats().live end }
    if not had then t:untrack() end
    assert.is_true(m2.zero > 0)  -- stats() allocates its answer
    for _, k in ipairs{ "table", "lclosure", "lclosure_up", "upvalue",
                        "userdata", "thread", "string_long" } do
      assert.are.equal(m[k], m2[k], k)
    end
    assert.are.same(m.array, m2.array)
    assert.are.same(m.hash, m2.hash)
    assert.are.same(m.string, m2.string)
  end)
end)

describe("memprobe.heap()", function()
  it("returns a census whose total is near collectgarbage('count')", function()
    package.path = fixtures .. package.path
    require "hm_records"
    require "hm_chains"
    full_gc()
    local h = memprobe.heap()
    local sum, count = 0, 0
    for _, e in pairs(h.by_type) do
      sum = sum + e.bytes
      count = count + e.count
    end
    assert.are.equal(h.total, sum)
    assert.are.equal(h.objects, count)
    -- measured: within 3% on every runtime with the fixtures loaded
    assert.is_true(math.abs(h.total - h.gc_bytes) / h.gc_bytes < 0.10,
      ("census %d vs gc %d"):format(h.total, h.gc_bytes))
    assert.is_true(h.by_type.table.count > 23000)
    assert.is_true(h.by_type.proto.count > 0)
    package.loaded.hm_records, package.loaded.hm_chains = nil, nil
  end)

  it("names userdata by __name or registry key, and keys functions by source:line", function()
    local h = memprobe.heap()
    assert.is_not_nil(h.userdata["memprobe.Context"])
    local found
    for key, e in pairs(h.functions) do
      if key:match("heap%.lua:%d+$") then
        found = e
        assert.is_true(e.proto >= 0)
      end
    end
    assert.is_not_nil(found)
  end)

  it("lists the largest containers with their paths", function()
    -- bigger than what earlier specs leave (on LuaJIT, newproxy's weak
    -- table keeps the hash part its proxies grew, sized from its header)
    local big = {}
    for i = 1, 50000 do big[i] = i end
    package.loaded.spec_big = big
    local h = memprobe.heap{ top = 3 }
    package.loaded.spec_big = nil
    assert.are.equal(3, #h.largest)
    assert.are.equal("package.loaded.spec_big", h.largest[1].path)
    assert.are.equal(50000, h.largest[1].entries)
    assert.is_true(h.largest[1].bytes >= h.largest[2].bytes)
  end)

  it("survives LuaJIT cdata", function()
    local ok, ffi = pcall(require, "ffi")
    if not ok then return end
    local keep = { ffi.new("int64_t", 1), ffi.new("double[16]") }
    package.loaded.spec_cdata = keep
    local h = memprobe.heap()
    package.loaded.spec_cdata = nil
    assert.is_true(h.by_type.cdata.count >= 2)
  end)

  it("raises on bad arguments", function()
    for _, case in ipairs{
      { function() memprobe.heap{ top = -1 } end, "top" },
      { function() memprobe.heap{ model = {} } end, "model" },
      { function() memprobe.path(1) end, "collectable" },
      { function() memprobe.snapshot{ model = 3 } end, "table expected" },
    } do
      local ok, err = pcall(case[1])
      assert.is_false(ok)
      assert.matches(case[2], tostring(err), 1, true)
    end
  end)
end)

describe("memprobe.modules()", function()
  setup(function() package.path = fixtures .. package.path end)

  -- Ground truth: the bytes a collection frees once the module is gone.
  for _, name in ipairs{ "hm_strings", "hm_records", "hm_closures",
                         "hm_chains" } do
    it("reports exclusive bytes of " .. name .. " within 10% of what dropping it frees", function()
      -- The VMs halve their string table when a collection leaves it a
      -- quarter full: memory no module owns, freed when a count happens to
      -- cross that line. Settle the table first (then it is at most four
      -- times its count), then add more ballast strings than the module
      -- has: dropping the module can no longer take the count below a
      -- quarter, so the bytes freed are the module's own.
      full_gc()
      local ballast = {}
      for i = 1, 6000 do ballast[i] = "ballast string " .. i end
      require(name)
      full_gc()
      local rows = memprobe.modules()
      local exclusive = row_of(rows, name).exclusive
      rows = nil -- luacheck: ignore 311
      full_gc()
      local before = collectgarbage("count") * 1024
      package.loaded[name] = nil
      full_gc()
      local freed = before - collectgarbage("count") * 1024
      assert.are.equal(6000, #ballast)
      local err = math.abs(exclusive - freed) / freed
      assert.is_true(freed > 100000)
      assert.is_true(err < 0.10, ("%s: exclusive %d, freed %d (%.1f%%)")
        :format(name, exclusive, freed, err * 100))
    end)
  end

  it("gives rows that add up to the census total", function()
    full_gc()
    local census = memprobe.heap().total  -- the census table goes, not
    full_gc()                             -- to be counted by modules()
    local rows = memprobe.modules()
    local sum = 0
    for _, r in ipairs(rows) do
      sum = sum + r.exclusive
      assert.is_string(r.name)
      assert.is_table(r.by_type)
    end
    assert.are.equal(rows.total, sum)
    assert.is_not_nil(row_of(rows, "(registry)"))
    assert.is_not_nil(row_of(rows, "(stack)"))
    assert.is_not_nil(row_of(rows, "string"))
    -- the same heap walked twice, once with a label per root
    assert.is_true(math.abs(census - rows.total) / census < 0.02,
      ("census %d, rows %d"):format(census, rows.total))
  end)

  it("takes the load cost from requires() when loads are accounted", function()
    if type(memprobe.account_requires) ~= "function" then return end
    memprobe.account_requires()
    require "hm_records"
    memprobe.account_requires(false)
    local retained
    for _, r in ipairs(memprobe.requires()) do
      if r.name == "hm_records" then retained = r.retained end
    end
    local row = row_of(memprobe.modules(), "hm_records")
    package.loaded.hm_records = nil
    assert.is_number(retained)
    assert.are.equal(retained, row.load)
    assert.is_nil(row_of(memprobe.modules(), "string").load)
  end)

  it("counts what two modules share as shared, not exclusive", function()
    local common = {}
    for i = 1, 2000 do common[i] = "shared string " .. i end
    package.loaded.spec_a = { common = common, own = { 1, 2, 3 } }
    package.loaded.spec_b = { common = common }
    local rows = memprobe.modules()
    package.loaded.spec_a, package.loaded.spec_b = nil, nil
    local a, b = row_of(rows, "spec_a"), row_of(rows, "spec_b")
    assert.is_true(a.exclusive < 1000)
    assert.is_true(b.exclusive < 1000)
    assert.is_true(a.shared > 50000)
    assert.are.equal(a.shared, b.shared)
    assert.is_true(row_of(rows, "(shared)").exclusive >= a.shared)
  end)
end)

describe("memprobe.snapshot()", function()
  it("gives paths as edges { kind, key, data }, data-like ones marked", function()
    package.loaded.spec_edges = (function()  -- no local holds them
      local big, holder = {}, {}
      for i = 1, 5000 do big[i] = true end
      for i = 1, 100 do holder["f" .. i] = i end
      holder.f50 = big
      return { holder = holder }
    end)()
    local snap = memprobe.snapshot()
    local c = snap:census(1000)
    snap:close()
    package.loaded.spec_edges = nil
    local path
    for _, e in ipairs(c.largest) do
      if e.path[2] and e.path[2].key == "holder" and e.path[3] then
        path = e.path
      end
    end
    assert.is_table(path)
    assert.are.same({ kind = "root", key = "package.loaded.spec_edges" },
                    path[1])
    assert.are.same({ kind = "field", key = "holder" }, path[2])
    -- a field of a table of more than 64 entries is data
    assert.are.same({ kind = "field", key = "f50", data = true }, path[3])
    assert.are.equal("package.loaded.spec_edges.holder[*]",
                     heap.pattern(path))
  end)

  it("diffs name a planted leak by its path pattern", function()
    local quest = { cache = {} }
    package.loaded.quest = quest
    full_gc()
    local s1 = memprobe.snapshot()
    for i = 1, 300 do quest.cache["player" .. i] = { hp = i, name = "p" .. i } end
    local s2 = memprobe.snapshot()
    local d = s2:diff(s1)
    package.loaded.quest = nil
    assert.are.equal("package.loaded.quest.cache[*]", d.added[1].path)
    -- a table, a key and a name per player (and the cache's new part)
    assert.is_true(d.added[1].count >= 900 and d.added[1].count <= 902)
    assert.are.equal("package.loaded.quest.cache", d.grown[1].path)
    assert.are.equal(300, d.grown[1].entries)
    local f = require("memprobe.format").diff(d)
    assert.matches("package.loaded.quest.cache[*]", f, 1, true)
  end)

  it("counts none of its own walk as added, freed or grown", function()
    full_gc()
    local s1 = memprobe.snapshot()
    local s2 = memprobe.snapshot()
    local d = s2:diff(s1)
    assert.are.same({}, d.added)
    assert.are.same({}, d.freed)
    assert.are.same({}, d.grown)
  end)

  it("does not take new objects at its walk's freed addresses for old", function()
    local holder = {}
    package.loaded.spec_reuse = holder
    full_gc()
    local s1 = memprobe.snapshot()
    collectgarbage("collect")  -- the walk's own tables go; their blocks
    for i = 1, 200 do holder[i] = {} end  -- are taken by these
    local d = memprobe.snapshot():diff(s1)
    package.loaded.spec_reuse = nil
    assert.are.equal(1, #d.added)
    assert.are.equal("package.loaded.spec_reuse[*]", d.added[1].path)
    assert.are.equal(200, d.added[1].count)
    assert.are.equal(1, #d.grown)
    assert.are.equal(200, d.grown[1].entries)
  end)

  it("reports freed objects", function()
    local store = { list = {} }
    for i = 1, 200 do store.list[i] = { i } end
    package.loaded.spec_store = store
    local s1 = memprobe.snapshot()
    store.list = nil
    local s2 = memprobe.snapshot()
    package.loaded.spec_store = nil
    local d = s2:diff(s1)
    assert.are.equal("package.loaded.spec_store.list", d.freed[1].path)
    assert.are.equal(201, d.freed[1].count)
  end)

  -- Built in functions, so that no local of this one holds the parts.
  local function weak_pair()
    local target = {}
    for i = 1, 1000 do target[i] = i end
    return { v = setmetatable({ target }, { __mode = "v" }),
             k = setmetatable({ [target] = "x" }, { __mode = "k" }) },
           target
  end

  it("does not follow weak references", function()
    local weak, target = weak_pair()
    package.loaded.spec_weak = weak
    package.loaded.spec_strong = { target }
    target = nil -- luacheck: ignore 311
    local rows = memprobe.modules()
    package.loaded.spec_weak, package.loaded.spec_strong = nil, nil
    local w, s = row_of(rows, "spec_weak"), row_of(rows, "spec_strong")
    assert.is_true(w.exclusive < 2000, w.exclusive)
    assert.is_true(s.exclusive > 8000, s.exclusive)
    assert.is_true(w.shared < 2000, w.shared)  -- "k", "v": interned, shared
  end)

  local function ephemeron()
    local key, value = {}, {}
    for i = 1, 1000 do value[i] = i end
    local eph = setmetatable({}, { __mode = "k" })
    eph[key] = value
    eph[{}] = { "unreachable" }
    return { eph = eph, key = key }
  end

  it("keeps an ephemeron's value only while its key lives", function()
    if _VERSION == "Lua 5.1" then return end  -- no ephemerons there
    package.loaded.spec_eph = ephemeron()
    local rows = memprobe.modules()
    local with_key = row_of(rows, "spec_eph").exclusive
    package.loaded.spec_eph.key = nil
    rows = memprobe.modules()
    local without = row_of(rows, "spec_eph").exclusive
    package.loaded.spec_eph = nil
    assert.is_true(with_key > 8000, with_key)  -- 1000 slots: 9 B each on 5.5
    assert.is_true(without < 1000, without)
  end)

  it("walks a large heap in slices of bounded work while it changes", function()
    local big = {}
    for i = 1, 100000 do big[i] = { i } end
    package.loaded.spec_big = big
    local snap = memprobe.snapshot{ max_units = 5000 }
    local steps = 0
    while not snap:step(nil, 5000) do
      steps = steps + 1
      big[#big + 1] = { "added during the walk" }
      big[steps] = nil                         -- and freed
    end
    local st = snap:stats()
    package.loaded.spec_big = nil
    assert.is_true(st.done)
    assert.is_true(st.max_units <= 5000)
    assert.is_true(st.steps > 40)
    assert.is_true(st.objects > 100000)
    -- time slices: loosely, never asserted on a clock
    local t = memprobe.snapshot{ max_ms = 2 }
    while not t:step(2) do end
    assert.is_true(t:stats().done)
  end)

  it("finds the same prototypes in steps of a few units as in one go", function()
    local function protos(snap)
      local c = snap:census(0)
      snap:close()
      return c.by_type.proto.count, c.by_type.proto.bytes
    end
    local n1, b1 = protos(memprobe.snapshot())
    local sliced = memprobe.snapshot{ max_units = 20 }
    local steps = 0
    while not sliced:step(nil, 20) do steps = steps + 1 end
    assert.is_true(sliced:stats().max_units <= 20)
    local n2, b2 = protos(sliced)
    assert.is_true(steps > 100)
    assert.are.equal(n1, n2)
    assert.are.equal(b1, b2)
  end)

  it("starts a table over when it changed under a paused walk", function()
    local t = {}
    for i = 1, 5000 do t["old" .. i] = i end
    package.loaded["!first"] = t  -- sorts first: expanded first
    local snap = memprobe.snapshot{ max_units = 200 }
    assert.is_false(snap:stats().done)
    for k in pairs(t) do t[k] = nil end  -- the saved key goes, and a
    for i = 1, 20000 do t["new" .. i] = i end  -- rehash forgets it
    while not snap:step(nil, 200) do end
    package.loaded["!first"] = nil
    local st = snap:stats()
    assert.is_true(st.done)
    assert.is_true(st.restarts >= 1)
  end)

  it("frees its C buffers when the walk fails midway", function()
    full_gc()
    local base = core.heap_walk_buffers()
    for _ = 1, 5 do
      local ok, err = pcall(memprobe.snapshot, { fail_after = 500 })
      assert.is_false(ok)
      assert.matches("failing on purpose", err)
    end
    assert.are.equal(base, core.heap_walk_buffers())
    local s = memprobe.snapshot()
    assert.is_true(core.heap_walk_buffers() > base)
    s:close()
    assert.are.equal(base, core.heap_walk_buffers())
    assert.matches("closed", tostring(s))
    assert.has_error(function() s:stats() end)
  end)
end)

describe("memprobe.path()", function()
  it("gives the shortest readable paths, named keys first", function()
    local obj = {}
    package.loaded.spec_paths = { deep = { deeper = { obj } }, named = obj }
    local paths = memprobe.path(obj)
    package.loaded.spec_paths = nil
    assert.are.equal("package.loaded.spec_paths.named", paths[1])
    assert.are.equal("package.loaded.spec_paths.deep.deeper[1]", paths[2])
  end)

  it("finds objects held by upvalues", function()
    local hidden = {}
    local function f() return hidden end
    package.loaded.spec_up = { f = f }
    local paths = memprobe.path(hidden)
    package.loaded.spec_up = nil
    assert.are.equal("package.loaded.spec_up.f:upvalue(hidden)", paths[1])
  end)
end)
