local memprobe = require "memprobe"
local console = require "memprobe.console"
local export = require "memprobe.export"
local format = require "memprobe.format"
local json = require "memprobe.json"
local H = require "spec.helper"

local decode = H.json_decode

-- Runs Lua code in a child interpreter with this tree's modules: what it
-- prints, then "exit N".
local child = H.chunk

-- The 6.18 fixture's slabinfo, parsed here: { name, active_objs, size }.
local function fixture_slabs()
  local rows = {}
  for line in H.slurp("spec/fixtures/linux-6.18/proc/slabinfo"):gmatch("[^\n]+") do
    local name, active, num, objsize, perslab, pages, slabs = line:match(
      "^(%S+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%d+) : tunables.-: slabdata%s+%d+%s+(%d+)")
    if name then
      rows[#rows + 1] = { name = name, active_objs = tonumber(active),
        num_objs = tonumber(num), objsize = tonumber(objsize), perslab = tonumber(perslab),
        size = tonumber(slabs) * tonumber(pages) * 4096 }
    end
  end
  return rows
end


describe("memprobe.report()", function()
  it("reconciles the kernel level with free() and meminfo", function()
    memprobe.config(H.fixture("linux-6.18"))
    local r = memprobe.report()
    local f = memprobe.free()
    local m = memprobe.meminfo()
    memprobe.config{}
    assert.are.equal(f.total, r.kernel.total)
    assert.are.equal(f.used, r.kernel.used)
    assert.are.equal(m.AnonPages, r.kernel.parts.anon)
    assert.are.equal(m.SUnreclaim, r.kernel.parts.slab_unreclaimable)
    assert.are.equal(m.VmallocUsed, r.kernel.parts.vmalloc)
    -- kept back: free + file pages + reclaimable kernel memory - available
    assert.are.equal(m.MemFree + m["Active(file)"] + m["Inactive(file)"]
      + m.KReclaimable - m.MemAvailable, r.kernel.parts.held_back)
    local explained = 0
    for _, v in pairs(r.kernel.parts) do explained = explained + v end
    assert.are.equal(r.kernel.used - explained, r.kernel.unexplained)
  end)

  it("puts the Lua heap beside collectgarbage('count')", function()
    local r = memprobe.report()
    local gc = collectgarbage("count") * 1024
    assert.is_true(math.abs(r.lua.gc - gc) < 256 * 1024)
  end)

  it("shows the tracker's live bytes equal to the GC count", function()
    local had = memprobe.tracker()
    local t = memprobe.track()
    local r = memprobe.report()
    if not had then t:untrack() end
    -- on 5.5 the tracker also counts the external strings alive
    assert.are.equal(r.lua.gc + r.lua.uncounted, r.lua.tracked)
    if not H.since("5.5") then assert.are.equal(0, r.lua.uncounted) end
  end)

  it("keeps a level's error instead of failing", function()
    memprobe.config{ proc = "/nonexistent" }
    local r = memprobe.report()
    memprobe.config{}
    assert.matches("/nonexistent/meminfo", r.kernel.error, 1, true)
    assert.is_string(format.report(r))
  end)

  it("prints within 80 columns", function()
    for line in (format.report(memprobe.report()) .. "\n"):gmatch("([^\n]*)\n") do
      assert.is_true(#line <= 80, line)
    end
  end)

  it("raises on a non-table option argument", function()
    assert.has_error(function() memprobe.report(5) end)
  end)

  it("shows every level with the fixture's figures", function()
    local KiB = 1024
    memprobe.config(H.fixture("linux-6.18"))
    local r = memprobe.report{ pid = 4401 }
    memprobe.config(H.fixture("cgroup-v2-nested"))
    local own = memprobe.report()
    memprobe.config{}
    -- process: the fixture's pid 4401
    assert.are.same({ 4401, 1616 * KiB, 490 * KiB, 208 * KiB, 0 },
      { r.process.pid, r.process.rss, r.process.pss, r.process.uss, r.process.swap })
    assert.are.equal(r.process.rss / r.kernel.used, r.process.share_of_used)
    local text = format.report(r)
    assert.matches("== process 4401\n  rss%s+1.6MiB\n  pss%s+490KiB\n  uss%s+208KiB\n", text)
    -- the levels --pid cannot read say why, each its own reason
    assert.matches("== cgroup\n  (not read: memprobe reads its own cgroup, not " ..
      "process 4401's)\n", text, 1, true)
    assert.matches("== C heap (mallinfo2)\n  (not read: only process 4401 can read its " ..
      "C heap)\n", text, 1, true)
    assert.matches("== Lua heap\n  (not read: only process 4401 can read its Lua heap)",
      text, 1, true)
    -- cgroup: game.service under app.slice's 512 MiB
    assert.are.same({ 2, "/app.slice/game.service", 268435456, 536870912, 268435456 },
      { own.cgroup.version, own.cgroup.path, own.cgroup.usage, own.cgroup.limit,
        own.cgroup.headroom })
    text = format.report(own)
    assert.matches("== cgroup v2 /app.slice/game.service\n  usage%s+256MiB\n", text)
    assert.matches("\n  limit%s+512MiB\n  headroom%s+256MiB\n", text)
    -- C heap: mallinfo2's own fields, summed
    local mi = memprobe.mallinfo and memprobe.mallinfo()
    local live = memprobe.report()
    if mi and not H.asan and not H.valgrind then  -- not glibc's malloc: no mallinfo
      assert.is_true(live.c_heap.in_use > 0)
      -- against the tracker's figure when one is installed (the allocator's
      -- bytes: on 5.5 they include external strings), else the collector's
      assert.are.equal(live.c_heap.in_use - (live.lua.tracked or live.lua.gc),
                       live.lua.unexplained)
      assert.are.equal(live.process.rss - live.c_heap.in_use, live.c_heap.unexplained)
      assert.matches("== C heap %(mallinfo2%)\n  in use%s+%S+\n  free in heap",
        format.report(live))
    end
    -- Lua heap and modules: a fixture module's bytes, as requires() measured them
    package.path = "spec/fixtures/heapmods/?.lua;" .. package.path
    memprobe.account_requires()
    require "hm_chains"
    memprobe.account_requires(false)
    local load
    for _, q in ipairs(memprobe.requires()) do
      if q.name == "hm_chains" then load = q.retained end
    end
    live = memprobe.report{ modules = true }
    local row
    for _, q in ipairs(live.modules.rows) do if q.name == "hm_chains" then row = q end end
    assert(row and load, "hm_chains missing")
    assert.is_true(math.abs(row.exclusive - load) <= 0.1 * load, row.exclusive .. " vs " .. load)
    assert.are.equal(live.lua.gc - live.modules.total, live.modules.unexplained)
    text = format.report(live)
    assert.matches("== Lua heap\n  collectgarbage%(\"count\"%)%s+%S+\n", text)
    assert.matches("\n  hm_chains%s+" .. format.size(row.exclusive):gsub("%p", "%%%0"), text)
    package.loaded.hm_chains = nil
  end)
end)

