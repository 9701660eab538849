-- tools/busted-all.sh runs this file alone: it times its own steps.
-- memprobe inside a real skynet node (built by `make skynet`), driven
-- through skynet's own debug console over TCP. The node runs the tracked
-- service spec/skynet/probe.lua; a node under valgrind kills one.
local H = require "spec.helper"
local memprobe = require "memprobe"

local top = H.run("pwd"):gsub("%s+$", "")
local SKYNET = top .. "/build/skynet/"
local CORE = top .. "/build/skynet-core/"
-- seconds a node may live, and valgrind's
local LIFETIME, VG_LIFETIME = 60, 150

local function why_skipped()
  if _VERSION ~= "Lua 5.4" or jit then return "runs in the lua5.4 pass" end
  if H.asan or H.valgrind then return "runs in the plain lua5.4 pass" end
  if not H.slurp(SKYNET .. "skynet") or not H.slurp(CORE .. "memprobe/core.so") then
    return "skynet not built (make skynet; set SKYNET_SRC)"
  end
  if not pcall(require, "socket") then return "lua-socket not installed" end
end

local function sleep(s)
  require("socket").sleep(s)
end

-- A port nothing listens on now.
local function free_port()
  local socket = require "socket"
  local srv = assert(socket.bind("127.0.0.1", 0))
  local _, port = srv:getsockname()
  srv:close()
  return tonumber(port)
end

local function config(log)
  return table.concat({
    ('root = "%s"'):format(SKYNET),
    'thread = 2',
    'harbor = 0',
    'start = "main"',
    'bootstrap = "snlua bootstrap"',
    ('logger = "%s"'):format(log),
    'console_port = "$CONSOLE_PORT"',
    'cpath = root .. "cservice/?.so"',
    ('luaservice = root .. "service/?.lua;%s/spec/skynet/?.lua"'):format(top),
    'lualoader = root .. "lualib/loader.lua"',
    ('lua_path = root .. "lualib/?.lua;" .. root .. "lualib/?/init.lua;" .. ' ..
     '"%s/lua/?.lua;%s/lua/?/init.lua;%s/examples/skynet/?.lua"'):format(top, top, top),
    ('lua_cpath = root .. "luaclib/?.so;%s?.so"'):format(CORE),
  }, "\n") .. "\n"
end

