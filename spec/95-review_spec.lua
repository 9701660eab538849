-- Defects a hostile review found in the diff jobs, the console's job
-- queue and the profiler's file output; each case failed before its fix.
local H = require "spec.helper"

-- Runs code in a child interpreter (under `timeout`, so that a hang
-- fails instead of stopping the suite); its output and "exit N".
local function child(code)
  return H.chunk(code, "timeout 60")
end

describe("a diff job", function()
  it("closed by a finalizer inside its own step ends with the step, no crash", function()
    local out = child([[
      local memprobe = require "memprobe"
      local core = require "memprobe.core"
      grow = {}
      local a = memprobe.snapshot()
      for i = 1, 3000 do grow[i] = {} end
      for i = 1, 3000 do _G["g" .. i] = { {} } end
      local b = memprobe.snapshot()
      local add = core.heap_added(b, a, 1000)
      local armed = false
      local closes = 0
      local mt = { __gc = function()
        if armed then add:close(); closes = closes + 1 end
      end }
      if not pcall(collectgarbage, "param", "pause", 0) then
        collectgarbage("setpause", 0)
        collectgarbage("setstepmul", 1000)
      end
      collectgarbage("stop")
      for _ = 1, 200 do setmetatable({}, mt) end
      armed = true  -- from here the next collection closes the job: in its step
      collectgarbage("restart")
      print(pcall(add.step, add))
      print("closed in the step: " .. tostring(closes > 0))
      print(pcall(add.result, add))
    ]])
    assert.matches("^true\ttrue\nclosed in the step: %a+\ntrue.*exit 0\n$", out)
    -- 5.4's collector runs the finalizers inside the step here
    if _VERSION == "Lua 5.4" then assert.matches("closed in the step: true", out, 1, true) end
  end)

  it("gives its index back: a hundred diffs of a 10000-object heap keep RSS flat", function()
    if H.asan then pending("ASan keeps freed memory in quarantine: RSS says nothing") return end
    local out = child([[
      local memprobe = require "memprobe"
      keep = {}
      for i = 1, 10000 do keep[i] = {} end
      local a, b = memprobe.snapshot(), memprobe.snapshot()
      for _ = 1, 10 do b:diff(a) end
      collectgarbage()
      local rss0 = memprobe.rss()
      for _ = 1, 100 do b:diff(a) end
      collectgarbage()
      print(memprobe.rss() - rss0)
    ]])
    local grew = tonumber(out:match("^(%-?%d+)\n"))
    assert.is_number(grew, out)
    -- the leak was 64 KiB a diff: 6.4 MB over a hundred
    assert.is_true(grew < 2 * 2^20, out)
  end)
end)

describe("the console's job queue", function()
  it("drops a job whose walk failed: its command reports it, the next one runs", function()
    local out = child([[
      local memprobe = require "memprobe"
      local c = require("memprobe.console").new{ budget_ms = 2 }
      local failed = false
      c.mp = setmetatable({ modules = function(o)
        if not failed then failed = true; o.fail_after = 500 end
        return memprobe.modules(o)
      end }, { __index = memprobe })
      big = {}
      for i = 1, 20000 do big[i] = {} end
      print(c:run("modules"))
      -- step until the job leaves the queue, however slow the machine
      local raised, r = 0
      for _ = 1, 20000 do
        if not pcall(c.step, c, 5) then raised = raised + 1 end
        r = c:run("modules")
        if not r:match("^walking") then break end
      end
      print("raised " .. raised)
      print((r:gsub("\n.*", "")))
      local r
      for _ = 1, 2000 do
        r = c:run("heap")
        if not r:match("^walking") then break end
        c:step(5)
      end
      print((r:gsub("\n.*", "")))
    ]])
    assert.matches("raised 0\n", out, 1, true)
    assert.matches("raised 0\nfailed: [^\n]+\n", out)
    assert.not_matches("snapshot is closed", out, 1, true)
    assert.matches("\n%s*type%s+count", out)
  end)
end)

