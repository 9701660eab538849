-- Defects a hostile review found in the diff jobs, the console's job
-- queue and the profiler's file output; each case failed before its fix.
local H = require "spec.helper"

-- Runs code in a child interpreter (under `timeout`, so that a hang
-- fails instead of stopping the suite); its output and "exit N".
local function child(code)
  local f = os.tmpname()
  local h = assert(io.open(f, "w"))
  h:write(code)
  h:close()
  local out = H.lua("'" .. f .. "'", "timeout 60")
  os.remove(f)
  return out
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
