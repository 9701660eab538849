local H = require "spec.helper"

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
      out = H.lua("bin/memprobe drop 1", "setpriv --reuid=65534 --regid=65534 --clear-groups")
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
    assert.matches("== Lua heap", out, 1, true)
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
    assert.is_number(t.lua.gc)
    local _, bad = cli("report --bogus")
    assert.are.equal(2, bad)
  end)

  it("prometheus prints text exposition", function()
    local out, code = cli("prometheus")
    assert.are.equal(0, code)
    assert.matches("# TYPE memprobe_meminfo_bytes gauge", out, 1, true)
    assert.matches("\nmemprobe_lua_heap_bytes %d+", out)
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
