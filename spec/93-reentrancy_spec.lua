-- Finalizers run at any Lua allocation, and a finalizer may call a
-- reader while another reader is halfway through its file. Each reader
-- must then parse a buffer of its own: every result, inside the
-- finalizers and out, must be what a quiet run gives.
local memprobe = require "memprobe"
local H = require "spec.helper"

-- With a collection step at every allocation, each cycle must traverse
-- the whole heap before its finalizers run: inside a suite that has grown
-- the heap to tens of MB that takes many minutes on 5.3. The specs below
-- run in a busted of their own, whose heap is small.
if not os.getenv("MEMPROBE_REENTRANT_CHILD") then
  describe("readers called from finalizers", function()
    it("pass in an interpreter of their own", function()
      local out = H.lua(("%s -o TAP spec/93-reentrancy_spec.lua"):format(arg[0]),
                        "env MEMPROBE_REENTRANT_CHILD=1")
      assert.matches("\nok 2 ", out, 1, true)
      assert.matches("exit 0\n$", out)
    end)
  end)
  return
end

-- LuaJIT's compiled loops under setpause 0 can spin without ever
-- finishing a cycle (also before memprobe is involved): interpret them.
if jit then jit.off() end

-- An object whose finalizer calls fn (userdata on 5.1 and LuaJIT, where
-- tables have no __gc).
local newproxy = newproxy  -- luacheck: ignore
local function finalized(fn)
  if newproxy then
    local u = newproxy(true)
    getmetatable(u).__gc = fn
    return u
  end
  return setmetatable({}, { __gc = fn })
end

