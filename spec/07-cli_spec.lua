local H = require "spec.helper"
local format = require "memprobe.format"

-- Runs bin/memprobe with this tree's modules; returns output and exit code.
local function cli(args)
  local body, code = H.lua("bin/memprobe " .. args):match("^(.-)exit (%d+)\n$")
  return body, tonumber(code)
end

local function fits(out)
  for line in out:gmatch("[^\n]+") do
    assert(#line <= 80, "wider than 80 columns: " .. line)
  end
end

describe("bin/memprobe", function()
  it("slab prints slabtop's header and the largest caches in 80 columns", function()
    if not H.is_root() then pending("needs root") return end
    local out, code = cli("slab --sort c --top 5")
    assert.are.equal(0, code)
    assert.matches("^ Active / Total Objects %(%% used%)    : %d+ / %d+", out)
    assert.matches("\n    OBJS   ACTIVE  USE OBJ SIZE  SLABS OBJ/SLAB CACHE SIZE NAME\n", out)
    local n = 0
    for _ in out:gmatch("\n%s+%d+%s+%d+%s+%d+%%") do n = n + 1 end
    assert.are.equal(5, n)
    fits(out)
    out, code = cli("slab --top 3 --json")
    assert.are.equal(0, code)
    local t = H.json_decode(out)
    assert.are.equal(3, #t.caches)
    assert.is_number(t.totals.num_caches)
    out, code = cli("slab --top 2 --watch 0.1 --count 2 --json")
    assert.are.equal(0, code)
    local lines = 0
    for _ in out:gmatch("[^\n]+") do lines = lines + 1 end
    assert.are.equal(2, lines)
  end)

  it("vmalloc sums by caller, module and kind", function()
    if not H.is_root() then pending("needs root") return end
    for _, by in ipairs({ "caller", "module", "kind" }) do
      local out, code = cli("vmalloc --top 5 --by " .. by)
      assert.are.equal(0, code)
      assert.matches("^vmalloc: %d+ areas", out)
      fits(out)
      out = cli("vmalloc --top 5 --json --by " .. by)
      local t = H.json_decode(out)
      assert.is_table(t["by_" .. by])
      assert.is_number(t.totals.vmalloc_bytes)
    end
  end)

  it("watch ranks growth as text or JSON", function()
    local out, code = cli("watch --interval 0.1 --samples 2 --sources meminfo --json")
    assert.are.equal(0, code)
    local t = H.json_decode(out)
    assert.are.equal(2, t.samples)
    assert.is_table(t.series)
    out, code = cli("watch --interval 0.1 --samples 3 --sources meminfo --top 5")
    assert.are.equal(0, code)
    assert.matches("3 samples over", out)
    fits(out)
  end)

  it("drop refuses bad levels with exit status 2 and reports failures with 1", function()
    local out, code = cli("drop 7")
    assert.are.equal(2, code)
    assert.matches("drop needs a level", out)
    if H.is_root() and H.run("command -v setpriv") then
      out = H.nobody("bin/memprobe drop 1")
      assert.matches("Permission denied (needs root (euid 0))", out, 1, true)
      assert.matches("exit 1\n$", out)
    end
  end)

  it("takes the console's shorthand: a bare count for --top, a bare sort key", function()
    if not H.is_root() then pending("needs root") return end
    local out, code = cli("slab 3 --json")
    assert.are.equal(0, code)
    assert.are.equal(3, #H.json_decode(out).caches)
    out, code = cli("slab 4 a --json")
    assert.are.equal(0, code)
    local c = H.json_decode(out).caches
    assert.are.equal(4, #c)
    for i = 2, #c do assert.is_true(c[i - 1].active_objs >= c[i].active_objs) end
    out, code = cli("vmalloc 2 --json")
    assert.are.equal(0, code)
    assert.is_true(#H.json_decode(out).by_caller <= 2)
    out, code = cli("slab --top 2 5")
    assert.are.equal(2, code)
    assert.matches("--top given twice", out, 1, true)
  end)

  it("rejects unknown options and values", function()
    for _, args in ipairs({ "slab --sort x", "slab --top", "vmalloc --by nope",
                            "watch --samples 1", "slab --bogus 1", "slab 2 x",
                            "vmalloc caller" }) do
      local _, code = cli(args)
      assert.are.equal(2, code, args)
    end
  end)

  it("free and report speak JSON too", function()
    local out, code = cli("free --json")
    assert.are.equal(0, code)
    assert.is_number(H.json_decode(out).total)
  end)

  it("report reconciles the levels, as text and as JSON", function()
    local out, code = cli("report")
    assert.are.equal(0, code)
    assert.matches("== kernel (free)", out, 1, true)
    assert.matches("used, not explained by the above", out, 1, true)
    fits(out)
    out, code = cli("report --json")
    assert.are.equal(0, code)
    local t = H.json_decode(out)
    local total = 0
    for line in H.slurp("/proc/meminfo"):gmatch("[^\n]+") do
      local kb = line:match("^MemTotal:%s+(%d+) kB")
      if kb then total = tonumber(kb) * 1024 end
    end
    assert.are.equal(total, t.kernel.total)
    local _, bad = cli("report --bogus")
    assert.are.equal(2, bad)
  end)

  it("prometheus prints text exposition", function()
    local out, code = cli("prometheus")
    assert.are.equal(0, code)
    assert.matches("# TYPE memprobe_meminfo_bytes gauge", out, 1, true)
  end)

  it("answers -h and --help with the usage, but -h means human sizes for free", function()
    local out, code = cli("-h")
    assert.are.equal(0, code)
    assert.matches("^usage: memprobe COMMAND", out)
    out, code = cli("slab --help")
    assert.are.equal(0, code)
    assert.matches("^usage: memprobe COMMAND", out)
    out, code = cli("free -h")
    assert.are.equal(0, code)
    assert.matches("^%s+total%s+used", out)
    assert.matches("Mem: +[%d.]+[KMGT]i ", out)
  end)

  it("exits 2 on an unknown command and on bad --watch values", function()
    local out, code = cli("frobnicate")
    assert.are.equal(2, code)
    assert.matches("^memprobe: unknown command 'frobnicate'\n\nusage: ", out)
    out, code = cli("free --watch -1")
    assert.are.equal(2, code)
    assert.matches("--watch needs a positive number", out, 1, true)
  end)

  it("repeats any command with --watch S --count N", function()
    local out, code = cli("free --watch 0.1 --count 3")
    assert.are.equal(0, code)
    local n = 0
    for _ in out:gmatch("\nMem:") do n = n + 1 end
    assert.are.equal(3, n)
  end)

  it("exits 1 with the reason when the data cannot be read", function()
    local out = H.lua("-e 'require(\"memprobe\").config{proc=\"/nonexistent\"} " ..
      "arg={[0]=\"memprobe\", \"free\"} dofile(\"bin/memprobe\")'")
    assert.matches("/nonexistent/meminfo: No such file", out, 1, true)
    assert.matches("exit 1\n$", out)
  end)
  it("modules SCRIPT runs the script and ranks the modules it left loaded", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write('package.path = "spec/fixtures/heapmods/?.lua;" .. package.path\n',
            'require "hm_records"\n')
    f:close()
    local out, code = cli("modules " .. script .. " --json")
    assert.are.equal(0, code, out)
    local t, by = H.json_decode(out), {}
    for _, r in ipairs(t.modules) do by[r.name] = r end
    assert.is_true(t.total > 0 and t.gc_bytes > 0)
    local rec = assert(by.hm_records, out)
    -- the module's load cost, measured independently by requires(), agrees
    assert.is_true(math.abs(rec.exclusive - rec.load) <= 0.1 * rec.load,
      ("exclusive %d, load %d"):format(rec.exclusive, rec.load))
    out, code = cli("modules " .. script)
    os.remove(script)
    assert.are.equal(0, code)
    assert.matches("\nhm_records +%d", out)
    fits(out)
    local _, bad = cli("modules")
    assert.are.equal(2, bad)
  end)
end)

-- bin/memprobe reading the 6.18 fixture tree instead of this machine.
local function cli618(args)
  local body, code = H.lua("-e 'require(\"memprobe\").config(" ..
    "require(\"spec.helper\").fixture(\"linux-6.18\"))' bin/memprobe " .. args)
    :match("^(.-)exit (%d+)\n$")
  return body, tonumber(code)
end

describe("bin/memprobe, as an operator uses it", function()
  local m = H.parse_kv("spec/fixtures/linux-6.18/proc/meminfo")
  local KiB = 1024

  it("says its version with --version", function()
    local out, code = cli("--version")
    assert.are.equal(0, code)
    assert.are.equal("memprobe " .. require("memprobe")._VERSION .. " (" ..
      (jit and jit.version or _VERSION) .. ")\n", out)
  end)

  it("free prints KiB as procps does, and takes -b -k -m -g -h --si -w", function()
    local used = m.MemTotal - m.MemAvailable
    local bc = m.Buffers + m.Cached + m.SReclaimable
    local function mem(out)
      return { out:match("\nMem:%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)%s+(%S+)") }
    end
    local function row(div)
      local t = {}
      for i, v in ipairs({ m.MemTotal, used, m.MemFree, m.Shmem, bc, m.MemAvailable }) do
        t[i] = ("%d"):format(math.floor(v / div))
      end
      return t
    end
    for flags, div in pairs({ [""] = KiB, ["-k"] = KiB, ["-b"] = 1, ["-m"] = KiB ^ 2,
                              ["-g"] = KiB ^ 3, ["--si -m"] = 1e6 }) do
      local out, code = cli618("free " .. flags)
      assert.are.equal(0, code, flags)
      assert.are.same(row(div), mem(out), flags)
    end
    -- procps free -h on this meminfo (bind-mounted over /proc/meminfo)
    local out = cli618("free -h")
    assert.are.same({ "23Gi", "336Mi", "22Gi", "8.7Mi", "886Mi", "23Gi" }, mem(out))
    out = cli618("free -h --si")
    assert.are.same({ "25G", "353M", "24G", "9.2M", "930M", "24G" }, mem(out))
    for flags, div in pairs({ ["--kilo"] = 1e3, ["--mega"] = 1e6, ["--giga"] = 1e9,
                              ["--tebi"] = KiB ^ 4, ["--pebi"] = KiB ^ 5 }) do
      local text, code = cli618("free " .. flags)
      assert.are.equal(0, code, flags)
      assert.are.same(row(div), mem(text), flags)
    end
    -- grouped short flags and the Total line, as procps takes them
    out = cli618("free -hwt")
    assert.matches("^%s+total%s+used%s+free%s+shared%s+buffers%s+cache%s+available\n", out)
    assert.matches("\nTotal:%s+23Gi%s+336Mi%s+22Gi\n$", out)
    out = cli618("free -mt")
    assert.matches(("\nTotal:%%s+%d%%s+%d%%s+%d\n$"):format(math.floor(m.MemTotal / KiB ^ 2),
      math.floor(used / KiB ^ 2), math.floor(m.MemFree / KiB ^ 2)), out)
    out = cli618("free -w")
    assert.matches("^%s+total%s+used%s+free%s+shared%s+buffers%s+cache%s+available\n", out)
    for _, bad in ipairs({ "free -m -g", "free --bogus", "free 3", "free -x", "free -hx",
                           "free -s 1", "free --mega -g" }) do
      local text, code = cli618(bad)
      assert.are.equal(2, code, bad)
      assert.matches("^memprobe: [^\n]+\n$", text)
    end
  end)

  it("free -h rounds and truncates as procps does", function()
    -- MemTotal in kB, then procps 4.0.2's free -h and free -h --si
    for _, case in ipairs({ { 0, "0B", "0B" }, { 1, "1.0Ki", "1.0K" }, { 9, "9.0Ki", "9.2K" },
                            { 10, "10Ki", "10K" }, { 999, "999Ki", "1.0M" },
                            { 1000, "1.0Mi", "1.0M" }, { 1023, "1.0Mi", "1.0M" },
                            { 10199, "9Mi", "10M" }, { 24683620, "23Gi", "25G" } }) do
      local f = { total = case[1] * KiB }
      assert.are.equal(case[2], format.free(f, true):match("\nMem:%s+(%S+)"), case[1])
      assert.are.equal(case[3], format.free(f, { unit = "h", si = true })
        :match("\nMem:%s+(%S+)"), case[1])
    end
  end)

  it("free agrees with procps free on the same meminfo, for every flag (root)", function()
    if not H.is_root() or not H.run("command -v unshare") then
      pending("needs root and unshare") return
    end
    local file = "spec/fixtures/linux-6.18/proc/meminfo"
    for _, flags in ipairs({ "", "-b", "-k", "-m", "-g", "-h", "--si", "-h --si", "-w",
                             "-h -w", "-t", "-ht", "--mega", "--giga", "--kilo -w" }) do
      local theirs = H.run(("unshare -m sh -c 'mount --bind %s /proc/meminfo && free %s'")
        :format(file, flags))
      if not theirs then pending("cannot bind-mount over /proc/meminfo here") return end
      local ours = cli618("free " .. flags)
      for _, name in ipairs({ "Mem:", "Swap:", "Total:" }) do
        local function fields(s)
          local rest = s:match("\n" .. name .. "([^\n]*)")
          return rest and (rest:gsub("%s+", " "))
        end
        assert.are.equal(fields(theirs), fields(ours), "free " .. flags .. " " .. name)
      end
    end
  end)

  it("refuses bad values in one line with exit 2, never a traceback", function()
    for _, args in ipairs({ "slab --top 2.5", "slab --top x", "watch --interval 1e999",
                            "watch --samples 1e999", "vmalloc --top -1", "proc x",
                            "top --sort bogus", "report --pid 0", "prometheus --pid x",
                            "free --watch 1e999", "cgroup extra", "proc 1 2",
                            "modules --timeout 1e999 x.lua",
                            -- past the readers' own limits, in another base
                            "slab --top 2147483647", "slab --top 0x10", "proc 1e3",
                            "proc 4194304", "drop 1e0", "drop 0x1",
                            -- what would describe memprobe itself
                            "watch --sources lua", "watch --sources meminfo,process",
                            -- options that would do nothing
                            "free --count 2", "--version extra",
                            "modules --bogus x.lua", "modules --lua a --lua b x.lua" }) do
      local out, code = cli(args)
      assert.are.equal(2, code, args)
      assert.matches("^memprobe: [^\n]+\n$", out)
      assert.is_nil(out:find("bad argument", 1, true), out)
    end
  end)

  it("vmalloc --json shows by_kind as an object, empty or not", function()
    local dir = H.tmpdir{ ["proc/vmallocinfo"] = "" }
    local out, code = H.lua("-e 'require(\"memprobe\").config{proc=\"" .. dir .. "/proc\"}' " ..
      "bin/memprobe vmalloc --json"):match("^(.-)exit (%d+)\n$")
    H.rmdir(dir)
    assert.are.equal("0", code, out)
    assert.matches('"by_kind":{}', out, 1, true)
    assert.matches('"by_caller":[]', out, 1, true)
    out = cli618("vmalloc --json --by kind")
    assert.matches('"by_kind":{"', out, 1, true)
    local c = require("memprobe.console").new()
    dir = H.tmpdir{ ["proc/vmallocinfo"] = "" }
    require("memprobe").config{ proc = dir .. "/proc" }
    out = c:run("json vmalloc")
    require("memprobe").config{}
    H.rmdir(dir)
    assert.matches('"by_kind":{}', out, 1, true)
  end)

  it("prometheus --pid of a process that is gone exits 1", function()
    local out, code = cli618("prometheus --pid 4402")
    assert.are.equal(1, code)
    assert.matches("^memprobe: [^\n]*4402[^\n]*\n$", out)
  end)

  it("takes --name=value as --name value", function()
    for long, short in pairs({ ["slab --sort=a --top=3 --json"] = "slab --sort a --top 3 --json",
                               ["top --sort=pss --json"] = "top --sort pss --json",
                               ["proc --pid=4401 --json"] = "proc --pid 4401 --json" }) do
      local a, code = cli618(long)
      assert.are.equal(0, code, long .. ": " .. a)
      assert.are.same(H.json_decode(cli618(short)), H.json_decode(a), long)
    end
    local out, code = cli618("free --watch=0.1 --count=2")
    assert.are.equal(0, code, out)
    local n = 0
    for _ in out:gmatch("\nMem:") do n = n + 1 end
    assert.are.equal(2, n)
    for _, bad in ipairs({ "slab --top=", "report --pid=x", "modules --lua= x.lua",
                           "modules --timeout=0 x.lua" }) do
      local text
      text, code = cli618(bad)
      assert.are.equal(2, code, bad .. ": " .. text)
    end
  end)

  it("orders slab caches as slabtop -o -s KEY does, for every key (root)", function()
    if not H.is_root() or not H.run("command -v slabtop") then
      pending("needs root and slabtop") return
    end
    local field = { a = "active_objs", b = "objperslab", c = "size", l = "num_slabs",
                    v = "active_slabs", n = "name", o = "num_objs", p = "pagesperslab",
                    s = "objsize", u = "use" }
    local memprobe = require "memprobe"
    local function values(key)
      local t = {}
      for _, c in ipairs(assert(memprobe.slabinfo{ sort = key }).caches) do t[c.name] = c end
      return t
    end
    for key, f in pairs(field) do
      -- read before and after slabtop: a cache whose figure moved between
      -- the reads (forks make anon_vma, vm_area_struct ...) proves nothing
      local before = values(key)
      local theirs = {}
      for line in H.run("slabtop -o -s " .. key):gmatch("[^\n]+") do
        local name = line:match("^%s*%d+%s+%d+%s+%d+%%%s+%S+%s+%d+%s+%d+%s+%d+K%s+(%S+)%s*$")
        if name then theirs[#theirs + 1] = name end
      end
      local by = values(key)
      local out, code = cli("slab --json --top 1000000 -s " .. key)
      assert.are.equal(0, code)
      local ours = H.json_decode(out).caches
      assert.is_true(math.abs(#theirs - #ours) <= 2, key .. ": " .. #theirs .. " vs " .. #ours)
      local function steady(name)
        return by[name] and before[name] and by[name][f] == before[name][f]
      end
      -- slabtop's order is ours up to ties, for the caches that held still
      local inversions = 0
      for i = 2, #theirs do
        local a, b = by[theirs[i - 1]], by[theirs[i]]
        if steady(theirs[i - 1]) and steady(theirs[i]) then
          if key == "n" then
            if a.name > b.name then inversions = inversions + 1 end
          elseif a[f] < b[f] then
            inversions = inversions + 1
          end
        end
      end
      assert.is_true(inversions <= 2, key .. ": " .. inversions .. " inversions")
      -- and ours is in that order, exactly
      for i = 2, #ours do
        local a, b = ours[i - 1], ours[i]
        if key == "n" then assert.is_true(a.name <= b.name, key)
        else assert.is_true(a[f] >= b[f], key .. ": " .. a.name .. " before " .. b.name) end
      end
    end
  end)

  it("takes slabtop's -s c", function()
    local out, code = cli618("slab -s c --top 3 --json")
    assert.are.equal(0, code, out)
    local caches = H.json_decode(out).caches
    assert.are.equal(3, #caches)
    for i = 2, 3 do assert.is_true(caches[i - 1].size >= caches[i].size) end
  end)

  it("proc needs a PID, and shows the fixture process's figures", function()
    local out, code = cli("proc")
    assert.are.equal(2, code)
    assert.matches("proc needs a PID", out, 1, true)
    for _, args in ipairs({ "proc 4401 --json", "proc --pid 4401 --json" }) do
      out, code = cli618(args)
      assert.are.equal(0, code, out)
      local t = H.json_decode(out)
      assert.are.same({ 4401, "cat", 1616 * KiB, 1616 * KiB, 490 * KiB, 208 * KiB, 112 * KiB },
                      { t.pid, t.name, t.rss, t.peak_rss, t.pss, t.uss, t.anon })
    end
  end)

  it("report describes the machine, and a process with --pid", function()
    local out, code = cli618("report")
    assert.are.equal(0, code)
    assert.matches("== process\n  (give --pid PID for a process's levels)", out, 1, true)
    assert.is_nil(out:find("\n  rss "), out)
    out, code = cli618("report --pid 4401")
    assert.are.equal(0, code, out)
    assert.matches("== process 4401\n  rss%s+1.6MiB\n  pss%s+490KiB\n  uss%s+208KiB", out)
    out = cli618("report --pid 4401 --json")
    local t = H.json_decode(out)
    assert.are.equal(1616 * KiB, t.process.rss)
    assert.are.equal(m.MemTotal, t.kernel.total)
  end)

  it("top ranks processes by rss, pss, uss or swap", function()
    local out, code = cli618("top --json")
    assert.are.equal(0, code, out)
    local rows = H.json_decode(out)
    assert.are.equal(1, #rows)
    assert.are.same({ 4401, "cat", 1616 * KiB, 490 * KiB, 208 * KiB },
                    { rows[1].pid, rows[1].name, rows[1].rss, rows[1].pss, rows[1].uss })
    out = cli618("top --sort pss")
    assert.matches("^PID%s+NAME%s+RSS%s+PSS%s+USS%s+SWAP\n4401%s+cat%s+1.6MiB%s+490KiB", out)
    assert.is_nil(out:find("not readable", 1, true))
    -- a process whose smaps_rollup cannot be read: '-', and why
    local dir = H.tmpdir{
      ["proc/meminfo"] = H.slurp("spec/fixtures/linux-6.18/proc/meminfo"),
      ["proc/4401/status"] = H.slurp("spec/fixtures/linux-6.18/proc/4401/status"),
      ["proc/4401/statm"] = H.slurp("spec/fixtures/linux-6.18/proc/4401/statm") }
    out = H.lua("-e 'require(\"memprobe\").config{proc=\"" .. dir .. "/proc\"}' " ..
      "bin/memprobe top")
    H.rmdir(dir)
    assert.matches("\n4401%s+cat%s+1.6MiB%s+%-%s+%-", out)
    assert.matches("\n%-: smaps_rollup not readable", out)
    -- on this machine: sorted, and this very process among them
    out, code = cli("top --sort rss --top 500 --json")
    assert.are.equal(0, code)
    rows = H.json_decode(out)
    for i = 2, #rows do assert.is_true(rows[i - 1].rss >= rows[i].rss) end
    assert.is_true(#rows >= 2)
  end)

  it("prometheus carries process series only for --pid, and no Lua series of its own", function()
    local out, code = cli618("prometheus")
    assert.are.equal(0, code)
    assert.is_nil(out:find("memprobe_process_", 1, true))
    assert.is_nil(out:find("memprobe_lua_heap_bytes", 1, true))
    out = cli618("prometheus --pid 4401")
    assert.matches("\nmemprobe_process_rss_bytes " .. 1616 * KiB .. "\n", out, 1, true)
    assert.matches("\nmemprobe_process_pss_bytes " .. 490 * KiB .. "\n", out, 1, true)
    assert.matches("\nmemprobe_process_uss_bytes " .. 208 * KiB .. "\n", out, 1, true)
    assert.is_nil(out:find("memprobe_lua_heap_bytes", 1, true))
  end)

  it("modules SCRIPT stops a script that runs too long, and keeps its output off stdout", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write('print("the script talks")\nif ... == "loop" then while true do end end\n')
    f:close()
    local p = io.popen(H.lua_cmd("bin/memprobe modules " .. script .. " --json 2>/dev/null"))
    local stdout = p:read("*a")
    p:close()
    assert.is_nil(stdout:find("the script talks", 1, true))
    assert.is_table(H.json_decode(stdout).modules)
    local t0 = os.time()
    local out, code = cli("modules --timeout 1 " .. script .. " loop")
    os.remove(script)
    assert.are.equal(1, code)
    assert.matches("did not finish within 1s", out, 1, true)
    assert.is_true(os.time() - t0 < 10)
  end)

  it("modules --lua runs the script under the interpreter chosen", function()
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write('io.stderr:write("running ", _VERSION, "\\n")\n')
    f:close()
    local root = H.run("pwd"):match("[^\n]+")
    local other = jit and "5.1" or (_VERSION == "Lua 5.4" and "5.3" or "5.4")
    local interp = "env LUA_CPATH=" .. root .. "/build/" .. other .. "/?.so lua" .. other
    local out, code = cli("modules --lua \"" .. interp .. "\" " .. script)
    assert.are.equal(0, code, out)
    assert.matches("running Lua " .. other, out, 1, true)
    -- MEMPROBE_LUA chooses it when --lua is not given
    out = H.lua("bin/memprobe modules " .. script, "env MEMPROBE_LUA='" .. interp .. "'")
    assert.matches("running Lua " .. other, out, 1, true)
    assert.matches("exit 0\n$", out)
    out, code = cli("modules --lua /nonexistent/lua " .. script)
    assert.are.equal(1, code)
    assert.matches("cannot run /nonexistent/lua", out, 1, true)
    -- '--' ends memprobe's options; what follows SCRIPT is the script's
    out, code = cli("modules -- " .. script .. " --lua x")
    assert.are.equal(0, code, out)
    out, code = cli("modules --help")
    assert.are.equal(0, code)
    assert.matches("^usage: memprobe COMMAND", out)
    f = assert(io.open(script, "w"))
    f:write("os.exit(3)\n")
    f:close()
    out, code = cli("modules " .. script)
    os.remove(script)
    assert.are.equal(1, code)
    assert.matches("(exit 3): did " .. script .. " call os.exit", out, 1, true)
  end)

  it("watch exits 1 when no source could be read", function()
    local out, code = H.lua("-e 'require(\"memprobe\").config{proc=\"/nonexistent\"}' " ..
      "bin/memprobe watch --samples 2 --interval 0 --sources meminfo"):match("^(.-)exit (%d+)\n$")
    code = tonumber(code)
    assert.are.equal(1, code)
    assert.matches("/nonexistent/meminfo", out, 1, true)
  end)
end)

describe("memprobe.pids()", function()
  local memprobe = require "memprobe"
  after_each(function() memprobe.config{} end)

  it("lists the pids of the proc root", function()
    memprobe.config(H.fixture("linux-6.18"))
    assert.are.same({ 4401 }, memprobe.pids())
    memprobe.config{}
    -- ls before and after: a pid in both lived throughout, so it must be
    -- listed; the listing holds nothing that neither saw (but a few that
    -- came and went between them)
    local function ls()
      local set = {}
      for name in H.run("ls /proc"):gmatch("%S+") do
        if name:match("^[1-9]%d*$") then set[tonumber(name)] = true end
      end
      return set
    end
    local before = ls()
    local live, seen = memprobe.pids(), {}
    local after = ls()
    for _, pid in ipairs(live) do seen[pid] = true end
    assert.is_true(seen[1])
    local own = tonumber(H.slurp("/proc/self/stat"):match("^(%d+)"))
    assert.is_true(seen[own])
    local stable, missing, unseen = 0, {}, 0
    for pid in pairs(before) do
      if after[pid] then
        stable = stable + 1
        if not seen[pid] then missing[#missing + 1] = pid end
      end
    end
    for _, pid in ipairs(live) do
      if not before[pid] and not after[pid] then unseen = unseen + 1 end
    end
    assert.is_true(stable > 10, "stable pids: " .. stable)
    assert.are.same({}, missing)
    assert.is_true(unseen <= 5, unseen .. " pids neither ls saw")
    memprobe.config{ proc = "/nonexistent" }
    local r, msg, errno = memprobe.pids()
    assert.is_nil(r)
    assert.matches("/nonexistent", msg, 1, true)
    assert.are.equal(2, errno)
  end)
end)
