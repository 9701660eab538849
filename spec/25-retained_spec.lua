-- tools/busted-all.sh runs this file alone: it times its own steps.
-- Retained sizes: the dominator tree of a snapshot, checked against the
-- bytes a full collection frees when an object's only reference is cut.
local H = require "spec.helper"

local before_globals = H.globals()
local memprobe = require "memprobe"

local NAME = "spec_planted"

-- Collects until the heap stops shrinking.
local function full_gc() H.settle_gc(30) end

-- n records with strings of their own (the cut frees them too).
local function records(n, tag)
  local t = {}
  for i = 1, n do t[i] = { id = i, name = tag .. i } end
  return t
end

-- The planted module. Every case is a field of it (or behind its
-- closures), reachable from nothing else, so that cutting one reference
-- frees what it retains:
-- - a cache that only the upvalue of two of its closures holds;
-- - two parents sharing a table: each retains only what is its own, and
--   their common holder retains the shared table;
-- - a ring of 1000 nodes, its first node the only way in;
-- - a weak-valued table whose values a strong table holds, and an
--   ephemeron table (weak keys) whose values only it holds.
local function plant()
  local M = {}
  do
    local cache = records(2000, "cached")
    function M.get(i) return cache[i] end
    function M.cut() cache = nil end
  end
  local shared = records(1000, "shared")
  M.pair = { a = { s = shared, own = records(300, "a") },
             b = { s = shared, own = records(500, "b") } }
  local first = { n = 1 }
  local node = first
  for i = 2, 1000 do
    node.next = { n = i, pad = "ring" .. i }
    node = node.next
  end
  node.next = first
  M.ring = first
  M.strong = records(800, "strong")
  M.weak = setmetatable({}, { __mode = "v" })
  for i, v in ipairs(M.strong) do M.weak[i] = v end
  M.keys = records(100, "key")
  M.eph = setmetatable({}, { __mode = "k" })
  for i, k in ipairs(M.keys) do M.eph[k] = { i, "eph" .. i } end
  return M
end

-- Strings held while the cases run, so that the VM's string table never
-- shrinks in a cut: 5.2 halves it once it is a quarter full, which freed
-- up to 64 KiB of table besides the objects cut. The model counts each
-- string's share of the table (8 bytes on 64-bit), so retained sizes read
-- 3-6% above the bytes freed, as modules() does (docs/heap.md).
local ballast = {} -- luacheck: ignore 241
for i = 1, 40000 do ballast[i] = "ballast" .. i end

local function planted() return package.loaded[NAME] end
local function cache() return (select(2, debug.getupvalue(planted().get, 1))) end

-- The retained bytes of obj in snap (its own row of retainers).
local function retained_of(snap, obj)
  local rows = snap:retainers(obj, 1)
  assert.is_table(rows, "the snapshot has the object")
  return rows[1].retained
end

-- Bytes freed by cut(), a full collection around it.
local function freed_by(cut)
  full_gc()
  local before = collectgarbage("count") * 1024
  cut()
  full_gc()
  return before - collectgarbage("count") * 1024
end

local function within(what, retained, freed, tolerance)
  local err = (retained - freed) / freed
  assert.is_true(math.abs(err) < tolerance,
    ("%s on %s: retained %d, freed %d (%+.1f%%)")
      :format(what, jit and jit.version or _VERSION, retained, freed, err * 100))
end

-- The cases: the object (from the planted module), and how to cut its
-- only reference. Each runs on a fresh plant.
local cases = {
  { "the cache behind the upvalues", cache,
    function() planted().cut() end },
  { "a parent of a shared table", function() return planted().pair.a end,
    function() planted().pair.a = nil end },
  { "the other parent", function() return planted().pair.b end,
    function() planted().pair.b = nil end },
  { "the parents' common holder", function() return planted().pair end,
    function() planted().pair = nil end },
  { "a ring's way in", function() return planted().ring end,
    function() planted().ring = nil end },
  { "the strong table a weak one shares", function() return planted().strong end,
    function() planted().strong = nil end },
  { "the weak-valued table", function() return planted().weak end,
    function() planted().weak = nil end },
  { "the ephemeron table", function() return planted().eph end,
    function() planted().eph = nil end },
}