describe("memprobe.console", function()
  local c
  before_each(function() c = console.new() end)

  it("lists every command in help, each with what it does", function()
    local names = { "help", "mem", "sys", "slab", "vmalloc", "proc", "lua", "modules",
                    "heap", "retained", "who", "mark", "diff", "gc", "track", "limit",
                    "prof", "watch", "drop", "json" }
    local text = c:run("help")
    assert.matches("^commands %(a leading 'mem' is optional%):\n", text)
    local listed = {}
    for name, what in text:gmatch("\n(%l+) +([^\n]+)") do listed[name] = what end
    for _, name in ipairs(names) do
      assert.is_truthy(listed[name], name)
      assert.is_true(#listed[name] > 8, name)
      listed[name] = nil
    end
    assert.are.same({}, listed)  -- and nothing the list above lacks
  end)

  it("treats 'mem X' and 'X' as the same command", function()
    assert.are.equal(c:run("help"), c:run("mem help"))
    -- on a fixture tree: two live readings of meminfo differ
    memprobe.config(H.fixture("linux-6.18"))
    local plain = c:data("json sys")
    local prefixed = c:data("mem json sys")
    memprobe.config{}
    assert.is_not_nil(plain)
    assert.are.same(plain, prefixed)
  end)

  it("answers garbage and unknown commands with a hint, never an error", function()
    for _, line in ipairs({ "", "   ", "frobnicate", "\0\1\2", ("x"):rep(10000),
                            "slab banana", "limit", "limit 12Q", "track maybe",
                            "json", "json json", "json nosuch", "drop", 42 }) do
      local text = c:run(line)
      assert.is_string(text)
    end
    assert.matches("unknown command 'frobnicate'", c:run("frobnicate"), 1, true)
    assert.matches("help", c:run("frobnicate"), 1, true)
  end)

  it("refuses drop unless the host allowed it", function()
    assert.matches("disabled", c:run("mem drop 3"), 1, true)
  end)

  it("shows free -h figures for sys and free", function()
    local data = c:data("sys")
    local f = memprobe.free()
    assert.are.equal(f.total, data.total)
    assert.are.equal(c:run("sys"):match("total"), "total")
  end)

  it("gives the same figures as JSON", function()
    local text = c:run("json free")
    local t = decode(text)
    assert.are.equal(memprobe.free().total, t.total)
  end)

  it("reports what a gc freed", function()
    local keep = {}  -- luacheck: ignore 241
    for i = 1, 1000 do keep[i] = {} end
    local before = collectgarbage("count")
    keep = nil  -- luacheck: ignore 311 321
    local data = c:data("gc")
    -- the collection freed at least the 1000 tables let go of
    assert.is_true(data.freed >= 1000 * 16, tostring(data.freed))
    assert.is_true(data.freed <= before * 1024)
  end)

  it("fits every answer in 80 columns", function()
    for _, cmd in ipairs({ "help", "mem", "sys", "lua", "gc", "mark", "diff" }) do
      for line in (c:run(cmd) .. "\n"):gmatch("([^\n]*)\n") do
        assert.is_true(#line <= 80, cmd .. ": " .. line)
      end
    end
  end)

  it("shows slab caches, vmalloc callers and what grew since a mark (root)", function()
    if not H.is_root() then pending("needs root: /proc/slabinfo is 0400") return end
    local text, s = c:run("mem slab 5"), c:data("mem slab 5")
    assert.are.equal(5, #s.caches)
    assert.matches("OBJS   ACTIVE  USE OBJ SIZE", text, 1, true)
    assert.matches(s.caches[1].name, text, 1, true)
    text = c:run("vmalloc 3")
    assert.matches("vmalloc", text, 1, true)
    c:run("mark")
    local keep = {}
    for i = 1, 2000 do keep[i] = { i } end
    local out, d = c:run("diff"), c:data("diff")
    assert.is_true(d.lua > 2000 * 16, out)
    assert.matches("^lua heap ", out)
    assert.is_table(keep)
    for _, l in ipairs({ "watch", "watch", "watch" }) do text = c:run(l) end
    assert.matches("3 samples", text, 1, true)
  end)

  it("caps the Lua heap with track and limit", function()
    local had = memprobe.tracker()
    if not had then
      assert.matches("needs the tracker", c:run("limit 512M"), 1, true)
      assert.matches("^tracking: live ", c:run("track on"))
    end
    assert.matches("limit 512MiB", c:run("limit 512M"), 1, true)
    local data = c:data("lua")
    assert.are.equal(512 * 2^20, data.tracker.limit)
    assert.matches("limit off", c:run("limit off"), 1, true)
    if not had then c:run("track off") end
  end)

  it("parses sizes like 512M", function()
    assert.are.equal(512 * 2^20, console.parse_size("512M"))
    assert.are.equal(1536, console.parse_size("1.5k"))
    assert.are.equal(2^30, console.parse_size("1GiB"))
    assert.are.equal(100, console.parse_size("100"))
    assert.are.equal(100, console.parse_size("100B"))
    assert.is_nil(console.parse_size("12Q"))
    assert.is_nil(console.parse_size("lots"))
  end)
end)

describe("memprobe.export", function()
  it("produces text that promtool accepts", function()
    if not H.run("command -v promtool") then pending("promtool not installed") return end
    local text = export.prometheus()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    local p = io.popen("promtool check metrics < " .. path .. " 2>&1; echo rc=$?")
    local out = p:read("*a")
    p:close()
    os.remove(path)
    assert.matches("rc=0", out, 1, true)
  end)

  it("exports meminfo with HELP and TYPE lines and exact values", function()
    memprobe.config(H.fixture("linux-6.18"))
    local text = export.prometheus{ slab = false, vmalloc = false }
    memprobe.config{}
    assert.matches("# HELP memprobe_meminfo_bytes ", text, 1, true)
    assert.matches("# TYPE memprobe_meminfo_bytes gauge", text, 1, true)
    assert.matches('memprobe_meminfo_bytes{field="MemTotal"} ' .. 24683620 * 1024, text, 1, true)
    assert.matches('memprobe_meminfo_hugepages{field="HugePages_Total"} 0', text, 1, true)
    assert.matches('memprobe_meminfo_bytes{field="Active(file)"} ' .. 169800 * 1024, text, 1, true)
  end)

  it("writes a textfile atomically", function()
    local path = os.tmpname()
    assert.is_true(export.textfile(path, { slab = false, vmalloc = false }))
    local s = H.slurp(path)
    os.remove(path)
    assert.matches("memprobe_lua_heap_bytes", s, 1, true)
    local ok, err = export.textfile("/nonexistent/dir/x.prom")
    assert.is_nil(ok)
    assert.is_string(err)
    assert.has_error(function() export.textfile(nil) end)
  end)
end)

-- Prometheus text as { ["name{labels}"] = value } and the set of families.
local function exposition(text)
  local samples, families = {}, {}
  for line in text:gmatch("[^\n]+") do
    local fam = line:match("^# TYPE (%S+) gauge$")
    if fam then families[fam] = true end
    local key, v = line:match("^([%w_]+%b{}) (%S+)$")
    if not key then key, v = line:match("^([%w_]+) (%S+)$") end
    if key then samples[key] = tonumber(v) end
  end
  return samples, families
end

describe("memprobe.export.prometheus(), every family against fixture numbers", function()
  after_each(function() memprobe.config{} end)
  local KiB, page = 1024, tonumber(H.run("getconf PAGESIZE"))

  it("meminfo, free, slab, vmalloc, numa and process families", function()
    memprobe.config(H.fixture("linux-6.18"))
    local s, fam = exposition(export.prometheus{ top = 5 })
    memprobe.config{}
    local m = H.parse_kv("spec/fixtures/linux-6.18/proc/meminfo")
    -- meminfo: every key, sizes in bytes and huge page counts
    local n = 0
    for k, v in pairs(m) do
      local family = k:match("^HugePages_") and "memprobe_meminfo_hugepages"
        or "memprobe_meminfo_bytes"
      assert.are.equal(v, s[family .. '{field="' .. k .. '"}'], k)
      n = n + 1
    end
    assert.is_true(n > 40)
    -- free, as procps computes it from the same file
    local bc = m.Buffers + m.Cached + m.SReclaimable
    for kind, v in pairs({ total = m.MemTotal, used = m.MemTotal - m.MemAvailable,
                           free = m.MemFree, shared = m.Shmem, buff_cache = bc,
                           available = m.MemAvailable, swap_total = m.SwapTotal,
                           swap_used = m.SwapTotal - m.SwapFree, swap_free = m.SwapFree }) do
      assert.are.equal(v, s['memprobe_free_bytes{field="' .. kind .. '"}'], kind)
    end
    -- slab: the five largest caches of the fixture, by size
    local rows = fixture_slabs()
    table.sort(rows, function(a, b) return a.size > b.size end)
    for i = 1, 5 do
      local r = rows[i]
      assert.are.equal(r.size * page / 4096, s['memprobe_slab_bytes{cache="' .. r.name .. '"}'],
        r.name)
      assert.are.equal(r.active_objs, s['memprobe_slab_active_objects{cache="' .. r.name .. '"}'])
    end
    assert.is_nil(s['memprobe_slab_bytes{cache="' .. rows[6].name .. '"}'])
    -- vmalloc: the caller with the most memory (pages, not address
    -- space), summed here from the fixture's lines
    local by = {}
    for line in H.slurp("spec/fixtures/linux-6.18/proc/vmallocinfo"):gmatch("[^\n]+") do
      local caller = line:match("^%S+%s+%d+ ([%w_.]+)%+0x")
      local pages = tonumber(line:match(" pages=(%d+)")) or 0
      if caller then by[caller] = (by[caller] or 0) + pages * page end
    end
    local best, most = nil, -1
    for k, v in pairs(by) do if v > most then best, most = k, v end end
    local found
    for key, v in pairs(s) do
      if key:match('^memprobe_vmalloc_bytes{caller="' .. best .. '"') then found = v end
    end
    assert.are.equal(most, found, best)
    -- numa: node 0 of the fixture
    local node = H.slurp("spec/fixtures/linux-6.18/sys/devices/system/node/node0/meminfo")
    for _, k in ipairs({ "MemTotal", "MemFree", "MemUsed" }) do
      local kb = tonumber(node:match("Node 0 " .. k .. ":%s+(%d+) kB"))
      assert.are.equal(kb * KiB, s['memprobe_numa_node_bytes{field="' .. k .. '",node="0"}'], k)
    end
    -- the process: the fixture's statm and smaps_rollup
    assert.are.equal(437 * page, s.memprobe_process_rss_bytes)
    assert.are.equal(490 * KiB, s.memprobe_process_pss_bytes)
    assert.are.equal((96 + 112) * KiB, s.memprobe_process_uss_bytes)
    assert.are.equal(0, s.memprobe_process_swap_bytes)
    -- the 6.18 cgroup (v1) has no limit: usage only
    assert.are.equal(23400448, s.memprobe_cgroup_usage_bytes)
    assert.is_nil(fam.memprobe_cgroup_limit_bytes)
    for _, f in ipairs({ "meminfo_bytes", "meminfo_hugepages", "free_bytes", "slab_bytes",
                         "slab_active_objects", "vmalloc_bytes", "numa_node_bytes",
                         "process_rss_bytes", "process_pss_bytes", "process_uss_bytes",
                         "process_swap_bytes", "cgroup_usage_bytes", "lua_heap_bytes" }) do
      assert.is_true(fam["memprobe_" .. f], f)
    end
  end)

  it("cgroup usage and effective limit, Lua heap and modules, with labels", function()
    memprobe.config(H.fixture("cgroup-v2-nested"))
    local s = exposition(export.prometheus{ slab = false, vmalloc = false })
    memprobe.config{}
    assert.are.equal(268435456, s.memprobe_cgroup_usage_bytes)
    assert.are.equal(536870912, s.memprobe_cgroup_limit_bytes)  -- app.slice's memory.max
    -- the Lua heap, bracketed by the collector's count around the call
    collectgarbage("collect")
    collectgarbage("stop")
    local before = collectgarbage("count") * KiB
    local text = export.prometheus{ slab = false, vmalloc = false, labels = { worker = 3 } }
    local after = collectgarbage("count") * KiB
    collectgarbage("restart")
    s = exposition(text)
    local lua = s['memprobe_lua_heap_bytes{worker="3"}']
    assert.is_true(lua >= math.floor(before) and lua <= after, lua)
    assert.is_number(s['memprobe_process_rss_bytes{worker="3"}'])
    assert.is_nil(s.memprobe_lua_heap_bytes)
    -- modules: a fixture module's bytes, as requires() measured its load
    package.path = "spec/fixtures/heapmods/?.lua;" .. package.path
    memprobe.account_requires()
    require "hm_closures"
    memprobe.account_requires(false)
    local load
    for _, r in ipairs(memprobe.requires()) do
      if r.name == "hm_closures" then load = r.retained end
    end
    s = exposition(export.prometheus{ slab = false, vmalloc = false, modules = true })
    local got = s['memprobe_module_bytes{module="hm_closures"}']
    assert(got and load, "hm_closures missing")
    assert.is_true(math.abs(got - load) <= 0.1 * load, got .. " vs " .. load)
    package.loaded.hm_closures = nil
  end)
end)

describe("memprobe.json", function()
  it("encodes plain tables through a packaged JSON library", function()
    local s = assert(json.encode({ a = 1, b = { 1, 2 } }))
    assert.are.same({ a = 1, b = { 1, 2 } }, decode(s))
  end)

  it("encodes empty lists as [] and marked maps as {}, whatever the data", function()
    local w = memprobe.watch{ sources = { "lua" } }
    w:sample()
    local s = assert(json.encode(w:report()))
    assert.matches('"series":[]', s, 1, true)
    assert.matches('"flagged":[]', s, 1, true)
    assert.matches('"errors":{}', s, 1, true)
    memprobe.config(H.fixture("linux-6.18"))  -- a machine without swap
    local swaps = assert(memprobe.swaps())
    memprobe.config{}
    assert.are.equal(0, #swaps)
    assert.are.equal("[]", json.encode(swaps))
    assert.are.equal('{"a":[[]],"b":{}}', json.encode({ a = { {} }, b = json.map({}) })
      :gsub('"b":{},"a":%[%[%]%]', '"a":[[]],"b":{}'))
  end)
end)

describe("operator modules", function()
  it("do not create globals", function()
    local before = H.globals()
    for _, m in ipairs({ "memprobe.console", "memprobe.export", "memprobe.json",
                         "memprobe.report", "memprobe.format" }) do
      package.loaded[m] = nil
      require(m)
    end
    for k in pairs(_G) do assert.is_true(before[k] ~= nil, "new global " .. tostring(k)) end
  end)
end)

describe("memprobe.console, as an operator uses it", function()
  local c
  before_each(function() c = console.new() end)
  after_each(function() memprobe.config{} end)

  it("returns exactly one string from run(), whatever the line", function()
    for _, line in ipairs({ "help", "mem", "sys", "lua", "gc", "frobnicate", "",
                            ("x "):rep(10000), ("x"):rep(20000), 42, false,
                            "slab 3 sort a", "limit", "json sys", "json" }) do
      local n = select("#", c:run(line))
      local text = c:run(line)
      assert.are.equal(1, n, tostring(line):sub(1, 20))
      assert.is_string(text)
    end
  end)

  it("answers a 20 KB line of words with a hint (no unpack error)", function()
    for _, line in ipairs({ ("x "):rep(10000), "help " .. ("x "):rep(10000),
                            "json slab " .. ("1 "):rep(10000) }) do
      local ok, text = pcall(c.run, c, line)
      assert.is_true(ok, text)
      assert.matches("too many words", text, 1, true)
    end
  end)

  it("refuses a bare number and a limit below live plus headroom; the host lives", function()
    local out = child([[
      local c = require("memprobe.console").new()
      print(c:run("track on"))
      for _, l in ipairs({ "limit 512", "limit 0", "limit 0B", "limit 512B",
                           "limit 1K", "limit 100K" }) do print(c:run(l)) end
      local keep = {}
      for i = 1, 20000 do keep[i] = { i } end  -- the host goes on allocating
      print(c:run("lua"))
      print(c:run("limit off"))
    ]])
    assert.matches("exit 0\n$", out)
    local n = 0
    for _ in out:gmatch("a limit needs a unit: %d+M, %d+K or %d+B") do n = n + 1 end
    assert.are.equal(2, n, out)
    n = 0
    for _ in out:gmatch("refused: [%d.]+K?i?B is below live plus headroom") do n = n + 1 end
    assert.are.equal(4, n, out)
    assert.matches("limit%s+none", out)
    assert.matches("\nlimit off\n", out)
  end)

  it("at the cap: 'limit off' however spaced, in run() and data(); a mark whole or none",
     function()
    local out = child([[
      -- LuaJIT 2.1's trace compiler can crash when its allocations fail
      if jit then jit.off() end
      local memprobe = require "memprobe"
      local c = memprobe.console.new()
      c:run("track on")
      local t = memprobe.tracker()
      local keep
      local function fill()
        pcall(function() for i = 1, 1e7 do keep[i] = ("x"):rep(4000) .. i end end)
        -- then to the last bytes: what is left holds no table
        local n = #keep
        pcall(function() for i = n + 1, 1e8 do keep[i] = {} end end)
      end
      local lines = { " limit off", "limit  off\r\n", "mem limit off ", "\tlimit off" }
      for _, line in ipairs(lines) do
        keep = {}
        collectgarbage("collect")
        t:limit(t:stats().live + 64 * 1024)
        pcall(fill)
        local r = c:run(line)
        local cap = t:stats().limit
        keep = nil
        collectgarbage("collect")
        print(r, cap)
        keep = {}
        collectgarbage("collect")
        t:limit(t:stats().live + 64 * 1024)
        pcall(fill)
        local d = c:data(line)
        cap = t:stats().limit
        keep = nil
        collectgarbage("collect")
        print(type(d) == "table" and d.limit, cap)
      end
      -- a mark cut short (its count fails) leaves no mark behind
      require "memprobe.heap"  -- keeps its own settle: the walk still works
      local settle = require "memprobe.settle"
      local real = settle.settle
      settle.settle = function() error("not enough memory") end
      print(c:run("mark"))
      settle.settle = real
      print(c:run("diff"))
      -- a module that cannot load at the cap: one line, no install path
      package.loaded["memprobe.watch"] = nil
      keep = {}
      collectgarbage("collect")
      t:limit(t:stats().live + 64 * 1024)
      pcall(fill)
      local w = c:run("watch")
      t:limit(nil)
      keep = nil
      print(w)
    ]])
    assert.matches("exit 0\n$", out)
    local n = 0
    for _ in out:gmatch("limit off\tnil\nfalse\tnil\n") do n = n + 1 end
    assert.are.equal(4, n, out)
    assert.matches("failed: not enough memory\nno mark yet", out, 1, true)
    assert.is_nil(out:find("%.lua"), out)
  end)

  it("gets out of a heap at its cap with 'limit off', and never raises there", function()
    local out = child([[
      local memprobe = require "memprobe"
      local c = memprobe.console.new()
      c:run("track on")
      collectgarbage("collect")
      local t = memprobe.tracker()
      t:limit(t:stats().live + 64 * 1024)   -- the host set it, near live
      local keep = {}
      -- fill in 4 KB steps: what is left is less than one step
      print(pcall(function() for i = 1, 1e7 do keep[i] = ("x"):rep(4000) .. i end end))
      -- nothing here may allocate: the heap is at its cap
      local r1 = c:run("lua")
      local r2 = c:run("mem slab 5")
      local r3 = c:run("limit off")
      keep = nil
      collectgarbage("collect")
      print(type(r1), type(r2), r3)
      print(c:run("lua"))
    ]])
    assert.matches("false\tnot enough memory", out, 1, true)
    assert.matches("string\tstring\tlimit off", out, 1, true)
    assert.matches("collectgarbage", out, 1, true)
    assert.matches("exit 0\n$", out)
  end)

  it("shows growth rates under 1 KiB/min (no %d on a float)", function()
    assert.are.equal("0.4B", format.size(0.4))
    assert.are.equal("512B", format.size(512))
    assert.are.equal("-300.5B", format.size(-300.5))
    local text = format.watch({ samples = 3, seconds = 120, changed = 1, errors = {},
      series = { { source = "meminfo", name = "Slab", slope = 300.5, r2 = 1,
                   delta = 601, monotonic = true } }, flagged = {} })
    assert.matches("300.5B/min", text, 1, true)
    -- and through the console: a slow rate from a fixture tree that grows
    local dir = H.tmpdir{ ["proc/meminfo"] = "MemTotal: 1000 kB\nMemFree: 10 kB\n" }
    memprobe.config{ proc = dir .. "/proc" }
    c.watcher = memprobe.watch{ sources = { "meminfo" } }
    local t = 0
    c.watcher.clock = function() t = t + 600 return t end  -- ten minutes a sample
    for i = 1, 3 do
      local f = assert(io.open(dir .. "/proc/meminfo", "wb"))
      f:write(("MemTotal: 1000 kB\nMemFree: %d kB\n"):format(10 + i))
      f:close()
      text = c:run("watch")
    end
    H.rmdir(dir)
    assert.matches("3 samples over 1200.0s", text, 1, true)
    assert.matches("MemFree%s+102.4B/min%s+1.00%s+2.0KiB%s+GROWS", text)
  end)

  it("says what went wrong in one short line without install paths", function()
    c.mp = setmetatable({ slabinfo = function()
      error("bad argument #1 to 'slabinfo' (sort must be one of a b c)")
    end, free = function() error({}) end }, { __index = memprobe })
    for _, line in ipairs({ "slab", "sys" }) do
      local text = c:run(line)
      assert.is_nil(text:find("\n"), text)
      assert.is_nil(text:find("%.lua:%d+:"), text)
      assert.is_true(#text <= 80, text)
    end
    assert.are.equal("failed: slabinfo: sort must be one of a b c", c:run("slab"))
    -- a path with a space, a chunk loaded from a string, nested positions
    for _, e in ipairs({ "/srv/my game/lua/stub.lua:1: boom",
                         '[string "error(\'boom\')"]:1: boom',
                         "/opt/a.lua:9: [string \"x\"]:3: boom" }) do
      c.mp = setmetatable({ slabinfo = function() error(e, 0) end }, { __index = memprobe })
      assert.are.equal("failed: boom", c:run("slab"))
    end
    -- a position inside the message is the message's
    c.mp = setmetatable({ slabinfo = function()
      error("/opt/a.lua:9: error in settings.lua:12: no port", 0)
    end }, { __index = memprobe })
    assert.are.equal("failed: error in settings.lua:12: no port", c:run("slab"))
  end)

  it("takes slab's sort as help shows it: 'slab 3 sort a', 'slab a', 'slab sort n'", function()
    memprobe.config(H.fixture("linux-6.18"))
    local rows = fixture_slabs()
    table.sort(rows, function(a, b) return a.active_objs > b.active_objs end)
    for _, line in ipairs({ "slab 3 sort a", "slab 3 a", "mem slab sort a 3" }) do
      local s = assert(c:data(line), c:run(line))
      assert.are.equal(3, #s.caches, line)
      for i = 1, 3 do assert.are.equal(rows[i].name, s.caches[i].name, line) end
    end
    assert.matches("got 'x'", c:run("slab 3 x"), 1, true)
    assert.matches("N must be a whole number", c:run("slab 0"), 1, true)
  end)

  it("refuses words a command does not take, and counts that are not digits", function()
    memprobe.config(H.fixture("linux-6.18"))
    for line, want in pairs({ ["track on off"] = "usage: track on|off",
                              ["gc 1"] = "usage: gc", ["lua x"] = "usage: lua",
                              ["proc 1 2"] = "usage: proc [PID]",
                              ["limit 1G 2G"] = "usage: limit <size: 512M, 2G ...>|off",
                              ["watch 1"] = "usage: watch", ["mem mem mem"] = "usage: mem",
                              ["drop 1 2"] = "usage: drop <1|2|3>",
                              ["sys x"] = "takes no words", ["free -m"] = "takes no words",
                              ["slab 3 sort"] = "sort KEY", ["slab sort"] = "sort KEY",
                              ["slab 0x10"] = "got '0x10'", ["slab 1e3"] = "got '1e3'",
                              ["vmalloc 1e3"] = "got '1e3'", ["proc 0x1"] = "got '0x1'",
                              ["proc 4194304"] = "from 1 to 4194303" }) do
      assert.matches(want, c:run(line), 1, true)
    end
    assert.is_nil(c:data("track on off"))
    assert.is_table(c:data("free -h"))  -- what the hand types: it is what sys shows
    assert.are.equal(3, #c:data("slab 3").caches)
    -- more than 16 words is too many, 'mem' included
    assert.matches("^usage: help", c:run("mem help" .. (" x"):rep(14)))
    assert.matches("too many words", c:run("mem help" .. (" x"):rep(15)), 1, true)
  end)

  it("data() says what failed, not 'not enough memory' for every failure", function()
    local text
    c.mp = setmetatable({ free = function() error("disk on fire") end }, { __index = memprobe })
    text = select(2, c:data("sys"))
    assert.are.equal("failed: disk on fire", text)
    -- called with a dot: one line all the same
    local d, msg = console.new().data(nil, "lua")
    assert.is_nil(d)
    assert.is_nil(msg:find("not enough memory", 1, true), msg)
    assert.matches("^failed: ", msg)
  end)

  it("quotes what was typed without control bytes or half a character", function()
    local text = c:run("\27]0;pwned\7")
    assert.is_nil(text:find("%c"), text)
    text = c:run(("\226\152\131"):rep(20))  -- 20 snowmen, 60 bytes
    assert.matches("^unknown command '[^']*': type 'help'$", text)
    local quoted = text:match("'([^']*)'")
    assert.are.equal(("\226\152\131"):rep(13), quoted)
    assert.matches("got '%?%?'", c:run("slab \1\2"))
  end)

  it("sums vmalloc by caller, module or kind as asked", function()
    memprobe.config(H.fixture("linux-6.18"))
    assert.matches("\nMODULE ", c:run("vmalloc 3 module"), 1, true)
    assert.matches("\nKIND ", c:run("vmalloc kind"), 1, true)
    assert.matches("\nCALLER ", c:run("vmalloc 3"), 1, true)
    assert.matches("got 'nope'", c:run("vmalloc nope"), 1, true)
  end)

  it("does not count the mark itself, nor what it loads, as growth", function()
    if jit then jit.off() jit.flush() end
    memprobe.config(H.fixture("linux-6.18"))  -- a large, unchanging slabinfo
    local fresh = console.new()
    local marked = fresh:run("mark")
    local d = fresh:data("diff")
    if jit then jit.on() end
    assert.matches("^marked: ", marked)
    assert.is_true(math.abs(d.lua) < 1024, "lua heap grew " .. d.lua)
    assert.are.same({}, d.slab.grew)
    assert.are.same({}, d.modules)
  end)

  it("counts a watch sample only once every source is read", function()
    memprobe.config(H.fixture("linux-6.18"))
    local w = memprobe.watch{ sources = { "meminfo", "slabinfo" } }
    w:sample(0)
    local real = memprobe.slabinfo
    memprobe.slabinfo = function() error("not enough memory") end  -- cut short
    local ok = pcall(w.sample, w, 60)
    memprobe.slabinfo = real
    assert.is_false(ok)
    assert.are.equal(1, w.n)
    assert.are.same({ 0 }, w.times)
    w:sample(120)
    local r = w:report()
    memprobe.config{}
    assert.are.equal(2, r.samples)
    -- the same fixture twice: nothing changed, no series fell to 0 and back
    assert.are.same({}, r.series)
    assert.has_error(function() memprobe.watch{ sources = { "lua", "lua" } } end,
      "bad argument #1 to 'watch' (source 'lua' given twice)")
    -- misuse raises, and leaves the watcher as it was
    H.assert_raises({
      { function() w:sample("x") end, "bad argument #1 to 'sample' (a finite number" },
      { function() w:sample(0 / 0) end, "bad argument #1 to 'sample' (a finite number" },
      { function() w:report(5) end, "bad argument #1 to 'report' (table expected" },
      { function() w:report{ top = "x" } end, "bad argument #1 to 'report' (top must be" },
      { function() w:report{ nope = 1 } end, "bad argument #1 to 'report' (unknown option" },
    })
    assert.are.equal(2, w:report().samples)
  end)

  it("times watch samples on the core's monotonic clock", function()
    assert.is_function(memprobe.clock)
    local w = memprobe.watch{ sources = { "lua" } }
    assert.are.equal(memprobe.clock, w.clock)
    local a = memprobe.clock()
    w:sample()
    w.sleep(0.3)
    w:sample()
    local r = w:report()
    assert.is_true(r.seconds >= 0.25 and r.seconds < 2, tostring(r.seconds))
    assert.is_true(memprobe.clock() - a >= r.seconds)
  end)

  it("sees the tracker the host installed", function()
    local had = memprobe.tracker()
    local t = had or memprobe.track()
    local text = c:run("lua")
    assert.matches("tracked live", text, 1, true)
    assert.matches("already on", c:run("track on"), 1, true)
    if not had then
      assert.matches("host installed", c:run("track off"), 1, true)
      t:untrack()
    end
  end)

  -- Each command against figures known independently (a fixture or a
  -- count made here); stubbing one to return "" fails it.
  it("mem and sys show the fixture's figures", function()
    memprobe.config(H.fixture("linux-6.18"))
    local m = H.parse_kv("spec/fixtures/linux-6.18/proc/meminfo")
    collectgarbage("collect")
    collectgarbage("stop")
    local before = collectgarbage("count") * 1024
    local d = c:data("mem")
    local after = collectgarbage("count") * 1024
    collectgarbage("restart")
    assert.is_true(d.gc >= math.floor(before) and d.gc <= after)
    assert.are.equal(m.MemTotal, d.total)
    assert.are.equal(m.MemAvailable, d.available)
    assert.are.equal(m.MemTotal - m.MemAvailable, d.used)
    assert.matches("of " .. format.size(m.MemTotal) .. " (" ..
      format.size(m.MemAvailable) .. " available)", c:run("mem"), 1, true)
    local text = c:run("sys")
    assert.matches("^%s+total%s+used%s+free%s+shared%s+buff/cache%s+available\nMem:%s+23Gi",
      text)
    assert.are.equal(text, c:run("free"))
  end)

  it("proc PID shows the fixture process's rss, peak, pss and uss", function()
    memprobe.config(H.fixture("linux-6.18"))
    local d = c:data("proc 4401")
    assert.are.same({ 4401, 1616 * 1024, 1616 * 1024, 3060 * 1024, 490 * 1024,
                      (96 + 112) * 1024 },
                    { d.pid, d.rss, d.peak_rss, d.virtual, d.pss, d.uss })
    local text = c:run("proc 4401")
    assert.matches("\nrss%s+1.6MiB\npeak rss%s+1.6MiB\nvirtual%s+3.0MiB\npss%s+490KiB\n" ..
      "uss%s+208KiB\n", text)
    assert.matches("PID must be", c:run("proc x"), 1, true)
  end)

  it("heap counts the tables made here", function()
    local before = c:data("heap").by_type.table.count
    local keep = {}
    for i = 1, 3000 do keep[i] = {} end
    local h = c:data("heap")
    assert.is_true(h.by_type.table.count - before >= 3001, h.by_type.table.count - before)
    h = nil  -- luacheck: ignore 311
    local shown = tonumber(c:run("heap"):match("\ntable%s+(%d+) "))
    assert.is_true(shown - before >= 3001, shown - before)
    assert.is_table(keep)
  end)

  it("modules ranks a module by the bytes it loaded", function()
    package.path = "spec/fixtures/heapmods/?.lua;" .. package.path
    memprobe.account_requires()
    require "hm_records"
    memprobe.account_requires(false)
    local load
    for _, r in ipairs(memprobe.requires()) do
      if r.name == "hm_records" then load = r.retained end
    end
    local row
    for _, r in ipairs(c:data("modules 50")) do if r.name == "hm_records" then row = r end end
    assert(row and load, "hm_records not found")
    assert.is_true(math.abs(row.exclusive - load) <= 0.1 * load, row.exclusive .. " vs " .. load)
    assert.matches("\nhm_records%s+" .. format.size(row.exclusive):gsub("%p", "%%%0"),
      c:run("modules 50"))
    package.loaded.hm_records = nil
  end)

  it("lua shows collectgarbage's count and the tracker's live bytes", function()
    collectgarbage("collect")
    local before = collectgarbage("count") * 1024
    local d = c:data("lua")
    assert.is_true(d.gc >= math.floor(before) and d.gc <= collectgarbage("count") * 1024)
    collectgarbage("collect")
    collectgarbage("stop")
    before = collectgarbage("count") * 1024
    local shown = c:run("lua"):match("^collectgarbage%s+(%S+)\n")
    local after = collectgarbage("count") * 1024
    collectgarbage("restart")
    assert.is_truthy(shown == format.size(math.floor(before)) or shown == format.size(after) or
      shown == format.size(math.floor((before + after) / 2)), shown)
  end)
end)

describe("options", function()
  it("are checked by one checker that names the function and the option", function()
    H.assert_raises({
      { function() memprobe.heap{ top = -1 } end,
        "bad argument #1 to 'heap' (top must be a positive integer)" },
      { function() memprobe.heap{ nope = 1 } end,
        "bad argument #1 to 'heap' (unknown option 'nope')" },
      { function() memprobe.modules{ nope = 1 } end, "to 'modules' (unknown option 'nope')" },
      { function() memprobe.snapshot{ nope = 1 } end, "to 'snapshot' (unknown option 'nope')" },
      { function() memprobe.path({}, { nope = 1 }) end, "#2 to 'path' (unknown option 'nope')" },
      { function() memprobe.report{ nope = 1 } end, "to 'report' (unknown option 'nope')" },
      { function() memprobe.report{ modules = 1 } end,
        "to 'report' (modules: boolean expected, got number)" },
      { function() export.collect{ nope = 1 } end, "to 'collect' (unknown option 'nope')" },
      { function() export.prometheus{ top = 0 } end,
        "to 'collect' (top must be a positive integer)" },
      { function() console.new{ allow_drop = true } end,
        "to 'new' (unknown option 'allow_drop')" },
      { function() memprobe.watch{ interval = 1 / 0 } end, "interval must be a finite number" },
      { function() memprobe.watch{ samples = 1 / 0 } end, "samples must be a positive integer" },
    })
  end)
end)

describe("require 'memprobe'", function()
  it("reaches the tools lazily: console, export, format, json", function()
    for _, name in ipairs({ "console", "export", "format", "json" }) do
      assert.are.equal(require("memprobe." .. name), memprobe[name], name)
    end
    assert.is_nil(memprobe.nosuch)
  end)
end)
