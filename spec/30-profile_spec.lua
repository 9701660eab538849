local H = require "spec.helper"
local memprobe = require "memprobe"

-- The figures of one bench/profile_leak.lua run in a fresh interpreter.
local function planted(flags)
  local out = H.lua("bench/profile_leak.lua 300 - " .. (flags or ""))
  local r = {}
  local line = out:match("result ([^\n]*)")
  assert(line, out)
  for k, v in line:gmatch("(%S+)=(%S+)") do r[k] = tonumber(v) or v end
  r.out = out
  return r
end

local function within(est, truth, tol)
  return math.abs(est / truth - 1) <= tol
end

describe("memprobe.profile() on the planted leak", function()
  -- At the defaults (on LuaJIT 'precise' is on: compiled loops do not
  -- carry samples into the loop that runs next; docs/profile.md).
  local r = planted("")

  it("names the leaking line as the top live site, within 15% of the truth", function()
    assert.are.equal("leak", r.live1, r.out)
    assert.is_true(within(r.live1_bytes, r.truth, 0.15), r.out)
  end)

  -- absent from live: no churn row above 1% of the leak (what may stay is
  -- a CallInfo or a stack slice the churn's frames grew; bench/profile_leak.lua)
  it("names the churning line as the top alloc site, absent from live", function()
    assert.are.equal("churn", r.alloc1, r.out)
    assert.are.equal("false", r.churn_live, r.out)
  end)

  if jit then
    it("keeps the live total unbiased under LuaJIT without 'precise'", function()
      local j = planted("imprecise")
      assert.is_true(within(j.total, j.truth, 0.15), j.out)
    end)
  end
end)

-- Profiles made by a spec, stopped after it (a failed spec leaves none
-- running).
local made = {}
local function profile(rate)
  local p = memprobe.profile{ rate = rate }
  made[#made + 1] = p
  return p
end
local function stop_all()
  for _, p in ipairs(made) do p:stop() end
  made = {}
end

-- An object whose finalizer runs fn (tables have none on 5.1/LuaJIT).
local function finalizable(fn)
  if newproxy then
    local u = newproxy(true)
    getmetatable(u).__gc = fn
    return u
  end
  return setmetatable({}, { __gc = fn })
end

describe("memprobe.profile()", function()
  local keep
  local function leak(n) for i = 1, n do keep[#keep + 1] = { i, i, i, i } end end

  before_each(function() keep = {} end)
  after_each(stop_all)

  it("returns rows with site, func, stack, bytes and count, largest first", function()
    local p = profile(4096)
    leak(20000)
    p:stop()
    local top = p:top(3, "live")
    assert.is_true(#top >= 1)
    local row = top[1]
    assert.are.equal("leak", row.func)
    assert.is_truthy(row.site:match("30%-profile_spec%.lua:%d+$"), row.site)
    assert.is_truthy(row.stack[1]:find("leak", 1, true))
    assert.is_true(row.bytes > 0 and row.count > 0)
    for i = 2, #top do assert.is_true(top[i - 1].bytes >= top[i].bytes) end
    assert.are.same(p:top(3), top)  -- live is the default
    p:reset()
  end)

  it("takes no sample once stopped, and forgets freed blocks", function()
    local p = profile(4096)
    leak(20000)
    p:stop()
    local n = p:info().samples
    leak(20000)
    assert.are.equal(n, p:info().samples)
    assert.is_false(p:info().running)
    -- counts are integers on 5.3+, not floats such as 12.0
    if math.type then
      for _, k in ipairs{ "samples", "dropped", "pending", "live_blocks" } do
        assert.are.equal("integer", math.type(p:info()[k]), k)
      end
    end
    keep = nil
    H.settle_gc()
    -- LuaJIT may keep a table or two alive from a stale stack slot
    local alloc = p:top(1, "alloc")[1]
    assert.are.equal("leak", alloc.func)
    local live = 0
    for _, r in ipairs(p:top(10, "live")) do
      if r.func == "leak" then live = live + r.bytes end
    end
    assert.is_true(live < alloc.bytes / 10, live .. " of " .. alloc.bytes)
  end)

  it("counts from zero after reset()", function()
    local p = profile(4096)
    leak(20000)
    p:stop()
    p:reset()
    assert.are.equal(0, p:info().samples)
    assert.are.same({}, p:top(10, "alloc"))
    local q = profile(4096)
    leak(20000)
    q:reset()
    leak(20000)
    q:stop()
    assert.is_true(q:info().samples > 0)
  end)

  it("stops the running profile when a new one starts; its figures stay", function()
    local p = profile(4096)
    leak(20000)
    local q = profile(4096)
    local n = p:info().samples
    assert.is_false(p:info().running)
    assert.is_false(p:info().attached)
    assert.is_true(q:info().attached)
    leak(20000)
    q:stop()
    assert.are.equal(n, p:info().samples)
    assert.are.equal("leak", p:top(1, "alloc")[1].func)
  end)

  it("gives folded stacks, root first", function()
    local p = profile(4096)
    leak(20000)
    p:stop()
    local text = p:folded("alloc")
    local first = text:match("^[^\n]+")
    assert.is_truthy(first:match(";leak %(.-%) %d+$") or first:match("^leak %(.-%) %d+$"), first)
  end)

  it("raises on bad arguments", function()
    local p = profile(4096)
    p:stop()
    H.assert_raises{
      { function() memprobe.profile(1) end, "bad argument #1 to 'profile'" },
      { function() memprobe.profile{ rate = 0 } end, "rate must be 1 byte or more" },
      { function() memprobe.profile{ bogus = 1 } end, "unknown option 'bogus'" },
      { function() memprobe.profile{ precise = 1 } end, "precise must be a boolean" },
      { function() p:top(1, "heap") end, "bad argument #2 to 'top'" },
      { function() p:folded("x") end, "bad argument #1 to 'folded'" },
      { function() p:pprof(1) end, "bad argument #1 to 'pprof'" },
      { function() p:flamegraph(nil) end, "bad argument #1 to 'flamegraph'" },
    }
  end)
end)

describe("memprobe.profile() under hostile conditions", function()
  local keep
  local function leak(n) for i = 1, n do keep[#keep + 1] = { i, i, i, i } end end
  before_each(function() keep = {} end)
  after_each(stop_all)

  it("keeps the host's debug hook and passes its events on", function()
    local lines = 0
    debug.sethook(function() lines = lines + 1 end, "l")
    local p = profile(512)
    leak(5000)
    p:stop()
    local _, mask = debug.gethook()
    debug.sethook()
    assert.is_truthy(mask:find("l", 1, true), mask)
    assert.is_true(lines > 0)
    assert.is_true(p:info().samples > 0)
  end)

  it("survives untrack() while profiling; its figures stay readable", function()
    local t = memprobe.track()
    local p = profile(4096)
    leak(10000)
    assert.is_true(t:untrack())
    assert.is_false(p:info().attached)
    local n = p:info().samples
    leak(10000)
    assert.are.equal(n, p:info().samples)
    assert.is_true(#p:top(5, "alloc") >= 1)
    p:stop()
  end)

  it("survives a limit refusing allocations while profiling", function()
    local t = memprobe.track()
    local p = profile(1024)
    t:limit(t:stats().live + 256 * 1024)
    local ok = pcall(leak, 1e7)
    t:limit(nil)
    assert.is_false(ok)
    p:stop()
    assert.is_true(p:info().samples > 0)
    keep = nil
    H.settle_gc()
    t:untrack()
  end)

  it("charges allocations in coroutines, and survives errors through sampled frames", function()
    local p = profile(1024)
    local co = coroutine.wrap(function()
      for _ = 1, 10 do leak(500) coroutine.yield() end
    end)
    for _ = 1, 10 do co() end
    for _ = 1, 20 do
      pcall(function() leak(500) error("boom") end)
    end
    p:stop()
    local sum = 0
    for _, r in ipairs(p:top(100, "live")) do sum = sum + r.bytes end
    assert.is_true(sum > 0)
    assert.are.equal(0, p:info().pending)
  end)

  it("is safe from a finalizer that calls it during any allocation", function()
    local p = profile(256)
    local calls = 0
    local function fin()
      calls = calls + 1
      p:top(3)
      p:info()
      p:folded()
    end
    for i = 1, 3000 do
      finalizable(fin)
      keep[i] = { i }
    end
    H.settle_gc()
    p:stop()
    assert.is_true(calls > 0)
  end)

  it("is safe from finalizers that reset it and start new profiles mid-call", function()
    local current = profile(128)
    local calls, active = 0, true
    local function fin()
      if not active then return end  -- none may outlive this spec
      calls = calls + 1
      if calls % 7 == 0 then current:reset() end
      if calls % 50 == 0 then current = profile(128) end
    end
    for i = 1, 3000 do
      finalizable(fin)
      keep[i] = { i }
      if i % 100 == 0 then current:top(5, "alloc") current:folded() end
    end
    H.settle_gc()
    active = false
    current:stop()
    assert.is_true(calls > 50)
    assert.is_table(current:top(5, "alloc"))
  end)


  it("keeps sampling in a forked child, and the parent's figures are its own", function()
    local p = profile(1024)
    leak(5000)
    local before = p:info().samples
    local status = H.in_child(function()
      leak(20000)
      local more = p:info().samples > before
      local top = p:top(1, "alloc")[1]
      p:stop()
      return more and top.func == "leak"
    end)
    if status == nil then pending("needs memprobe_testalloc (make testalloc) or an FFI") return end
    assert.are.equal(0, status)
    p:stop()
    assert.is_true(p:info().samples < before + 100)
  end)

  it("frees itself at lua_close with samples pending and a hook armed", function()
    local out = H.lua([[-e 'local m = require "memprobe"; ]] ..
      [[P = m.profile{ rate = 64 }; ]] ..
      [[local t = {}; for i = 1, 1e4 do t[i] = { i } end']])
    assert.is_truthy(out:match("exit 0"), out)
  end)
end)