describe("snap:retained() and snap:retainers()", function()
  -- LuaJIT's traces live in the heap collectgarbage("count") reads, so
  -- one compiled between the two counts of a cut takes its bytes off the
  -- bytes freed (once, under ASan in the whole suite, the ephemeron case
  -- read 1.5 KB fewer freed than in other runs: +17%)
  before_each(function() if jit then jit.off(); jit.flush() end end)
  after_each(function()
    package.loaded[NAME] = nil
    if jit then jit.on() end
  end)
  teardown(function() ballast = nil end) -- luacheck: ignore 311

  it("does not create globals", function()
    package.loaded[NAME] = plant()
    local snap = memprobe.snapshot()
    snap:retained(5)
    snap:retainers(planted().ring)
    snap:close()
    for k in pairs(H.globals()) do assert.is_true(before_globals[k], k) end
  end)

  for _, case in ipairs(cases) do
    it("gives " .. case[1] .. " the bytes a collection frees when it is cut", function()
      full_gc()
      package.loaded[NAME] = plant()
      full_gc()
      local snap = memprobe.snapshot()
      local retained = retained_of(snap, case[2]())
      snap:close()
      snap = nil -- luacheck: ignore 311
      local freed = freed_by(case[3])
      if os.getenv("MEMPROBE_SPEC_VERBOSE") then
        io.stderr:write(("%s: retained %d freed %d (%+.2f%%)\n"):format(case[1], retained, freed,
          (retained - freed) / freed * 100))
      end
      within(case[1], retained, freed, 0.10)
    end)
  end

  it("puts a shared table under its parents' common dominator", function()
    package.loaded[NAME] = plant()
    local snap = memprobe.snapshot()
    local M = planted()
    local chain = snap:retainers(M.pair.a.s)
    assert.are.equal(M.pair.a.s, M.pair.b.s)
    -- the shared table, then the holder of both parents, then the module
    assert.are.equal("package.loaded." .. NAME .. ".pair", chain[2].path)
    assert.are.equal("package.loaded." .. NAME, chain[3].path)
    assert.are.equal(3, #chain)
    -- neither parent retains it
    assert.is_true(retained_of(snap, M.pair.a) < retained_of(snap, M.pair.a.s))
    -- a ring's nodes each dominate the rest of the ring
    local r1, r2 = retained_of(snap, M.ring), retained_of(snap, M.ring.next)
    assert.is_true(r1 > r2 and r2 > retained_of(snap, M.ring.next.next))
    -- a path finds the same chain
    local by_path = snap:retainers("package.loaded." .. NAME .. ".pair.b.s")
    assert.are.equal(#chain, #by_path)
    for i = 1, #chain do assert.are.equal(chain[i].path, by_path[i].path) end
    snap:close()
  end)

  it("lists the largest first, as integers on 5.3+", function()
    package.loaded[NAME] = plant()
    local snap = memprobe.snapshot()
    local rows = snap:retained(50)
    assert.are.equal(50, #rows)
    for i, r in ipairs(rows) do
      assert.is_string(r.path)
      assert.is_string(r.type)
      assert.is_true(r.retained >= r.self)
      if i > 1 then assert.is_true(rows[i - 1].retained >= r.retained) end
      if H.since("5.3") then
        assert.are.equal("integer", math.type(r.retained))
        assert.are.equal("integer", math.type(r.self))
      end
    end
    local found
    for _, r in ipairs(rows) do
      if r.path == "package.loaded." .. NAME .. ".get:upvalue(cache)" or
         r.path == "package.loaded." .. NAME .. ".cut:upvalue(cache)" then
        found = r
      end
    end
    assert.is_table(found, "the cache is among the 50 largest")
    -- a prototype has no referrer of its own: its path names it
    local protos = 0
    for _, r in ipairs(snap:retained(1024)) do
      if r.type == "proto" then
        protos = protos + 1
        assert.matches("^%(proto .+:%d+%)$", r.path)
      end
    end
    assert.is_true(protos > 0)
    snap:close()
  end)

  it("gives the same results in slices as in one go", function()
    package.loaded[NAME] = plant()
    full_gc()
    local whole = memprobe.snapshot()
    local sliced = memprobe.snapshot{ max_units = 300 }
    local steps, phases = 0, {}
    while not sliced:step(nil, 300) do
      steps = steps + 1
      phases[sliced:stats().phase] = true
    end
    assert.is_true(steps > 20)
    for _, ph in ipairs{ "dfs", "preds", "semi", "idom", "retain" } do
      assert.is_true(phases[ph], "a step stopped in " .. ph)
    end
    local M = planted()
    for _, obj in ipairs{ cache(), M.pair, M.pair.a, M.pair.b,
                          M.pair.a.s, M.ring, M.ring.next, M.strong, M.weak, M.eph } do
      local a, b = whole:retainers(obj), sliced:retainers(obj)
      assert.are.equal(#a, #b)
      for i = 1, #a do
        assert.are.equal(a[i].path, b[i].path)
        assert.are.equal(a[i].retained, b[i].retained)
      end
    end
    whole:close()
    sliced:close()
  end)

  -- In an interpreter of its own (spec/fixtures/retained/finalizers.lua),
  -- whose small heap lets a collector that never pauses go through whole
  -- cycles inside the steps (as spec/93 does for the readers).
  it("keeps working when a finalizer calls memprobe during a step", function()
    local out = H.lua("spec/fixtures/retained/finalizers.lua")
    local calls, busy, inner, nested, want, got = out:match(
      "calls (%d+) busy (%d+) inner (%d+) nested (%d+) want (%d+) got (%d+)")
    assert.is_truthy(calls, out)
    assert.matches("exit 0\n$", out)
    -- what the finalizers did changed nothing in the snapshot they hit
    assert.are.equal(want, got)
    -- finalizers ran inside the steps, where the stepped snapshot refused
    -- (busy) and the others answered, on 5.1, 5.3, 5.4 and 5.5 (the
    -- child walks again in steps of other sizes until one did); on 5.2
    -- none did in 15 runs, on LuaJIT none in 4 of 15
    if H.rt ~= "5.2" and H.rt ~= "jit" then
      assert.is_true(tonumber(busy) > 0 and tonumber(inner) >= tonumber(busy), out)
      assert.are.equal("3", nested)
    end
  end)

  it("gives each modules() row the bytes its entry dominates: its exclusive bytes", function()
    package.loaded[NAME] = plant()
    local rows = memprobe.modules{ retained = true }
    local n = 0
    for _, r in ipairs(rows) do
      -- an object only one root reaches is dominated by it, and the other
      -- way round: two computations of one set
      if r.retained then
        n = n + 1
        assert.are.equal(r.exclusive, r.retained, r.name)
      end
      if r.name == NAME then assert.is_true(r.retained > 500000) end
    end
    assert.is_true(n > 5)
    local job = memprobe.modules{ retained = true, max_ms = 1 }
    while not job:step(1) do end
    for _, r in ipairs(job:result()) do
      if r.name == NAME then assert.is_true(r.retained > 500000) end
    end
    assert.is_nil(memprobe.modules()[1].retained)
  end)

  it("answers the console's retained and who, also in budgeted steps", function()
    package.loaded[NAME] = plant()
    local console = require "memprobe.console"
    local path = "package.loaded." .. NAME .. ".pair.a.s"
    local c = console.new()
    local text, rows = c:call("retained", { "5" })
    assert.matches("retained", text, 1, true)
    assert.are.equal(5, #rows)
    text, rows = c:call("who", { path })
    assert.are.equal(3, #rows)
    assert.matches("package.loaded." .. NAME .. ".pair\n", text:gsub(" +\n", "\n") .. "\n")
    assert.matches("not in the heap", (c:call("who", { "package.loaded.nope" })))
    assert.matches("usage: who", (c:call("who", {})))
    assert.matches("N must be", (c:call("retained", { "2000" })))
    local b = console.new{ budget_ms = 2 }
    assert.matches("%d+%%", (b:call("who", { path })))
    -- CPU time: a busy machine's preemption does not count; sanitized
    -- code runs several times slower
    -- one step may be stretched by the machine (a loaded one took more
    -- than 10 ms once): a job whose steps are too long makes many
    local slow = (H.asan or H.valgrind) and 4 or 1
    local long = 0
    for _ = 1, 10000 do
      local t0 = os.clock()
      b:step(2)
      if os.clock() - t0 >= 0.01 * slow then long = long + 1 end
      rows = select(2, b:call("who", { path }))
      if rows then break end
    end
    assert.is_true(long <= 1, long .. " steps of 10 ms or more")
    assert.are.equal(3, #rows)
  end)

  it("refuses what it cannot answer", function()
    local snap = memprobe.snapshot{ retained = false }
    local ok, err = pcall(snap.retained, snap)
    assert.is_false(ok)
    assert.matches("retained = false", err, 1, true)
    snap:close()
    snap = memprobe.snapshot{ max_units = 10 }
    ok, err = pcall(snap.retainers, snap, {})
    assert.is_false(ok)
    assert.matches("not finished", err, 1, true)
    snap:close()
    snap = memprobe.snapshot()
    assert.is_nil(snap:retainers({}))  -- made after the snapshot
    assert.is_nil(snap:retainers("package.loaded.no_such_module.x"))
    assert.is_nil(snap:retainers("package.loaded"))  -- a path, not a string
    for _, bad in ipairs{ 0, 1025, 1.5, "x" } do
      ok = pcall(snap.retained, snap, bad)
      assert.is_false(ok, tostring(bad))
    end
    ok, err = pcall(snap.retainers, snap, 42)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'retainers'", err, 1, true)
    ok = pcall(memprobe.snapshot, { retained = 1 })
    assert.is_false(ok)
    snap:close()
  end)
end)