describe("profile output", function()
  local memprobe = require "memprobe"

  it("survives a finalizer that closes the profile while rows() builds its tables", function()
    local out = child([[
      local memprobe = require "memprobe"
      local p = memprobe.profile{ rate = 64, seed = 1 }
      local t = {}
      for i = 1, 2000 do t[i] = { i } end
      local core, armed, closed = p.core, false, 0
      local mt = { __gc = function()
        if armed then armed = false; getmetatable(core).__gc(core); closed = closed + 1 end
      end }
      if not pcall(collectgarbage, "param", "pause", 0) then collectgarbage("setpause", 0) end
      collectgarbage("stop")
      for _ = 1, 100 do setmetatable({}, mt) end
      armed = true
      collectgarbage("restart")
      local ok, rows = pcall(core.rows, core)
      print(ok, type(rows), closed)
      print(tostring(core))
    ]])
    assert.matches("^true\ttable\t[01]\n.-exit 0\n$", out)
  end)

  it("refuses a FIFO instead of waiting for its reader", function()
    local dir = H.tmpdir()
    assert(os.execute(("mkfifo '%s/fifo'"):format(dir)))
    local out = child(([[
      local memprobe = require "memprobe"
      local p = memprobe.profile{ rate = 1024 }
      local t = {}
      for i = 1, 1000 do t[i] = {} end
      print(p:pprof("%s/fifo"))
      print(p:flamegraph("%s/fifo"))
      p:stop()
      local c = require("memprobe.console").new()
      c:run("prof start 1024")
      for i = 1, 1000 do t[i] = {} end
      print(c:run("prof flame %s/fifo"))
      c:run("prof stop")
    ]]):format(dir, dir, dir))
    H.rmdir(dir)
    local _, n = out:gsub("not a regular file", "")
    assert.are.equal(3, n, out)
    assert.matches("exit 0\n$", out)
  end)

  it("reports a failed write of a flame graph", function()
    local p = memprobe.profile{ rate = 1e9 }
    local ok, msg = p:flamegraph("/dev/full")
    p:stop()
    assert.is_nil(ok)
    assert.matches("/dev/full", msg, 1, true)
  end)

  it("refuses a path with a NUL and a seed that is no integer", function()
    local p = memprobe.profile{ rate = 1e9 }
    assert.has_error(function() p:pprof("/tmp/a\0b") end)
    p:stop()
    for _, seed in ipairs({ -1, 0 / 0, 1.5, 2^53 }) do
      assert.has_error(function() memprobe.profile{ seed = seed } end)
    end
  end)
end)

