local memprobe = require "memprobe"
local H = require "spec.helper"

local KiB = 1024
local has_types = _VERSION ~= "Lua 5.1"   -- LuaJIT says 5.1 too

local function count()
  return collectgarbage("count") * KiB
end

-- The tracker's live bytes, read before the stats table is made.
local function live_of(t)
  return t:stats().live
end

-- LuaJIT's traces live in the same heap; keep them out of exact checks.
local function jit_off() if jit then jit.off() end end
local function jit_on() if jit then jit.on() end end

describe("memprobe.track()", function()
  before_each(jit_off)
  after_each(jit_on)

  it("returns the same tracker when called again", function()
    local t = memprobe.track()
    assert.are.equal("userdata", type(t))
    assert.are.equal(t, memprobe.track())
    assert.matches("^memprobe.Tracker %(", tostring(t))
  end)

  -- Up to 5.4 the allocator's bytes are the collector's count. On 5.5
  -- they also hold the external strings alive ('uncounted'; earlier
  -- specs leave some), and the collector's count is stats().gc.
  local function same(c, s)
    assert.are.equal(c, s.gc)
    assert.are.equal(s.live - s.gc, s.uncounted)
    if not H.since("5.5") then assert.are.equal(c, s.live) end
  end

  it("reports live equal to collectgarbage('count') at every point", function()
    local t = memprobe.track()
    local c = count()
    local s = t:stats()
    same(c, s)
    local keep = {}  -- luacheck: ignore
    for i = 1, 5000 do keep[i] = { i, tostring(i), function() return i end } end
    c = count()
    s = t:stats()
    same(c, s)
    keep = nil
    collectgarbage()
    collectgarbage()
    c = count()
    local s2 = t:stats()
    same(c, s2)
    assert.is_true(s2.live < s.live)
    assert.is_true(s2.frees > s.frees)
    assert.is_nil(keep)
  end)

  -- On 5.5 string.rep's result is an external string: its 123457 + 1
  -- bytes come from the allocator, and the collector does not count them.
  -- (luaL_pushresult runs a collection step even while the collector is
  -- stopped: no garbage may be left for it to find.)
  it("keeps the change in live equal to the change in the collector's count", function()
    local t = memprobe.track()
    collectgarbage()
    collectgarbage("stop")
    local c0, s0 = count(), t:stats()
    local big = string.rep("z", 123457)
    local tbl = {}  -- luacheck: ignore
    for i = 1, 300 do tbl[i] = i end
    local c1, s1 = count(), t:stats()
    collectgarbage("restart")
    local external = H.since("5.5") and 123457 + 1 or 0
    assert.are.equal(c1 - c0 + external, s1.live - s0.live)
    assert.are.equal(external, s1.uncounted - s0.uncounted)
    assert.is_true(s1.live - s0.live > 123457)
    assert.are.equal(123457, #big)
  end)

  it("counts allocations, reallocations and size classes consistently", function()
    local t = memprobe.track()
    local s0 = t:stats()
    local keep = {}
    for i = 1, 1000 do keep[i] = {} end
    local parts = {}
    for i = 1, 1000 do parts[i] = tostring(i) end
    keep.s = table.concat(parts)
    local s1 = t:stats()
    assert.is_true(s1.allocs - s0.allocs >= 1000)
    -- keep's array part grew (by malloc and free on 5.5), and so did
    -- table.concat's buffer (by realloc everywhere)
    assert.is_true(s1.reallocs > s0.reallocs)
    assert.is_true(s1.peak >= s1.live)
    local n = 0
    for size, k in pairs(s1.histogram) do
      -- classes are powers of two
      assert.are.equal(size, 2 ^ math.floor(math.log(size) / math.log(2) + 0.5))
      n = n + k
    end
    assert.are.equal(s1.allocs, n)
    assert.are.equal(1000, #keep)
  end)

  it("reports allocations by type on 5.2+ and nil on 5.1 and LuaJIT", function()
    local t = memprobe.track()
    local s0 = t:stats()
    if not has_types then
      assert.is_nil(s0.by_type)
      return
    end
    -- what one stats() call makes itself
    local s0b = t:stats()
    local own = s0b.by_type.table.allocs - s0.by_type.table.allocs
    s0 = t:stats()
    collectgarbage("stop")
    local c0 = count()
    local keep = {}
    for i = 1, 1000 do keep[i] = {} end
    local c1 = count()
    local s1 = t:stats()
    collectgarbage("restart")
    local tables = s1.by_type.table.allocs - s0.by_type.table.allocs
    assert.are.equal(1001 + own, tables)
    -- bytes of the 1001 table headers plus keep's array part = the count delta
    local other = s1.by_type.other.bytes - s0.by_type.other.bytes
    local tb = s1.by_type.table.bytes - s0.by_type.table.bytes
    -- table headers all have one size; their parts are other allocations
    assert.are.equal(0, tb % tables)
    assert.is_true(tb / tables >= 32 and tb / tables <= 128)
    assert.is_true(tb + other >= 1001 * (tb / tables))
    assert.is_true(tb < c1 - c0)
    assert.is_true(s1.by_type.string.allocs > 0)
    assert.are.equal(1000, #keep)
  end)

  it("raises on bad arguments", function()
    local t = memprobe.track()
    local cases = {
      { function() memprobe.track("x") end, "bad argument #1 to 'track'" },
      { function() memprobe.track{ bogus = 1 } end, "unknown option" },
      { function() memprobe.track{ limit = -1 } end, "size must be" },
      { function() t:limit(-5) end, "bad argument #1 to 'limit'" },
      { function() t:limit("lots") end, "bad argument #1 to 'limit'" },
      { function() t:limit() end, "bytes or nil expected" },
      { function() t:watermark(10) end, "bad argument #2 to 'watermark'" },
      { function() t:reset_peak(-1) end, "bad argument #1 to 'reset_peak'" },
      { function() t.stats({}) end, "bad argument #1 to 'stats'" },
      { function() t.stats(io.stdout) end, "bad argument #1 to 'stats'" },
    }
    H.assert_raises(cases)
  end)

  it("does not create globals", function()
    local before = H.globals()
    local t = memprobe.track()
    t:stats()
    t:reset_peak()
    for k in pairs(_G) do assert.is_true(before[k], k) end
  end)
end)

describe("tracker:limit()", function()
  before_each(jit_off)
  after_each(function()
    memprobe.track():limit(nil)
    jit_on()
  end)

  it("makes allocations past the limit fail with 'not enough memory'", function()
    local t = memprobe.track()
    collectgarbage()
    collectgarbage()
    local failed0 = t:stats().failed
    local limit = count() + 64 * KiB
    t:reset_peak()
    -- nothing in between may allocate outside the pcall (luassert does)
    local prev = t:limit(limit)
    local ok, err = pcall(function()
      local q = {}  -- luacheck: ignore
      for i = 1, 1e6 do q[i] = { i } end
    end)
    local now = t:limit(nil)
    local s = t:stats()
    assert.is_nil(prev)
    assert.are.equal(limit, now)
    assert.is_false(ok)
    assert.are.equal("not enough memory", err)
    assert.is_true(s.failed > failed0)
    assert.is_true(s.peak <= limit, s.peak - limit)
    -- the state stays usable
    local after = {}
    for i = 1, 1000 do after[i] = { i } end
    assert.are.equal(1000, #after)
  end)

  it("lets frees through when live is over the limit", function()
    local t = memprobe.track()
    local junk = {}  -- luacheck: ignore
    for i = 1, 5000 do junk[i] = { i } end
    junk = nil
    local c0 = count()
    t:limit(c0 - 16 * KiB)
    local ok = pcall(collectgarbage, "collect")
    t:limit(nil)
    assert.is_true(ok)
    assert.is_true(count() < c0 - 100 * KiB)
    assert.is_nil(junk)
  end)

  -- Lua 5.3+ (and 5.2 while the collector runs) collect and retry before
  -- giving up; 5.1 and LuaJIT fail at once, so there uncollected garbage
  -- counts against the limit.
  it("counts garbage against the limit on 5.1, LuaJIT and a stopped 5.2", function()
    local t = memprobe.track()
    collectgarbage()
    collectgarbage("stop")
    local junk = {}  -- luacheck: ignore
    for i = 1, 5000 do junk[i] = { i } end
    junk = nil
    t:limit(count() + 32 * KiB)
    local ok, err = pcall(function()
      local q = {}
      for i = 1, 2000 do q[i] = { i } end
      return q
    end)
    t:limit(nil)
    collectgarbage("restart")
    if H.since("5.3") then
      assert.is_true(ok, err)
    else
      assert.is_false(ok)
      assert.are.equal("not enough memory", err)
    end
    assert.is_nil(junk)
  end)

  -- The unprotected-call caveat: a memory error raised where no pcall
  -- catches it reaches the panic handler. The standalone interpreter runs
  -- its chunk protected and reports it; a host that uses lua_call dies.
  it("reports an unprotected memory error through the interpreter", function()
    local out = H.run(H.interpreter() .. [[ -e '
      local t = require"memprobe".track()
      t:limit(collectgarbage("count") * 1024 + 4096)
      local q = {}
      for i = 1, 1e6 do q[i] = { i } end' 2>&1; echo "exit $?"]])
    assert.matches("not enough memory", out)
    assert.matches("exit 1\n$", out)
  end)

  -- The same from a C host (spec/c/panic_host.c, built by make testalloc
  -- against this runtime's library): lua_pcall gets LUA_ERRMEM and the
  -- state stays usable; lua_call hands the error to the panic handler and
  -- the process ends, with exit(EXIT_FAILURE) on 5.1 and LuaJIT and
  -- abort() on 5.2+. 5.2 passes the panic handler the stack top instead
  -- of the message.
  it("ends a C host whose unprotected lua_call runs out of room", function()
    local rt = H.rt
    local host = "build/" .. rt .. "/panic_host"
    local f = io.open(host, "rb")
    assert.is_truthy(f, host .. " is missing: make testalloc")
    f:close()
    local out = H.run(("LUA_PATH='lua/?.lua;lua/?/init.lua;;' " ..
      "LUA_CPATH='build/%s/?.so;;' %s 2>&1; echo \"exit $?\""):format(rt, host))
    assert.matches("^pcall: LUA_ERRMEM not enough memory\nafter: usable\n" ..
                   "panic: ", out)
    assert.is_nil(out:find("returned", 1, true))
    if rt ~= "5.2" then
      assert.matches("\npanic: not enough memory\n", out)
    end
    if rt == "5.1" or rt == "jit" then
      assert.matches("exit 1\n$", out)
    else
      assert.matches("exit 134\n$", out)  -- SIGABRT
    end
  end)
end)

describe("tracker:watermark()", function()
  before_each(jit_off)
  after_each(jit_on)

  it("calls fn once from a collection cycle after live went past the mark", function()
    local t = memprobe.track()
    local hits = {}
    collectgarbage()  -- garbage collected during the loop would offset it
    local mark = live_of(t) + 200 * KiB
    t:watermark(mark, function(live) hits[#hits + 1] = { live = live } end)
    local keep = {}
    for i = 1, 4000 do keep[i] = { i, i, i, i } end
    collectgarbage()
    collectgarbage()
    assert.are.equal(1, #hits)
    assert.is_true(hits[1].live > mark)
    collectgarbage()
    assert.are.equal(1, #hits)
    assert.are.equal(4000, #keep)
  end)

  it("calls fn from the next tracker call when the collector is stopped", function()
    local t = memprobe.track()
    collectgarbage("stop")
    local hits = 0
    t:watermark(live_of(t) + 50 * KiB, function() hits = hits + 1 end)
    local keep = string.rep("w", 60 * KiB)
    assert.are.equal(0, hits)
    t:stats()
    collectgarbage("restart")
    assert.are.equal(1, hits)
    assert.are.equal(60 * KiB, #keep)
  end)

  it("calls fn before returning when live is past the mark already", function()
    local t = memprobe.track()
    local got
    t:watermark(1, function(live) got = live end)
    assert.is_true(got > 1)
  end)

  it("is cleared by watermark(nil)", function()
    local t = memprobe.track()
    local hits = 0
    t:watermark(live_of(t) + 10 * KiB, function() hits = hits + 1 end)
    t:watermark(nil)
    local keep = string.rep("n", 20 * KiB)
    collectgarbage()
    t:stats()
    assert.are.equal(0, hits)
    assert.are.equal(20 * KiB, #keep)
  end)

  it("keeps an error raised from a finalizer run as stats().watermark_error", function()
    local t = memprobe.track()
    t:watermark(live_of(t) + 10 * KiB, function() error("watermark fn failed") end)
    local keep = string.rep("e", 20 * KiB)
    collectgarbage()
    collectgarbage()
    local s = t:stats()
    assert.matches("watermark fn failed", s.watermark_error)
    assert.are.equal(20 * KiB, #keep)
  end)
end)

describe("tracker:untrack()", function()
  it("restores the previous allocator; track() then makes a new tracker", function()
    local t = memprobe.track()
    assert.is_true(t:untrack())
    assert.is_true(t:untrack())
    assert.has_error(function() t:stats() end, "tracker was untracked")
    assert.matches("untracked", tostring(t))
    collectgarbage()
    local t2 = memprobe.track()
    assert.are_not.equal(t, t2)
    local c = count()
    local live = t2:stats().live   -- before luassert allocates
    assert.are.equal(c, live)
  end)
end)

describe("a tracker over another allocator", function()
  it("nests: untrack() gives the outer tracker back, which then closes", function()
    local ok, ta = pcall(require, "memprobe_testalloc")
    if not ok then pending("memprobe_testalloc not built (make testalloc)") return end
    local outer = memprobe.track()
    ta.install()                  -- another allocator over the tracker
    -- removing outer would cut the chain: refused, as a reader refuses
    assert.are.same({ nil, "another allocator was installed over the tracker", 0 },
                    { outer:untrack() })
    local inner = memprobe.track()
    assert.are_not.equal(outer, inner)
    assert.are.equal(inner, memprobe.tracker())
    assert.is_true(inner:untrack())
    assert.is_nil(memprobe.tracker())  -- the other allocator is on top
    assert.is_true(ta.remove())
    collectgarbage()
    assert.are.equal(outer, memprobe.tracker())
    assert.are.equal(count(), outer:stats().live)
  end)
end)

-- A sandbox that exposes debug or hands track() a hostile options table
-- must not make memprobe touch a freed tracker.
describe("a hostile caller", function()
  it("cannot untrack from an option's __index while track() installs", function()
    local t = memprobe.track()
    local asked = 0
    local opts = setmetatable({}, { __index = function()
      asked = asked + 1
      t:untrack()
      return 1e9
    end })
    local t2 = memprobe.track(opts)
    assert.are.equal(0, asked)          -- options are read raw
    assert.are.equal(t, t2)
    assert.is_nil(t2:stats().limit)
    assert.are.equal(t, memprobe.tracker())
  end)

  it("gets no second handle on a tracker by clearing the registry", function()
    local t1 = memprobe.track()
    debug.getregistry()["memprobe.Tracker.state"] = nil
    local t2 = memprobe.track()
    assert.are_not.equal(t1, t2)
    assert.has_error(function() t1:stats() end, "tracker was untracked")
    assert.is_true(t1:untrack())        -- stale: does nothing
    assert.are.equal(t2, memprobe.tracker())
    assert.is_true(t2:untrack())
    assert.has_error(function() t1:stats() end, "tracker was untracked")
    assert.has_error(function() t2:stats() end, "tracker was untracked")
    assert.matches("untracked", tostring(t1))
    collectgarbage()                    -- both finalizers run: no effect
    assert.is_nil(memprobe.tracker())
    local t3 = memprobe.track()
    assert.are.equal(count(), t3:stats().live)
  end)
end)

-- Lua 5.5 external strings free through the (f, ud) current when they
-- were made, whatever was installed since: the hook's cell outlives the
-- tracker and forwards.
describe("an external string (5.5)", function()
  local function ext(n, c) return string.rep(c or "x", n) end

  it("dies after untrack() without touching the tracker", function()
    local t = memprobe.track()
    local keep = { ext(100000) }
    assert.is_true(t:untrack())
    assert.are.equal(100000, #keep[1])
    keep[1] = nil
    collectgarbage()
    collectgarbage()
    assert.is_nil(memprobe.tracker())
  end)

  it("made under one tracker is freed under the next", function()
    local t = memprobe.track()
    local keep = { ext(100000, "a") }
    assert.is_true(t:untrack())
    assert.are.equal(100000, #keep[1])
    local t2 = memprobe.track()
    H.settle_gc()
    local s0 = t2:stats()
    keep[1] = nil
    H.settle_gc()
    local s1 = t2:stats()
    -- the new tracker sees the free of a block it never counted: the
    -- string's bytes (its header is the collector's)
    if H.since("5.5") then
      assert.are.equal(100001, s0.uncounted - s1.uncounted)
      assert.are.equal(100001, (s0.live - s1.live) - (s0.gc - s1.gc))
    end
    assert.is_true(t2:untrack())
    memprobe.track()
  end)
end)

describe("memprobe.tracker()", function()
  it("returns the installed tracker, or nil without installing one", function()
    local t = memprobe.track()
    assert.are.equal(t, memprobe.tracker())
    t:untrack()
    assert.is_nil(memprobe.tracker())
    assert.is_nil(memprobe.tracker())
    local t2 = memprobe.track()
    assert.are.equal(t2, memprobe.tracker())
  end)
end)

-- spec/c/ud_host.c, built by make testalloc against this runtime: a host
-- whose ud is its own struct reads it back after track(), and its own
-- byte counter agrees with the tracker's live bytes.
describe("a host that reads its allocator ud back", function()
  local rt = H.rt
  local host = "build/" .. rt .. "/ud_host"
  local env = ("LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/%s/?.so;;' ")
    :format(rt)
  local want = table.concat({
    "track: ud kept", "track: counts agree", "untrack: allocator back",
    "same ud, next state: ud kept", "next state: counts agree",
    "second state: ud kept", "second state: counts agree",
    "first state: counts agree", "shared ud: boxed", "shared ud: counts agree",
    "shared ud, first: ud kept", "closed: 0 0", "exit 0", "" }, "\n")

  it("gets its own ud back and the same counts", function()
    local f = io.open(host, "rb")
    assert.is_truthy(f, host .. " is missing: make testalloc")
    f:close()
    assert.are.equal(want, H.run(env .. host .. '; echo "exit $?"'))
  end)

  it("is valgrind-clean, external strings included", function()
    if H.asan then pending("valgrind cannot run the ASan build") return end
    if H.status("command -v valgrind") ~= 0 then
      pending("valgrind is not installed")
      return
    end
    assert.are.equal(0, H.status(env .. "valgrind -q --error-exitcode=1 " ..
      "--leak-check=full --errors-for-leak-kinds=definite " .. host))
  end)
end)

describe("the unload hazard", function()
  local lua = H.interpreter()
  local scripts = {
    [[require"memprobe".track()]],
    [[local m = require"memprobe"; local t = m.track{ limit = 1e9 };
      t:limit(1e9); t:watermark(1e8, print);
      _G.keep = m.scope("x", function() return { 1, 2, 3 } end)]],
    -- external strings (5.5) that die in lua_close after the tracker's
    -- finalizer, after untrack(), and under a scope tag
    [[require"memprobe".track(); _G.s = string.rep("x", 100000)]],
    [[local t = require"memprobe".track(); _G.s = string.rep("x", 100000);
      t:untrack()]],
    [[local m = require"memprobe"; _G.s = m.scope("x", string.rep, "x", 1e5)]],
    [[local m = require"memprobe"; local t = m.track();
      _G.s = string.rep("x", 1e5); t:untrack(); m.track();
      debug.getregistry()["memprobe.Tracker.state"] = nil; m.track()]],
  }

  it("lets a tracked interpreter exit 0", function()
    for _, s in ipairs(scripts) do
      assert.are.equal(0, H.status(lua .. " -e '" .. s .. "'"), s)
    end
  end)

  local valgrind = H.status("command -v valgrind") == 0
  it("lets a tracked interpreter exit 0 under valgrind", function()
    if H.asan then pending("valgrind cannot run the ASan build") return end
    if not valgrind then
      pending("valgrind is not installed")
      return
    end
    for _, s in ipairs(scripts) do
      assert.are.equal(0, H.status("valgrind -q --error-exitcode=1 " .. lua ..
                                   " -e '" .. s .. "'"), s)
    end
  end)
end)
