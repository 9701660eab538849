local memprobe = require "memprobe"
local console = require "memprobe.console"
local export = require "memprobe.export"
local format = require "memprobe.format"
local json = require "memprobe.json"
local H = require "spec.helper"

local decode = H.json_decode

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
end)

describe("memprobe.console", function()
  local c
  before_each(function() c = console.new() end)

  it("treats 'mem X' and 'X' as the same command", function()
    assert.are.equal(c:run("help"), c:run("mem help"))
    -- on a fixture tree: two live readings of meminfo differ
    memprobe.config(H.fixture("linux-6.18"))
    local plain = select(2, c:run("json sys"))
    local prefixed = select(2, c:run("mem json sys"))
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
    local _, data = c:run("sys")
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
    local _, data = c:run("gc")
    assert.is_number(data.freed)
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
    local text, s = c:run("mem slab 5")
    assert.are.equal(5, #s.caches)
    assert.matches("OBJS   ACTIVE  USE OBJ SIZE", text, 1, true)
    assert.matches(s.caches[1].name, text, 1, true)
    text = c:run("vmalloc 3")
    assert.matches("vmalloc", text, 1, true)
    c:run("mark")
    local keep = {}
    for i = 1, 2000 do keep[i] = { i } end
    local out, d = c:run("diff")
    assert.is_true(d.lua > 2000 * 16, out)
    assert.matches("^lua heap ", out)
    assert.is_table(keep)
    for _, l in ipairs({ "watch", "watch", "watch" }) do text = c:run(l) end
    assert.matches("3 samples", text, 1, true)
  end)

  it("caps the Lua heap with track and limit", function()
    local had = memprobe.tracker()
    assert.matches("needs the tracker", c:run("limit 512M"), 1, true)
    assert.matches("^tracking: live ", c:run("track on"))
    assert.matches("limit 512MiB", c:run("limit 512M"), 1, true)
    local _, data = c:run("lua")
    assert.are.equal(512 * 2^20, data.tracker.limit)
    assert.matches("limit off", c:run("limit off"), 1, true)
    if not had then c:run("track off") end
  end)

  it("parses sizes like 512M", function()
    assert.are.equal(512 * 2^20, console.parse_size("512M"))
    assert.are.equal(1536, console.parse_size("1.5k"))
    assert.are.equal(2^30, console.parse_size("1GiB"))
    assert.are.equal(100, console.parse_size("100"))
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
    assert.matches('memprobe_meminfo_pages{field="HugePages_Total"} 0', text, 1, true)
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

describe("memprobe.json", function()
  it("encodes plain tables through a packaged JSON library", function()
    local s = assert(json.encode({ a = 1, b = { 1, 2 } }))
    assert.are.same({ a = 1, b = { 1, 2 } }, decode(s))
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