-- A console connection: cmd(line) sends one command and returns its
-- output lines and whether it ended in <CMD OK>.
local function console(port, timeout)
  local socket = require "socket"
  local conn = assert(socket.connect("127.0.0.1", port))
  conn:settimeout(timeout or 20)
  assert.matches("Welcome to skynet console", assert(conn:receive("*l")), 1, true)
  local c = {}
  function c.send(line) assert(conn:send(line .. "\n")) end
  function c.answer()
    local out = {}
    while true do
      local l, err = conn:receive("*l")
      if not l then return out, nil, err end
      if l == "<CMD OK>" or l == "<CMD Error>" then return out, l == "<CMD OK>" end
      out[#out + 1] = l
    end
  end
  function c.cmd(line)
    c.send(line)
    return c.answer()
  end
  function c.close() conn:close() end
  return c
end

-- A node: start() runs build/skynet/skynet (behind `wrapper`) in a fresh
-- directory, bounded by timeout(1), and waits for its console.
local function node(wrapper, lifetime)
  local n = { dir = H.tmpdir() }
  n.log = n.dir .. "/skynet.log"
  local f = assert(io.open(n.dir .. "/config", "wb"))
  f:write(config(n.log))
  f:close()
  n.port = free_port()
  local p = io.popen(("cd '%s' && CONSOLE_PORT=%d exec timeout -k 5 %d %s '%sskynet' config " ..
    ">'%s/out' 2>&1 & echo $!"):format(n.dir, n.port, lifetime, wrapper or "", SKYNET, n.dir))
  n.pid = tonumber(p:read("*l"))
  p:close()
  function n.alive() return H.status("kill -0 " .. n.pid) == 0 end
  function n.stop()
    if n.alive() then os.execute("kill " .. n.pid .. " 2>/dev/null") end
    for _ = 1, 50 do
      if not n.alive() then break end
      sleep(0.1)
    end
  end
  function n.output() return (H.slurp(n.dir .. "/out") or "") .. (H.slurp(n.log) or "") end
  local deadline = os.time() + lifetime / 3
  repeat
    local ok, c = pcall(console, n.port)
    if ok then n.console = c return n end
    sleep(0.2)
  until os.time() > deadline or not n.alive()
  n.stop()
  error("no skynet console on port " .. n.port .. ":\n" .. n.output())
end

-- The values a console `call` returned ("1\tv" ... "n\tN" lines).
local function values(out)
  local v = {}
  for _, l in ipairs(out) do
    local k, x = l:match("^(%d+)\t(.*)$")
    if k then v[tonumber(k)] = tonumber(x) or x end
  end
  return v
end

local function call(c, addr, args)
  local out, ok = c.cmd(("call %s %s"):format(addr, args))
  assert(ok, table.concat(out, "\n"))
  return values(out)
end

-- `start probe` through the console; returns the service's address.
local function start_probe(c, mode)
  local out, ok = c.cmd("start probe" .. (mode and " " .. mode or ""))
  local addr = ok and out[1] and out[1]:match("^(:%x+)\tprobe")
  return assert(addr, table.concat(out, "\n"))
end

-- skynet's own count of a service's Lua bytes: lalloc's total in
-- service_snlua.c, which `signal ADDR 1` writes to the log in KiB.
local function skynet_count(n, addr)
  local tag = "[" .. addr .. "] Current Memory "
  local seen = select(2, (H.slurp(n.log) or ""):gsub(tag, ""))
  local _, ok = n.console.cmd("signal " .. addr .. " 1")
  assert(ok)
  for _ = 1, 50 do
    local log, last = H.slurp(n.log) or "", nil
    local k = 0
    for kib in log:gmatch(tag:gsub("%p", "%%%0") .. "([%d.]+)K") do
      k = k + 1
      last = kib
    end
    if k > seen then return tonumber(last) * 1024 end
    sleep(0.05)
  end
  error("no 'Current Memory' line in the log")
end

describe("memprobe in a skynet node", function()
  local skip = why_skipped()
  local n, addr

  setup(function()
    if skip then return end
    n = node(nil, LIFETIME)
    addr = start_probe(n.console)
  end)

  teardown(function()
    if n then
      n.console.close()
      n.stop()
      H.rmdir(n.dir)
    end
  end)

  it("answers calls to a service after its track()", function()
    if skip then pending(skip) return end
    -- the first message after track() used to fail: "cannot resume dead coroutine"
    assert.are.equal("pong", call(n.console, addr, '"ping"')[1])
    assert.are.equal("pong", call(n.console, addr, '"ping"')[1])
    assert.are.equal(300, call(n.console, addr, '"grow", 300, 2048')[1])
    assert.are.equal(0, call(n.console, addr, '"drop"')[1])
    assert.is_nil(n.output():find("cannot resume", 1, true))
  end)

  it("keeps tracker live equal to skynet's own per-service counter", function()
    if skip then pending(skip) return end
    local figures = {}
    -- skynet's bookkeeping between the two reads (none seen so far)
    local tolerance = 512
    for _, step in ipairs({ '"ping"', '"grow", 400, 2048', '"drop"' }) do
      call(n.console, addr, step)
      local v = call(n.console, addr, '"live"')   -- stops the collector
      local sk = skynet_count(n, addr)
      call(n.console, addr, '"resume"')
      -- live plus what was allocated after it was read: the stats table
      local live = v[1] + (v[3] - v[2])
      figures[#figures + 1] = ("%s: tracker %.0f, skynet %.0f, collector %.0f"):format(
        step, live, sk, v[3])
      assert(math.abs(live - sk) <= tolerance, table.concat(figures, "\n"))
    end
    print("\n  " .. table.concat(figures, "\n  "))
  end)

  it("still lets `signal ADDR` break a busy loop in the tracked service", function()
    if skip then pending(skip) return end
    local busy = console(n.port)
    busy.send(("call %s \"busy\""):format(addr))
    sleep(0.3)
    local _, ok = n.console.cmd("signal " .. addr)
    assert(ok)
    local _, done = busy.answer()
    busy.close()
    -- the loop raised "signal 0": the call failed, the service lives on
    assert.is_false(done)
    local broke
    for line in n.output():gmatch("[^\n]+") do
      broke = broke or (line:find("[" .. addr .. "] lua call", 1, true) and
                        line:find("signal 0", 1, true))
    end
    assert(broke, n.output())
    assert.are.equal("pong", call(n.console, addr, '"ping"')[1])
  end)

  it("walks the heap in slices while the service answers other calls", function()
    if skip then pending(skip) return end
    -- the first walk measures the size model: not the slicing asked here
    local warm = n.console.cmd(("dbgcmd %s MEMPROBE heap"):format(addr))
    assert.matches("table", table.concat(warm, "\n"))
    assert.are.equal(100000, call(n.console, addr, '"grow", 100000, 16')[1])
    local walk = console(n.port)
    walk.send(("dbgcmd %s MEMPROBE heap"):format(addr))
    local t0 = require("socket").gettime()
    assert.are.equal("pong", call(n.console, addr, '"ping"')[1])
    local ping = require("socket").gettime() - t0
    local out, ok = walk.answer()
    local whole = require("socket").gettime() - t0
    walk.close()
    assert(ok, table.concat(out, "\n"))
    assert.matches("table +%d+", table.concat(out, "\n"))
    print(("\n  ping answered after %.0f ms of a %.0f ms heap walk")
      :format(ping * 1e3, whole * 1e3))
    -- a walk that held the service would answer first: the ping comes
    -- back while the walk is still going
    assert.is_true(ping < whole)
    assert.are.equal(0, call(n.console, addr, '"drop"')[1])
  end)

  it("shows code the node shares between services as its own row", function()
    if skip then pending(skip) return end
    local v = call(n.console, addr, '"heap"')
    local total, code, protos, strings, gc = v[1], v[2], v[3], v[4], v[5]
    print(("\n  census %d B, shared %d B (%d prototypes, %d strings), collector %d B")
      :format(total, code, protos, strings, gc))
    assert.is_true(protos > 10 and code > 100 * 1024)
    -- not charged to the service: the census stays near the collector
    assert.is_true(math.abs(total - gc) < gc / 4)
    local m = call(n.console, addr, '"modules"')
    assert.are.equal(code, m[1])
    assert.are.equal(0, m[3])
    assert.is_true(m[2] < gc * 1.25)
  end)
end)

describe("examples/skynet", function()
  local skip = why_skipped()

  it("puts memprobe's console behind skynet's debug console", function()
    if skip then pending(skip) return end
    local out = H.run(("sh examples/skynet/run.sh %d 2>&1; echo rc=$?"):format(free_port()))
    assert.matches("rc=0", out, 1, true)
    assert.matches("MEMPROBE lua\ncollectgarbage +%d", out)
    assert.matches("tracked live +%d", out)
    assert.matches("%(shared code%) +%d+ +%d", out)
    assert.matches("%(shared code%) +0B +%d+%.?%d*KiB", out)
    assert.matches('"count"\n1\t200\n', out)
    -- the walks ran from skynet.timeout ticks, one at most past twice its
    -- budget (4.47 ms of 2 was seen once), none past five times
    local ticks, longest, budget, over = out:match(
      "ticks (%d+)  longest ([%d.]+) ms of a (%d+) ms budget  over twice (%d+)")
    assert(ticks, out)
    assert.is_true(tonumber(ticks) > 3, out)
    assert.is_true(tonumber(over) <= 1, out)
    assert.is_true(tonumber(longest) <= 5 * tonumber(budget), out)
    assert.is_nil(out:find("cannot resume", 1, true))
    assert.is_nil(out:find("<CMD Error>", 1, true))
  end)
end)

describe("memprobe in a skynet node under valgrind", function()
  local skip = why_skipped() or (not H.run("command -v valgrind") and "valgrind not installed")

  it("kills a tracked service without a memory error", function()
    if skip then pending(skip) return end
    local vg = "valgrind -q --error-exitcode=1 --leak-check=no --log-file=vg.log"
    local n = node(vg, VG_LIFETIME)
    local ok, err = pcall(function()
      local c = n.console
      local a = start_probe(c)
      assert.are.equal(100, call(c, a, '"grow", 100, 4096')[1])
      local _, killed = c.cmd("kill " .. a)
      assert(killed)
      -- a second tracked service, dropped by its own exit, then the node
      local b = start_probe(c)
      call(c, b, '"grow", 50, 4096')
      c.send(("call %s \"abort\""):format(b))
      for _ = 1, 200 do
        if not n.alive() then break end
        sleep(0.1)
      end
      assert.is_false(n.alive(), "the node did not stop")
      local report = H.slurp(n.dir .. "/vg.log") or ""
      assert.are.equal("", report)
    end)
    n.console.close()
    n.stop()
    local out = n.output()
    H.rmdir(n.dir)
    assert(ok, tostring(err) .. "\n" .. out)
  end)
end)

describe("memprobe.heap() on a Lua without shared code", function()
  it("has an empty shared code row", function()
    local c = memprobe.heap()
    assert.are.equal(0, c.shared_code.count)
    assert.are.equal(0, c.shared_code.bytes)
    for _, row in ipairs(memprobe.modules()) do
      assert.are_not.equal("(shared code)", row.name)
    end
  end)
end)
