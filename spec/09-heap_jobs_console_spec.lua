-- tools/busted-all.sh runs this file alone: it times its own steps.
local H = require "spec.helper"

local before_globals = H.globals()
local memprobe = require "memprobe"
local clock = memprobe.clock

-- Steps a job to its end; the steps, and the longest in ms of CPU time
-- (the wall clock counts the other processes of a busy machine too).
local function run_job(job, ms)
  local n, worst = 0, 0
  while true do
    local t0 = os.clock()
    local done = job:step(ms)
    worst = math.max(worst, os.clock() - t0)
    if done then break end
    n = n + 1
  end
  return n, worst * 1000
end

-- Figures of a diff that do not depend on the order of equal groups.
local function summary(d)
  local function rows(list, keys)
    local out = {}
    for _, g in ipairs(list) do
      local r = {}
      for _, k in ipairs(keys) do r[#r + 1] = tostring(g[k]) end
      out[#out + 1] = table.concat(r, " ")
    end
    table.sort(out)
    return table.concat(out, "\n")
  end
  return { added = rows(d.added, { "path", "count", "bytes" }),
           freed = rows(d.freed, { "path", "count", "bytes" }),
           grown = rows(d.grown, { "path", "before", "after", "bytes" }),
           added_bytes = d.added_bytes, freed_bytes = d.freed_bytes }
end

describe("snap:diff(older, {max_ms})", function()
  it("does not create globals", function()
    local s = memprobe.snapshot()
    local j = s:diff(s, { max_ms = 1 })
    run_job(j)
    for k in pairs(H.globals()) do assert.is_true(before_globals[k], k) end
  end)

  it("returns a job whose result is the unsliced diff's", function()
    local world = { cache = {}, log = {} }
    for i = 1, 20000 do world.log[i] = { i } end
    package.loaded.spec_diffjob = world
    local s1 = memprobe.snapshot()
    for i = 1, 40000 do world.cache["k" .. i] = { i, "v" .. i } end
    for i = 1, 10000 do world.log[i] = nil end
    for i = 1, 30 do world["named" .. i] = { i } end
    local s2 = memprobe.snapshot()
    local whole = s2:diff(s1)
    -- slices of 0.1 ms: the whole diff takes about 3 ms on a fast core,
    -- where slices of 1 ms made as few as 2 steps
    local job = s2:diff(s1, { max_ms = 0.1 })
    assert.is_nil(job:result())
    local last = -1
    local steps = 0
    while not job:step() do
      steps = steps + 1
      local n, total, f = job:progress()
      assert.is_true(n >= last and n <= total and f >= 0 and f < 1)
      last = n
    end
    local sliced = job:result()
    package.loaded.spec_diffjob = nil
    assert.is_true(steps > 3, steps)
    assert.are.same(summary(whole), summary(sliced))
    assert.are.equal("package.loaded.spec_diffjob.cache[*]", sliced.added[1].path)
    assert.is_true(sliced.added[1].count >= 80000)
    assert.matches("spec_diffjob.log", sliced.freed[1].path, 1, true)
    assert.are.equal(select(3, job:progress()), 1)
    s1:close()
    s2:close()
  end)

  it("keeps each slice within twice its budget", function()
    local world = {}
    for i = 1, 150000 do world[i] = { i } end
    package.loaded.spec_diffjob = world
    local s1 = memprobe.snapshot()
    for i = 150001, 300000 do world[i] = { i } end
    local s2 = memprobe.snapshot()
    package.loaded.spec_diffjob = nil
    local t0 = clock()
    local whole = s2:diff(s1)
    local unsliced = (clock() - t0) * 1000
    assert.is_true(whole.added[1].count >= 150000)
    -- before: the whole diff in one call (unsliced ms here). The worst
    -- slice is 2.05-2.25 ms in alike runs; a loaded machine stretched one
    -- to 9 ms once, so the job gets three tries: a diff whose slices are
    -- too long fails all three
    local n, worst
    for _ = 1, 3 do
      n, worst = run_job(s2:diff(s1, { max_ms = 2 }), 2)
      if worst < 4 + 2 then break end
    end
    assert.is_true(worst < 4 + 2, ("worst slice %.1f ms of %d, unsliced %.1f ms")
      :format(worst, n, unsliced))
    s1:close()
    s2:close()
  end)

  it("fails cleanly when a finalizer closes a snapshot inside a step", function()
    local world = {}
    for i = 1, 50000 do world[i] = { i } end
    package.loaded.spec_diffjob = world
    local s1 = memprobe.snapshot()
    for i = 50001, 100000 do world[i] = { i } end
    local s2 = memprobe.snapshot()
    package.loaded.spec_diffjob = nil
    local job = s2:diff(s1, { max_ms = 0.2 })
    local armed = true
    local function arm()
      local f = function() if armed then armed = false; s1:close() end end
      if newproxy then  -- luacheck: ignore 113
        getmetatable(newproxy(true)).__gc = f  -- luacheck: ignore 113
      else
        setmetatable({}, { __gc = f })
      end
    end
    arm()
    collectgarbage("collect")  -- runs it between steps: the next step says so
    local ok, err = pcall(run_job, job, 0.2)
    assert.is_false(ok)
    assert.matches("closed", err)
    assert.matches("closed", tostring(s1))
    s2:close()
  end)

  it("refuses a bad budget", function()
    local s = memprobe.snapshot()
    assert.has_error(function() s:diff(s, { max_ms = -1 }) end)
    assert.has_error(function() s:diff(s, { max_ms = "2" }) end)
    s:close()
  end)
end)

describe("memprobe.path(obj, {max_ms})", function()
  it("returns a job whose result is the unsliced path list", function()
    local world = { rooms = {} }
    for i = 1, 30000 do world.rooms[i] = { id = i } end
    local needle = { "needle" }
    world.rooms[17].item = needle
    world.lost = { found = needle }
    package.loaded.spec_pathjob = world
    local whole = memprobe.path(needle)
    local job = memprobe.path(needle, { max_ms = 1 })
    local steps = run_job(job, 1)
    local sliced = job:result()
    package.loaded.spec_pathjob = nil
    assert.is_true(steps > 2, steps)
    assert.are.same(whole, sliced)
    assert.are.equal("package.loaded.spec_pathjob.lost.found", sliced[1])
  end)
end)

describe("the console's heap commands with budget_ms", function()
  it("load the heap layer when the console is made, not with require \"memprobe\"", function()
    local out = H.run(("LUA_PATH=%q LUA_CPATH=%q %s -e %q"):format(package.path,
      package.cpath, H.interpreter(), [[
      require "memprobe"
      local before = package.loaded["memprobe.heap"] ~= nil
      require("memprobe.console").new()
      local plain = package.loaded["memprobe.heap"] ~= nil
      require("memprobe.console").new{ budget_ms = 2 }
      print(before, plain, package.loaded["memprobe.heap"] ~= nil)
    ]]))
    assert.matches("false%s+false%s+true", out)
  end)

  local console = require "memprobe.console"

  it("answers mark and diff with progress until the ticks finish them", function()
    local world = {}
    for i = 1, 30000 do world[i] = { i } end
    package.loaded.spec_console = world
    local c = console.new{ budget_ms = 1 }
    local first = c:run("mark")
    -- before: mark walked and collected in one call
    assert.matches("^walking heap: ", first)
    assert.is_nil(first:find("^marked"), first)
    while not c:step(1) do end
    assert.matches("^marked: ", c:run("mark"))
    local grow = {}
    for i = 1, 20000 do grow[i] = { i } end
    world.grow = grow
    assert.is_nil(c:run("diff"):find("^lua heap"))
    local ticks = 0
    while not c:step(1) do ticks = ticks + 1 end
    local text = c:run("diff")
    package.loaded.spec_console = nil
    assert.is_true(ticks > 2, ticks)
    local n, unit = text:match("^lua heap ([%d.]+)(%a+)")
    assert.is_true(unit == "MiB" or (unit == "KiB" and tonumber(n) > 500), text)
    assert.matches("module spec_console", text, 1, true)
  end)

  it("shows no growth of its own from mark to diff", function()
    local c = console.new{ budget_ms = 2 }
    c:run("mark")
    while not c:step() do end
    c:run("mark")
    c:run("diff")
    while not c:step() do end
    local text = c:run("diff")
    local n, unit = text:match("^lua heap (%-?[%d.]+)(%a*)")
    n = tonumber(n)
    assert.is_true(unit == "B" and math.abs(n) < 1024, text)
  end)

  it("hands the answers to reply() from step(), and shares one budget per tick", function()
    local world = {}
    for i = 1, 60000 do world[i] = { i, "x" .. i } end
    package.loaded.spec_console = world
    local got = {}
    local c = console.new{ budget_ms = 2, reply = function(line, text)
      got[#got + 1] = { line, text }
    end }
    -- every job's steps are recorded with the deadline they were given
    local given
    local real_mp = c.mp
    local function spied(job)
      local step = job.step
      job.step = function(j, ms)
        -- CPU time: a busy machine's preemption does not count
        if given then given[#given + 1] = os.clock() + ms / 1000 end
        return step(j, ms)
      end
      return job
    end
    c.mp = setmetatable({
      heap = function(o) return spied(real_mp.heap(o)) end,
      modules = function(o) return spied(real_mp.modules(o)) end,
    }, { __index = real_mp })
    assert.matches("^walking heap: ", c:run("mem modules 3"))
    assert.matches("^walking heap: ", c:run("heap"))
    assert.matches("^walking heap: ", c:run("mark"))
    -- the collector's own work is counted in a tick too: a major
    -- collection of generational mode (5.4's default) is not the walk's
    local inc, mode = pcall(collectgarbage, "incremental")
    local worst, most = 0, 0
    repeat
      given = {}
      local t0 = os.clock()
      local idle = c:step(2)
      worst = math.max(worst, os.clock() - t0)
      for _, deadline in ipairs(given) do
        most = math.max(most, (deadline - t0) * 1000)
      end
    until idle
    given = nil
    if inc and type(mode) == "string" then collectgarbage(mode) end
    package.loaded.spec_console = nil
    assert.are.equal(3, #got)
    local by = {}
    for _, g in ipairs(got) do by[g[1]] = g[2] end
    assert.matches("spec_console", by["mem modules 3"], 1, true)
    assert.matches("table", by.heap, 1, true)
    assert.matches("^marked: ", by.mark)
    -- sanitized code runs several times slower (25 ms seen under ASan)
    local slow = (H.asan or H.valgrind) and 4 or 1
    -- three jobs, one budget: before, each job was given the whole of it
    -- (with some slack for the collector steps the spy's own records run
    -- between the console's clock read and its own: 0.73 ms under ASan)
    assert.is_true(most <= 2 + 0.5 * slow, most)
    assert.is_true(worst * 1000 < 20 * slow, worst * 1000)
    -- answered: nothing is kept
    assert.matches("^walking heap", c:run("heap"))
  end)
end)

describe("the console's mark without a budget", function()
  it("walks the modules once", function()
    local calls = 0
    local mp = setmetatable({ modules = function(...)
      calls = calls + 1
      return memprobe.modules(...)
    end }, { __index = memprobe })
    local c = require("memprobe.console").new()
    c.mp = mp
    assert.matches("^marked: ", c:run("mark"))
    -- before: a first walk to warm up, thrown away, then the mark's
    assert.are.equal(1, calls)
    assert.matches("^lua heap ", c:run("diff"))
  end)
end)