describe("the profiler's live view", function()
  local memprobe = require "memprobe"

  -- Tables whose arrays grow to 64 slots, then shrink to 32 by a realloc
  -- (a rehash); kept in 'keep' until dropped. Its sites are "shrinkwork:N".
  local WORK = [[
    local n = ...
    local keep = {}
    for i = 1, n do
      local t = {}
      for j = 1, 64 do t[j] = j end
      keep[i] = t
    end
    for i = 1, n do
      local t = keep[i]
      for j = 33, 64 do t[j] = nil end
      t.x = true
    end
    return keep
  ]]
  local work = assert((loadstring or load)(WORK, "=shrinkwork"))

  -- The live bytes a profile charges to WORK's lines.
  local WORK_LIVE = [[
    local sum = 0
    for _, r in ipairs((...):top(1000, "live")) do
      if r.site:match("^shrinkwork:") then sum = sum + r.bytes end
    end
    return sum
  ]]
  local work_live = assert((loadstring or load)(WORK_LIVE, "=work_live"))

  -- In a fresh interpreter: on LuaJIT, after other specs have run in the
  -- same process, the VM allocates blocks of its own (64 KiB) while the
  -- work runs, which stay live with the VM (docs/profile.md).
  it("forgets every sampled block after unsampled ones in its bucket shrink", function()
    local out = child([[
      local memprobe = require "memprobe"
      local work = assert((loadstring or load)(]] .. ("%q"):format(WORK) .. [[, "=shrinkwork"))
      local work_live = assert((loadstring or load)(]] .. ("%q"):format(WORK_LIVE) .. [[))
      local p = memprobe.profile{ rate = 8192, seed = 3 }
      local box = { work(20000) }
      p:stop()
      assert(#box[1] == 20000)
      local held = work_live(p)
      box[1] = nil
      for _ = 1, 4 do collectgarbage("collect") end
      print(held, work_live(p))
    ]])
    local held, left = out:match("^(%d+)\t(%d+)\n")
    held, left = tonumber(held), tonumber(left)
    assert.is_true(held and held > 0, out)
    -- a stale stack slot may keep a table (one sample) alive
    assert.is_true(left < held / 100, ("%d of %d bytes still live"):format(left, held))
  end)

  it("counts live bytes exactly when every block is sampled", function()
    local p = memprobe.profile{ rate = 1, seed = 5 }
    local box = { work(3000) }
    p:stop()
    assert.are.equal(3000, #box[1])
    H.settle_gc()
    local held = work_live(p)
    H.settle_gc()  -- work_live's garbage is no part of the truth
    local before = collectgarbage("count")
    box[1] = nil
    H.settle_gc()
    local truth = (before - collectgarbage("count")) * 1024
    local left = work_live(p)
    p:reset()
    assert.is_true(math.abs(held / truth - 1) < 0.01, ("%d vs %d"):format(held, truth))
    assert.is_true(left < held / 100, ("%d of %d bytes still live"):format(left, held))
  end)
end)

describe("the profiler's hook", function()
  local memprobe = require "memprobe"
  local keep
  local function leak(n) for i = 1, n do keep[#keep + 1] = { i, i, i, i } end end
  before_each(function() keep = {} end)
  after_each(function() keep = nil end)

  it("charges a program running in a coroutine to the coroutine's lines", function()
    local p
    coroutine.wrap(function()
      p = memprobe.profile{ rate = 1024, seed = 7 }
      leak(20000)
      p:stop()
    end)()
    local top = p:top(1, "alloc")[1]
    assert.are.equal("leak", top.func, top.site)
    assert.are.equal("leak", p:top(1, "live")[1].func)
  end)

  it("charges the main thread's samples after the coroutine that started it died", function()
    local p
    local co = coroutine.create(function() p = memprobe.profile{ rate = 1024, seed = 9 } end)
    assert(coroutine.resume(co))
    assert.are.equal("dead", coroutine.status(co))
    leak(20000)
    p:stop()
    local top = p:top(1, "alloc")[1]
    assert.are.equal("leak", top.func, top.site)
  end)

  it("learns the main thread when memprobe was opened in a dead coroutine", function()
    local out = child([[
      local memprobe, p
      coroutine.wrap(function()
        memprobe = require "memprobe"
        p = memprobe.profile{ rate = 1024, seed = 11 }
      end)()
      local keep = {}
      local function early(n) for i = 1, n do keep[#keep + 1] = { i, i, i, i } end end
      local function late(n) for i = 1, n do keep[#keep + 1] = { i, i, i, i } end end
      early(20000)
      p:info()
      late(20000)
      p:stop()
      local funcs = {}
      for _, r in ipairs(p:top(2, "alloc")) do funcs[#funcs + 1] = r.func end
      print(table.concat(funcs, " "))
    ]])
    assert.matches("late", out, 1, true)
    assert.matches("exit 0\n$", out)
  end)

  it("keeps the current profile's hook when an old one is stopped or collected", function()
    local out = child([[
      local memprobe = require "memprobe"
      local function host() end
      debug.sethook(host, "", 1000000)
      local a = memprobe.profile{ rate = 1, precise = false }
      local t = {}
      for i = 1, 100 do t[i] = {} end
      local b = memprobe.profile{ rate = 1, precise = false }
      debug.sethook(host, "", 2000000)  -- the host changes its hook meanwhile
      a:stop()
      a = nil
      if not pcall(collectgarbage, "param", "pause", 0) then collectgarbage("setpause", 0) end
      for i = 1, 20000 do t[i % 100 + 1] = { string.format("%d", i) } end
      b:stop()
      local _, mask, count = debug.gethook()
      print("hook", mask, count)
      debug.sethook()
    ]])
    assert.matches("hook\t\t2000000\n", out, 1, true)
  end)

  it("finishes when a precise profile is left running, or dropped, and later code runs", function()
    local out = child([[
      local memprobe = require "memprobe"
      local function keys(t)
        local ks = {}
        for k in next, t do if type(k) == "string" then ks[#ks + 1] = k end end
        table.sort(ks)
        return ks
      end
      local t = {}
      for i = 1, 200 do t["k" .. i] = i end
      for i = 1, 50 do t[i] = i end
      t[{}], t[true] = 1, 2
      local function work()
        for r = 1, 3000 do
          keys(t)
          if r % 500 == 0 then t["x" .. r] = r; t[r] = nil end
        end
      end
      local p = memprobe.profile()
      work()
      print("running done")
      p = nil
      collectgarbage()
      collectgarbage()
      work()
      print("dropped done")
    ]])
    assert.matches("running done\ndropped done\n", out, 1, true)
  end)

  it("puts back the JIT parameters the program had set", function()
    if not jit then pending("LuaJIT only") return end
    -- without the aggressive-GC prelude of `make asan`: with a collection
    -- step at every allocation, one exit of the 600-iteration loop was
    -- once taken 200 times (a side trace where none was due)
    local out = H.chunk([=[
      local memprobe = require "memprobe"
      jit.opt.start("hotexit=200", "maxside=2")
      local util = require "jit.util"
      local function sides(fn)
        local tr = {}
        jit.attach(function(what, n, _, _, parent)
          if what == "start" and parent then tr[#tr + 1] = n end
        end, "trace")
        fn()
        jit.attach(function() end)
        local real = 0
        for _, n in ipairs(tr) do
          local info = util.traceinfo(n)
          if info and info.linktype ~= "interpreter" then real = real + 1 end
        end
        return real
      end
      -- a loop with six ways through, k = i % m + base. Its root trace is
      -- recorded first with k = 5 (the last way: every other way is a
      -- guard of its own that exits) so that, with k = i % 6 after, each
      -- of five exits is taken about n / 6 times. Recorded on whichever
      -- way the counter fired in, an exit could stand for five ways (k ~= 0
      -- taken 5n / 6 times): a side trace in 1 run of 20.
      local loop = load([[
        local n, m, base = ...
        local s = 0
        for i = 1, n do
          local k = i % m + base
          if k == 0 then s = s + 1 elseif k == 1 then s = s + 2 elseif k == 2 then s = s + 3
          elseif k == 3 then s = s + 4 elseif k == 4 then s = s + 5 else s = s + 6 end
        end
        return s
      ]])
      local function run(n, m, base) return function() loop(n, m, base) end end
      local p = memprobe.profile()
      p:stop()
      local q = memprobe.profile()
      q = nil
      collectgarbage()
      collectgarbage()
      -- hotexit 200: no exit taken 100 times is hot; maxside 2: two of five
      print("sides", sides(run(600, 1, 5)), sides(run(600, 6, 0)), sides(run(20000, 6, 0)))
    ]=], "env -u LUA_INIT timeout 60")
    assert.matches("sides\t0\t0\t2\n", out, 1, true)
  end)

  it("refuses a row count that is no whole number, and a dot-call", function()
    local p = memprobe.profile{ rate = 1e9 }
    p:stop()
    H.assert_raises{
      { function() p:top(0 / 0) end, "bad argument #1 to 'top' (number of rows expected" },
      { function() p:top(-1) end, "bad argument #1 to 'top' (number of rows expected" },
      { function() p:top(2.5) end, "bad argument #1 to 'top' (number of rows expected" },
      { function() p.top(5) end,
        "bad argument #1 to 'top' (memprobe.Profile expected, got number)" },
      { function() p.stop() end, "bad argument #1 to 'stop' (memprobe.Profile expected, got nil)" },
      { function() p.reset({}) end,
        "bad argument #1 to 'reset' (memprobe.Profile expected, got table)" },
      { function() p.info(p.core) end,
        "bad argument #1 to 'info' (memprobe.Profile expected, got userdata)" },
      { function() p.folded("live") end,
        "bad argument #1 to 'folded' (memprobe.Profile expected, got string)" },
      { function() p.pprof("x.pb.gz") end,
        "bad argument #1 to 'pprof' (memprobe.Profile expected, got string)" },
      { function() p.flamegraph("x.svg") end,
        "bad argument #1 to 'flamegraph' (memprobe.Profile expected, got string)" },
    }
    assert.are.equal(0, #p:top(0))
    assert.is_table(p:top(math.huge))
  end)
end)