-- The readers under test, each with a summary of its result that any
-- damage to its buffer would change.
local readers = {
  meminfo = function() return memprobe.meminfo() end,
  vmstat = function() return memprobe.vmstat() end,
  free = function() return memprobe.free() end,
  process = function() return memprobe.process() end,
  smaps = function() return memprobe.smaps() end,
  slabinfo = function()
    local r, err = memprobe.slabinfo()
    if not r then return { err = err } end
    local names = {}
    for i, c in ipairs(r.caches) do names[i] = c.name .. "=" .. c.active_objs end
    return { version = r.version, names = table.concat(names, ","),
             total = r.totals.active_size }
  end,
  vmallocinfo = function()
    local r, err = memprobe.vmallocinfo{ areas = true }
    if not r then return { err = err } end
    local areas, callers = {}, {}
    for i, a in ipairs(r.areas) do
      areas[i] = tostring(a.caller) .. ":" .. tostring(a.virtual)
    end
    for i, g in ipairs(r.by_caller) do
      callers[i] = tostring(g.caller) .. ":" .. tostring(g.virtual)
    end
    return { areas = table.concat(areas, ","), callers = table.concat(callers, ","),
             total = r.totals.size }
  end,
  zoneinfo = function() return #assert(memprobe.zoneinfo()) end,
  swaps = function() return memprobe.swaps() end,
}
local ITER = tonumber(os.getenv("REENTRANT_ITER")) or 1500
local names = {}
for k in pairs(readers) do names[#names + 1] = k end
table.sort(names)

-- The same comparison for every result: a deep equality with a path to
-- the first difference.
local function diff(a, b, path)
  if type(a) ~= type(b) then return path end
  if type(a) ~= "table" then return a ~= b and path or nil end
  for k, v in pairs(a) do
    local d = diff(v, b[k], path .. "." .. tostring(k))
    if d then return d end
  end
  for k in pairs(b) do
    if a[k] == nil then return path .. "." .. tostring(k) end
  end
  return nil
end

describe("readers called from finalizers", function()
  local expected = {}

  setup(function()
    memprobe.config(H.fixture("linux-6.18"))
    collectgarbage("collect")
    collectgarbage("stop")
    for _, name in ipairs(names) do expected[name] = readers[name]() end
    collectgarbage("restart")
  end)

  teardown(function()
    collectgarbage("restart")
    H.gc_tune(200)
    memprobe.config{}
  end)

  it("give every reader a buffer no finalizer can touch", function()
    assert.is_table(expected.meminfo)
    assert.is_string(expected.slabinfo.names)
    local bad, calls, n = {}, 0, #names
    local function check(name, got)
      calls = calls + 1
      local d = diff(expected[name], got, name)
      if d and #bad < 5 then bad[#bad + 1] = d end
    end
    -- a collection step at every allocation: finalizers run inside the
    -- readers' parses
    H.gc_tune(0)
    for i = 1, ITER do
      for j = 1, 3 do
        local name = names[(i + j) % n + 1]
        finalized(function() check(name, readers[name]()) end)
      end
      local name = names[i % n + 1]
      check(name, readers[name]())
    end
    H.gc_tune(200)
    collectgarbage("collect")
    collectgarbage("collect")
    assert.are.same({}, bad)
    assert.is_true(calls > 5000, "finalizers ran: " .. calls)
  end)

  it("give meminfo() the general parser's result when a finalizer reads another layout", function()
    -- meminfo() checks its lines against the keys and lines of the last
    -- read, which a finalizer's meminfo() of another file rewrites while
    -- the outer one is halfway through its own
    local other = H.fixture("linux-3.16-i686-highmem")
    memprobe.config(other)
    local want_other = memprobe.meminfo()
    memprobe.config(H.fixture("linux-6.18"))
    H.gc_tune(0)
    local bad, calls, inside = {}, 0, false
    local function nested()
      memprobe.config(other)
      local d = diff(want_other, memprobe.meminfo(), "nested")
      if d and #bad < 5 then bad[#bad + 1] = d end
      memprobe.config(H.fixture("linux-6.18"))
      if inside then calls = calls + 1 end
    end
    for _ = 1, 300 do
      for _ = 1, 40 do finalized(nested) end
      inside = true
      local m = memprobe.meminfo()
      inside = false
      local d = diff(expected.meminfo, m, "outer")
      if d and #bad < 5 then bad[#bad + 1] = d end
    end
    H.gc_tune(200)
    collectgarbage("collect")
    memprobe.config(H.fixture("linux-6.18"))
    assert.are.same({}, bad)
    -- 5.4 and 5.5 run a cycle's finalizers at the reader's first
    -- allocation (its table), before it reads; on 5.3 whether any runs
    -- inside depends on the collector's phase (0 to 16 in runs alike)
    if not H.since("5.3") then
      assert.is_true(calls > 20, "finalizers ran inside meminfo(): " .. calls)
    end
  end)

  it("keep working after a finalizer's reader raised", function()
    -- a reader that raises inside a finalizer (bad argument) must give
    -- its buffer back; the outer reader's result stays right
    H.gc_tune(0)
    local bad = 0
    for _ = 1, 300 do
      finalized(function() pcall(memprobe.slabinfo, { sort = "?" }) end)
      finalized(function() pcall(memprobe.meminfo, 5) end)
      pcall(memprobe.meminfo, 5)  -- the outermost reader raises too
      if diff(expected.meminfo, memprobe.meminfo(), "m") then bad = bad + 1 end
      if diff(expected.slabinfo, readers.slabinfo(), "s") then bad = bad + 1 end
    end
    H.gc_tune(200)
    collectgarbage("collect")
    assert.are.equal(0, bad)
  end)

  -- meminfo(t) leaves alone the fields whose line is the one of the last
  -- whole refill of t (fill.c). A finalizer's refill of t2 that ends
  -- inside another refill, which then changes the kept keys and raises,
  -- must not count as whole: t2's next refill would leave alone a field
  -- of a key seen twice, whose last line wins.
  it("give meminfo(t) every field after a finalizer's refill inside one that raised", function()
    local F2 = {}
    for i = 0, 18 do F2[i + 1] = ("F2k%d:  %d kB\n"):format(i, i + 1) end
    F2[20] = "K:  100 kB\n"
    local F3 = {}
    for i = 1, 20 do F3[i] = F2[i] end
    F3[6], F3[7] = "Znew1: 1 kB\n", "K: 7 kB\n"  -- K twice: 100 kB wins
    local dirs = {
      H.tmpdir{ ["proc/meminfo"] = table.concat(F2) },
      H.tmpdir{ ["proc/meminfo"] = table.concat(F2, "", 1, 5) ..
                                   "Znew1: 1 kB\nK: 1 kB\nZnew2: 1 kB\nK: 2 kB\n" },
      H.tmpdir{ ["proc/meminfo"] = table.concat(F3) },
    }
    local code = ([[
      local mp = require "memprobe.core"
      local ok, ta = pcall(require, "memprobe_testalloc")
      if not ok then print("no testalloc") return end
      ta.install()
      local r2, r1, r3 = %q, %q, %q
      mp.config{ proc = r2 }; mp.meminfo({}); mp.meminfo({})
      -- 5.1 and 5.2 step before they make a string: Znew1 made here
      local z1 = _VERSION <= "Lua 5.2" and ("Znew" .. 1)
      local t1, t2, go, inside = {}, {}, false, false
      for i = 1, 70 do t1["pad" .. i] = i end  -- t1's writes need no room
      local function fin()
        if not go then return end
        go, inside = false, true
        mp.config{ proc = r2 }; mp.meminfo(t2); mp.config{ proc = r1 }
        ta.arm(1)  -- the outer refill's next allocation fails
      end
      local v = _VERSION
      if v == "Lua 5.5" then
        collectgarbage("param", "pause", 0); collectgarbage("param", "stepmul", 100000000)
        collectgarbage("param", "stepsize", 1073741824)
      elseif v == "Lua 5.4" then
        collectgarbage("setpause", 0); collectgarbage("setstepmul", 1000)
        collectgarbage("incremental", 0, 0, 30)
      else
        collectgarbage("setpause", 0); collectgarbage("setstepmul", 100000000)
      end
      collectgarbage("collect"); collectgarbage("stop")
      if newproxy then getmetatable(newproxy(true)).__gc = fin
      else setmetatable({}, { __gc = fin }) end
      mp.config{ proc = r1 }
      collectgarbage("restart"); go = true
      local raised = not pcall(mp.meminfo, t1)
      ta.disarm(); collectgarbage("restart"); collectgarbage("collect")
      mp.config{ proc = r3 }
      mp.meminfo(t2)
      print(inside and raised and "inside" or "not inside", t2.K, mp.meminfo({}).K, z1)
    ]]):format(dirs[1] .. "/proc", dirs[2] .. "/proc", dirs[3] .. "/proc")
    local f = os.tmpname()
    local h = assert(io.open(f, "w"))
    h:write(code)
    h:close()
    local out = H.run(("LUA_PATH=%q LUA_CPATH=%q %s %s"):format(package.path, package.cpath,
                                                              H.interpreter(), f)) or ""
    os.remove(f)
    for _, d in ipairs(dirs) do H.rmdir(d) end
    if out:match("^no testalloc") then
      pending("needs memprobe_testalloc (make testalloc)")
      return
    end
    local where, got, want = out:match("^(.-)%s+(%S+)%s+(%S+)")
    assert.are.equal(want, got, out)
    assert.are.equal(tostring(100 * 1024), want, out)
    -- 5.2's collector does not run the finalizer at that allocation
    if H.rt ~= "5.2" then assert.are.equal("inside", where, out) end
  end)
end)
