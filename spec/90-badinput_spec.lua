-- Misuse raises an error naming the function and the argument; malformed
-- /proc trees give a result or nil, msg, errno and never raise or crash.
-- The rows live in spec/api.lua: a public function without a row fails.
local memprobe = require "memprobe"
local H = require "spec.helper"
local api = require "spec.api"

local rows, unpack = api.rows, api.unpack
local load_ = loadstring or load

-- Calls memprobe.<name>(...) as a named field and not as a tail call, so
-- that every runtime can name the function in its error message.
local function caller(name)
  return load_(("local m = ...; return function(...) "
    .. "local a, b, c, d = m.%s(...); return a, b, c, d end"):format(name))(memprobe)
end

local function publics()
  local names = {}
  for k, v in pairs(memprobe) do
    if type(v) == "function" then names[#names + 1] = k end
  end
  table.sort(names)
  return names
end

local function describe_args(a)
  local out = {}
  for i = 1, a.n do
    local v = a[i]
    out[i] = type(v) == "string" and ("%q"):format(#v > 20 and v:sub(1, 20) .. "..." or v)
      or tostring(v)
  end
  return "(" .. table.concat(out, ", ") .. ")"
end

-- A copy of a fixture tree (linux-6.18 unless base says) with every file
-- passed through edit (nil content: the file is left out). Returns the
-- config{} roots.
local tmproot = os.tmpname()
os.remove(tmproot)
assert(os.execute("mkdir -p " .. tmproot))
local function tree(name, edit, base)
  base = "spec/fixtures/" .. (base or "linux-6.18")
  local dir = tmproot .. "/" .. name
  local files = assert(H.run("cd " .. base .. " && find proc sys -type f"))
  for rel in files:gmatch("[^\n]+") do
    local body = edit(H.slurp(base .. "/" .. rel), rel)
    if body then
      local path = dir .. "/" .. rel
      assert(os.execute("mkdir -p '" .. path:match("^(.*)/") .. "'"))
      local f = assert(io.open(path, "wb"))
      f:write(body)
      f:close()
    end
  end
  assert(os.execute("mkdir -p " .. dir .. "/proc " .. dir .. "/sys"))
  return { proc = dir .. "/proc", sys = dir .. "/sys" }
end

-- A deterministic byte soup (a small LCG), NULs and high bytes included.
local function garbage(n, seed)
  local b, x = {}, seed
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    b[i] = string.char(x % 256)
  end
  return table.concat(b)
end

local malformed = {
  empty = function() return "" end,
  truncated = function(s) return s:sub(1, math.floor(#s / 2) + 3) end,
  no_newline = function(s) return (s:gsub("\n", " ")) end,
  garbage = function(s) return garbage(#s + 17, #s) end,
  nul_bytes = function(s) return (s:gsub(" ", "\0")) end,
  long_line = function(s)
    return ("7"):rep(100 * 1024) .. ":" .. s:rep(2) .. ("x"):rep(100 * 1024)
  end,
  huge_numbers = function(s) return (s:gsub("%d+", "99999999999999999999999")) end,
  max_numbers = function(s) return (s:gsub("%d+", "9223372036854775807")) end,
  negative = function(s) return (s:gsub(" (%d)", " -%1")) end,
  missing = function() return nil end,
}

-- A result, or nil + string + number: never an error.
local function assert_result(name, tname, ok, r, msg, errno)
  assert(ok, ("%s on %s raised: %s"):format(name, tname, tostring(r)))
  if r == nil then
    assert(type(msg) == "string" and type(errno) == "number",
      ("%s on %s: nil without msg and errno"):format(name, tname))
  end
end

describe("memprobe public functions", function()
  it("each have a row in spec/api.lua", function()
    for _, name in ipairs(publics()) do
      assert(rows[name], ("memprobe.%s has no row in spec/api.lua"):format(name))
    end
    for name in pairs(rows) do
      assert(type(memprobe[name]) == "function", ("spec/api.lua: no memprobe.%s"):format(name))
    end
  end)

  for _, name in ipairs(publics()) do
    local row = rows[name] or { ok = {}, bad = {} }
    local call = caller(name)

    for _, case in ipairs(row.bad) do
      local argn, args = case[1], case[2]
      local title = ("%s%s raises a bad-argument error naming it"):format(name, describe_args(args))
      it(title, function()
        memprobe.config{}
        local ok, err = pcall(call, unpack(args, 1, args.n))
        assert.is_false(ok)
        local want = ("bad argument #%d to '[%%w_.]*%s'"):format(argn, name)
        assert(tostring(err):find(want), ("%s: %s"):format(want, tostring(err)))
      end)
    end

    if row.extra == "raises" then
      it(("%s raises on an argument after its last parameter"):format(name), function()
        local args = { n = row.arity + 1 }
        args[row.arity + 1] = "extra"
        local ok, err = pcall(call, unpack(args, 1, args.n))
        assert.is_false(ok)
        local want = ("bad argument #%d to '[%%w_.]*%s'"):format(row.arity + 1, name)
        assert(tostring(err):find(want), ("%s: %s"):format(want, tostring(err)))
      end)
    end

    if row.extra == "ignored" then
      for _, args in ipairs(row.ok) do
        it(("%s%s ignores an extra argument"):format(name, describe_args(args)), function()
          memprobe.config(H.fixture("linux-6.18"))
          local plain = { pcall(call, unpack(args, 1, args.n)) }
          local extra_args = { unpack(args, 1, args.n) }
          extra_args[row.arity + 1] = "extra"
          local extra = { pcall(call, unpack(extra_args, 1, row.arity + 1)) }
          memprobe.config{}
          if row.cleanup then row.cleanup(plain[2]); row.cleanup(extra[2]) end
          assert.is_true(plain[1])
          assert.is_true(extra[1])
          assert.are.same(api.shape(row, plain), api.shape(row, extra))
        end)
      end
    end
  end
end)

describe("memprobe on malformed /proc trees", function()
  after_each(function() memprobe.config{} end)
  teardown(function() os.execute("rm -rf '" .. tmproot .. "'") end)

  for _, base in ipairs({ "linux-6.18", "linux-3.10-nomemavail" }) do
  for tname, edit in pairs(malformed) do
    it(("returns a result or nil, msg, errno on %s files (%s)"):format(tname, base), function()
      local roots = tree(base .. "-" .. tname, edit, base)
      local called = 0
      for _, name in ipairs(publics()) do
        local row = rows[name]
        if row and row.proc then
          for _, args in ipairs(row.ok) do
            memprobe.config(roots)
            assert_result(name, tname, pcall(memprobe[name], unpack(args, 1, args.n)))
            called = called + 1
          end
        end
      end
      assert.is_true(called > 0)
    end)
  end
  end

  it("reads nothing when meminfo is missing and says which file", function()
    memprobe.config(tree("missing", malformed.missing))
    local r, msg, errno = memprobe.meminfo()
    assert.is_nil(r)
    assert.matches("meminfo: No such file", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("keeps the keys of a truncated meminfo that parse", function()
    memprobe.config(tree("trunc2", function(s, rel)
      return rel == "proc/meminfo" and "MemTotal:       24683620 kB\nMemFree:  1" or s
    end))
    local m = assert(memprobe.meminfo())
    assert.are.equal(24683620 * 1024, m.MemTotal)
    assert.are.equal(1, m.MemFree)
  end)

  it("returns nil, 'Permission denied', EACCES to an unprivileged user", function()
    if not H.run("command -v setpriv") then pending("setpriv not installed") return end
    local roots = tree("unreadable", function(s) return s end)
    -- Only the functions that can read this tree at all are checked.
    local readable = {}
    memprobe.config(roots)
    for _, name in ipairs(publics()) do
      local row = rows[name]
      if row and row.proc and not row.aggregate then  -- the readers only
        readable[name] = (pcall(memprobe[name])) and memprobe[name]() ~= nil
      end
    end
    memprobe.config{}
    assert.is_true(readable.meminfo)
    assert(os.execute("chmod -R go-rwx '" .. roots.proc .. "' '" .. roots.sys .. "'"
      .. " && find '" .. tmproot .. "/unreadable' -type d -exec chmod 755 {} +"))
    local names = {}
    for _, name in ipairs(publics()) do
      local row = rows[name]
      if row and row.proc and not row.aggregate and readable[name] then
        names[#names + 1] = name
      end
    end
    local out = H.nobody(function(path, cpath)
      return ("-e %q"):format(([[
      package.path = %q; package.cpath = %q
      local m = require "memprobe"
      m.config{ proc = %q, sys = %q }
      for name in (%q):gmatch("%%S+") do
        local ok, r, msg, errno = pcall(m[name])
        print(name, ok, r == nil, msg, errno)
      end]]):format(path, cpath, roots.proc, roots.sys,
        table.concat(names, " ")))
    end)
    for _, name in ipairs(names) do
      local line = out:match("\n?(" .. name .. "\t[^\n]*)")
      assert(line, name .. ": no output line in " .. out)
      local ok, isnil, msg, errno = line:match("^%S+\t(%S+)\t(%S+)\t([^\t]*)\t(%S+)")
      assert.are.equal("true", ok, line)
      assert.are.equal("true", isnil, line)
      assert.matches("Permission denied", msg, 1, true)
      assert.are.equal("13", errno, line)
    end
  end)
end)

describe("memprobe on a /proc file that changes between reads", function()
  after_each(function() memprobe.config{} end)

  it("sees each rewrite, longer or shorter, through the kept descriptor", function()
    local roots = tree("changing", function(s) return s end)
    local path = roots.proc .. "/meminfo"
    local function write(s)
      local f = assert(io.open(path, "wb"))
      f:write(s)
      f:close()
    end
    memprobe.config(roots)
    local t = {}
    assert.are.equal(24683620 * 1024, memprobe.meminfo(t).MemTotal)
    write("MemTotal: 7 kB\n")
    assert.are.same({ MemTotal = 7 * 1024 }, memprobe.meminfo())
    write(("Pad: 1\n"):rep(5000) .. "MemTotal: 8 kB\nMemFree: 1 kB\n")
    local m = memprobe.meminfo()
    assert.are.equal(8 * 1024, m.MemTotal)
    assert.are.equal(1024, m.MemFree)
    assert.are.equal(8 * 1024, memprobe.free().total)
    write("")
    assert.are.same({}, memprobe.meminfo())
    assert.is_nil(memprobe.free())
  end)

  it("never fails while another process rewrites the file", function()
    local roots = tree("racing", function(s) return s end)
    local path = roots.proc .. "/meminfo"
    local a, b = path .. ".a", path .. ".b"
    os.execute(("cp '%s' '%s' && printf 'MemTotal: 1 kB\\nMemFree: 1 kB\\n' > '%s'")
      :format(path, a, b))
    local p = io.popen(("sh -c 'while :; do cat %s > %s; cat %s > %s; done "
      .. ">/dev/null 2>&1 & echo $!'"):format(a, path, b, path))
    local pid = assert(tonumber(p:read("*l")))
    p:close()
    memprobe.config(roots)
    local ok, err = pcall(function()
      for _ = 1, 3000 do
        local m = memprobe.meminfo()
        assert(type(m) == "table")
        assert(m.MemTotal == nil or type(m.MemTotal) == "number")
        assert_result("free", "racing", pcall(memprobe.free))
      end
    end)
    os.execute("kill " .. pid)
    assert(ok, err)
  end)
end)

-- A config{} root is any directory: the readers must not block on a FIFO,
-- read a device forever, serve a replaced file from a kept fd, or keep a
-- huge buffer after one huge file.
describe("readers under a hostile config{} root", function()
  after_each(function() memprobe.config{} end)

  -- the reader calls each file of a tree feeds
  local calls = {
    { "meminfo", "meminfo" }, { "vmstat", "vmstat" }, { "free", "meminfo" },
    { "slabinfo", "slabinfo" }, { "vmallocinfo", "vmallocinfo" },
    { "zoneinfo", "zoneinfo" }, { "buddyinfo", "buddyinfo" }, { "swaps", "swaps" },
    { "process", "self/status" }, { "rss", "self/statm" },
    { "smaps", "self/smaps_rollup" }, { "shm", "sysvipc/shm" },
  }

  it("refuse a FIFO at once with 'not a regular file' instead of blocking", function()
    -- in a child under timeout: a reader that blocks in open() never returns
    local roots = tree("fifo", function(s) return s end)
    for _, c in ipairs(calls) do os.remove(roots.proc .. "/" .. c[2]) end
    for _, c in ipairs(calls) do
      os.execute("[ -p '" .. roots.proc .. "/" .. c[2] .. "' ] || mkfifo '" ..
                 roots.proc .. "/" .. c[2] .. "'")
    end
    local code = ("local m = require('memprobe') m.config{ proc = %q, sys = %q } "
      .. "for _, c in ipairs{ %s } do print(c, select(2, m[c]())) end")
      :format(roots.proc, roots.sys, ("%q, "):rep(#calls):format(
        (function() local t = {} for i, c in ipairs(calls) do t[i] = c[1] end
                    return (table.unpack or unpack)(t) end)()))
    local out = H.run("timeout 20 " .. H.lua_cmd("-e " .. ("%q"):format(code)))
    local want = {}
    for _, c in ipairs(calls) do
      want[#want + 1] = ("%s\t%s/%s: not a regular file\t0\n"):format(c[1], roots.proc, c[2])
    end
    assert.are.equal(table.concat(want), out)
  end)

  it("refuse a device, a directory and a symlink to a device", function()
    local roots = tree("devices", function(s) return s end)
    local m = roots.proc .. "/meminfo"
    for _, make in ipairs{ "ln -s /dev/zero %s", "ln -s /dev/urandom %s", "mkdir %s" } do
      os.remove(m)
      assert(os.execute(make:format(m)))
      memprobe.config(roots)
      local r, msg, errno = memprobe.meminfo()
      assert.is_nil(r, make)
      assert.are.equal(m .. ": not a regular file", msg, make)
      assert.are.equal(0, errno, make)
      os.execute("rm -rf '" .. m .. "'")
    end
  end)

  it("read a replaced, deleted or rewritten file afresh every time", function()
    local roots = tree("replaced", function(s) return s end)
    local m = roots.proc .. "/meminfo"
    local function put(text)
      local f = assert(io.open(m .. ".new", "wb"))
      f:write(text)
      f:close()
      assert(os.rename(m .. ".new", m))
    end
    memprobe.config(roots)
    put("MemTotal: 1 kB\n")
    assert.are.equal(1024, memprobe.meminfo().MemTotal)
    put("MemTotal: 2 kB\n")
    assert.are.equal(2048, memprobe.meminfo().MemTotal)
    os.remove(m)
    local r, msg, errno = memprobe.meminfo()
    assert.is_nil(r)
    assert.are.equal(m .. ": No such file or directory", msg)
    assert.are.equal(2, errno)
    assert(os.execute("mkdir '" .. m .. "'"))
    assert.are.equal(m .. ": not a regular file", select(2, memprobe.meminfo()))
    os.execute("rmdir '" .. m .. "'")
    put("MemTotal: 3 kB\n")
    assert.are.equal(3072, memprobe.meminfo().MemTotal)
  end)

  -- The cap was said to be 64 MiB and was 128; the buffer then stayed.
  it("read up to 64 MiB exactly, and give a large buffer back", function()
    local roots = tree("huge", function(s) return s end)
    local m = roots.proc .. "/meminfo"
    local cap = 64 * 1024 * 1024
    memprobe.config(roots)
    local function sized(n)
      assert(os.execute(("truncate -s 0 '%s' && truncate -s %d '%s'"):format(m, n, m)))
    end
    local function held()
      local mi = memprobe.mallinfo()
      return mi and mi.hblkhd + mi.uordblks
    end
    local before = held()
    sized(cap + 1)
    local r, msg, errno = memprobe.meminfo()
    assert.is_nil(r)
    assert.are.equal(m .. ": File too large", msg)
    assert.are.equal(27, errno)
    sized(cap)
    assert.are.same({}, memprobe.meminfo())
    local after = held()
    if before and not H.asan and not H.valgrind then
      assert.is_true(after - before < 16 * 1024 * 1024, (after - before) .. " bytes kept")
    end
    sized(0)
    assert(os.execute(("printf 'MemTotal: 5 kB\\n' > '%s'"):format(m)))
    assert.are.equal(5 * 1024, memprobe.meminfo().MemTotal)
  end)
end)

-- One rule for sizes: unsigned decimals (a signed one does not parse),
-- converted and summed through one helper that holds them to 2^53 bytes
-- (8 PiB, exact in a double) instead of overflowing.
describe("sizes out of range", function()
  local max = 2 ^ 53
  after_each(function() memprobe.config{} end)

  local function root(files)
    local dir = H.tmpdir(files)
    memprobe.config{ proc = dir .. "/proc", sys = dir .. "/sys" }
    return dir
  end

  it("refuse a negative size like a line that does not parse", function()
    local dir = root{ ["proc/meminfo"] = "MemTotal: -1000 kB\nMemFree: 5 kB\nBuffers: +3 kB\n" }
    local m = memprobe.meminfo()
    assert.is_nil(m.MemTotal)
    assert.is_nil(m.Buffers)
    assert.are.equal(5 * 1024, m.MemFree)
    local r, msg = memprobe.free()
    assert.is_nil(r)
    assert.are.equal(dir .. "/proc/meminfo: no MemTotal or MemFree line", msg)
    H.rmdir(dir)
  end)

  it("hold an overflowing MemTotal at 8 PiB and say free() cannot use it", function()
    local dir = root{ ["proc/meminfo"] =
      "MemTotal: 99999999999999999999 kB\nMemFree: 9007199254740993 kB\nCached: 5 kB\n" }
    local m = memprobe.meminfo()
    assert.are.equal(max, m.MemTotal)
    assert.are.equal(max, m.MemFree)
    assert.are.equal(5 * 1024, m.Cached)
    local r, msg, errno = memprobe.free()
    assert.is_nil(r)
    assert.are.equal(dir .. "/proc/meminfo: MemTotal or MemFree out of range (8 PiB or more)", msg)
    assert.are.equal(0, errno)
    H.rmdir(dir)
  end)

  it("saturate slabinfo products and totals instead of overflowing", function()
    local huge = "9223372036854775807"
    local line = ("big %s %s 4096 1 %s : tunables 0 0 0 : slabdata %s %s 0\n")
      :format(huge, huge, huge, huge, huge)
    local dir = root{ ["proc/slabinfo"] = "slabinfo - version: 2.1\n" .. line .. line }
    local r = assert(memprobe.slabinfo())
    local c = r.caches[1]
    assert.are.equal(max, c.active_size)
    assert.are.equal(max, c.size)
    assert.are.equal(100, c.use)
    assert.are.equal(max, r.totals.active_size)
    assert.are.equal(max, r.totals.total_size)
    assert.are.equal(max, r.totals.size)
    assert.are.equal(max, r.totals.active_objs)
    H.rmdir(dir)
  end)

  it("saturate the vmallocinfo sums instead of overflowing", function()
    local area = "0xffffb000-0xffffc000 9223372036854775807 f+0x1/0x2 " ..
                 "pages=9223372036854775807 vmalloc\n"
    local dir = root{ ["proc/vmallocinfo"] = area .. area }
    local r = assert(memprobe.vmallocinfo())
    assert.are.equal(2, r.totals.count)
    assert.are.equal(max, r.totals.virtual)
    assert.are.equal(max, r.totals.pages)
    assert.are.equal(max, r.totals.bytes)
    assert.are.equal(max, r.by_caller[1].virtual)
    H.rmdir(dir)
  end)
end)
