local H = require "spec.helper"
local memprobe = require "memprobe"

-- One profile of a planted leak, shared by the output specs.
local keep = {}
local function leak(n) for i = 1, n do keep[#keep + 1] = { i, i, i, i } end end
local function profiled()
  keep = {}
  local p = memprobe.profile{ rate = 4096 }
  leak(50000)
  p:stop()
  return p
end

local function have(cmd)
  return H.status("command -v " .. cmd) == 0
end

describe("profile:pprof()", function()
  local p, dir
  setup(function() p, dir = profiled(), H.tmpdir() end)
  teardown(function() H.rmdir(dir) end)

  it("writes a gzip member that gzip reads back", function()
    local path = dir .. "/heap.pb.gz"
    assert.is_true(p:pprof(path))
    local raw = H.run("gzip -dc '" .. path .. "' | wc -c")
    assert.is_true(tonumber(raw) > 100, raw)
    -- the string table holds the sample types and the site's file
    local text = H.run("gzip -dc '" .. path .. "' | tr -c '[:print:]' ' '")
    for _, s in ipairs{ "alloc_objects", "alloc_space", "inuse_objects", "inuse_space",
                        "31-profile_output_spec.lua", "leak" } do
      assert.is_truthy(text:find(s, 1, true), s)
    end
  end)

  it("is read by go tool pprof, which shows the same top site", function()
    if not have("go") then pending("go is not installed (Debian golang-go)") return end
    local path = dir .. "/heap.pb.gz"
    assert.is_true(p:pprof(path))
    local want = p:top(1, "live")[1]
    local out = H.run(("HOME=${HOME:-/tmp} go tool pprof -top -lines '%s'"):format(path))
    assert.is_truthy(out, "go tool pprof printed nothing")
    assert.is_truthy(out:find("Type: inuse_space", 1, true), out)
    local first = out:match("flat%%[^\n]*\n([^\n]+)")
    assert.is_truthy(first, out)
    assert.is_truthy(first:find(want.func .. " " .. want.site, 1, true), first)
    local alloc = H.run(("HOME=${HOME:-/tmp} go tool pprof -sample_index=alloc_space " ..
      "-top '%s'"):format(path))
    assert.is_truthy(alloc:find("Type: alloc_space", 1, true), alloc)
  end)

  it("returns nil, message, errno when the file cannot be written", function()
    local ok, msg, errno = p:pprof(dir .. "/no/such/dir/heap.pb.gz")
    assert.is_nil(ok)
    assert.is_truthy(msg:find("No such file or directory", 1, true), msg)
    assert.are.equal(2, errno)
  end)
end)

describe("profile:flamegraph()", function()
  local p, dir
  setup(function() p, dir = profiled(), H.tmpdir() end)
  teardown(function() H.rmdir(dir) end)

  it("writes a page whose DOM in headless Chromium names the site", function()
    if not have("chromium") then pending("chromium is not installed") return end
    local path = dir .. "/flame.html"
    assert.is_true(p:flamegraph(path, "alloc"))
    local site = p:top(1, "alloc")[1].site
    local dom = H.run(("timeout 120 chromium --headless --disable-gpu --no-sandbox " ..
      "--user-data-dir='%s/chrome' --dump-dom 'file://%s'"):format(dir, path))
    assert.is_truthy(dom, "chromium printed nothing")
    assert.is_truthy(dom:find("<svg", 1, true), dom)
    assert.is_truthy(dom:find("leak (" .. site .. ")", 1, true), dom)
  end)

  it("writes a bare SVG for a .svg path, names escaped", function()
    local path = dir .. "/flame.svg"
    assert.is_true(p:flamegraph(path))
    local svg = H.slurp(path)
    assert.is_truthy(svg:match("^<%?xml"), svg:sub(1, 40))
    assert.is_truthy(svg:find("leak (", 1, true))
    assert.is_nil(svg:find("<C>", 1, true))
  end)

  it("returns nil, message, errno when the file cannot be written", function()
    local ok, msg, errno = p:flamegraph(dir .. "/no/such/dir/f.html")
    assert.is_nil(ok)
    assert.is_string(msg)
    assert.are.equal(2, errno)
  end)
end)

describe("console 'prof'", function()
  it("starts, lists the top sites, stops and writes a flame graph", function()
    local c = require("memprobe.console").new()
    local dir = H.tmpdir()
    assert.are.equal("no profile: 'prof start' first", c:run("prof top"))
    assert.is_truthy(c:run("prof start 4K"):find("one sample per 4.0KiB", 1, true))
    keep = {}
    leak(50000)
    local top = c:run("prof top 3 alloc")
    assert.is_truthy(top:find("31-profile_output_spec.lua:6", 1, true), top)
    assert.is_truthy(c:run("prof stop"):match("^stopped after %d+ samples$"))
    assert.is_truthy(c:run("prof flame " .. dir .. "/f.html"):find("written", 1, true))
    assert.is_truthy(H.slurp(dir .. "/f.html"):find("<svg", 1, true))
    assert.is_truthy(c:run("prof start x"):find("^usage"))
    assert.is_truthy(c:run("prof"):find("^usage"))
    assert.is_truthy(c:run("prof top 0"):find("N must be a whole number", 1, true))
    H.rmdir(dir)
  end)
end)

describe("memprobe profile (CLI)", function()
  it("runs a script under the profiler and names its leaking line", function()
    local dir = H.tmpdir{ ["s.lua"] = "KEEP = {}\n" ..
      "local function leak(n) for i = 1, n do KEEP[#KEEP + 1] = { i, i, i } end end\n" ..
      "print('hi')\nleak(100000)\n" }
    local out = H.lua(("bin/memprobe profile --rate 8K --top 2 --out '%s/p.folded' '%s/s.lua'")
      :format(dir, dir))
    assert.is_truthy(out:find("s.lua:2%s+leak"), out)
    assert.is_truthy(out:find("^hi\n"), out)  -- the script's, on stderr, first
    assert.is_truthy(out:match("exit 0\n$"), out)
    local folded = H.slurp(dir .. "/p.folded")
    assert.is_truthy(folded:find(";leak (" .. dir .. "/s.lua:2) ", 1, true), folded)
    local bad = H.lua("bin/memprobe profile --rate x s.lua")
    assert.is_truthy(bad:match("exit 2\n$"), bad)
    H.rmdir(dir)
  end)
end)
