local memprobe = require "memprobe"
local H = require "spec.helper"

local KiB = 1024
local pagesize = memprobe.pagesize()
local F618 = "spec/fixtures/linux-6.18/proc/"

-- The pid of this interpreter, read without memprobe.
local function mypid()
  return tonumber(assert(H.slurp("/proc/self/stat")):match("^(%d+)"))
end

-- A `sleep` running in the background, with its pid; kill it after.
local function spawn_sleep()
  local p = io.popen("sleep 30 >/dev/null 2>&1 & echo $!")
  local pid = tonumber(p:read("*l"))
  p:close()
  -- until the forked shell has become sleep, its figures are the shell's
  for _ = 1, 100 do
    if H.slurp("/proc/" .. pid .. "/comm") == "sleep\n" then break end
    os.execute("sleep 0.01")
  end
  -- and until the dynamic loader is done with it
  local last
  for _ = 1, 100 do
    local now = H.slurp("/proc/" .. pid .. "/statm")
    if now == last then break end
    last = now
    os.execute("sleep 0.02")
  end
  return pid
end

-- `ps -o <fields>= -p pid` as numbers (KiB for rss and vsz).
local function ps(pid, fields)
  local out = H.run("ps -o " .. fields .. " -p " .. pid)
  if not out then return nil end
  local t = {}
  for n in out:gmatch("%d+") do t[#t + 1] = tonumber(n) end
  return t
end

local function near(a, b, slack, what)
  assert(math.abs(a - b) <= slack,
    ("%s: %d and %d differ by more than %d"):format(what, a, b, slack))
end

-- The 6.18 fixture's status (of a `cat`), read by eye.
local status_618 = {
  Name = "cat", State = "R (running)", Umask = "0022",
  Tgid = 4401, Ngid = 0, Pid = 4401, PPid = 4392, TracerPid = 0,
  FDSize = 256, Kthread = 0,
  VmPeak = 3060 * KiB, VmSize = 3060 * KiB, VmLck = 0, VmPin = 0,
  VmHWM = 1616 * KiB, VmRSS = 1616 * KiB, RssAnon = 112 * KiB,
  RssFile = 1504 * KiB, RssShmem = 0, VmData = 360 * KiB, VmStk = 132 * KiB,
  VmExe = 20 * KiB, VmLib = 1528 * KiB, VmPTE = 48 * KiB, VmSwap = 0,
  HugetlbPages = 0, CoreDumping = 0, THP_enabled = 1, Threads = 1,
  NoNewPrivs = 0, Seccomp = 0, Seccomp_filters = 0,
  voluntary_ctxt_switches = 0, nonvoluntary_ctxt_switches = 1,
  statm = { size = 765 * pagesize, resident = 437 * pagesize,
            shared = 408 * pagesize, text = 5 * pagesize,
            data = 123 * pagesize },
}

local rollup_618 = {
  rss = 1768 * KiB, pss = 490 * KiB, pss_dirty = 112 * KiB,
  pss_anon = 112 * KiB, pss_file = 378 * KiB, pss_shmem = 0,
  shared_clean = 1560 * KiB, shared_dirty = 0, private_clean = 96 * KiB,
  private_dirty = 112 * KiB, referenced = 1768 * KiB, anonymous = 112 * KiB,
  ksm = 0, lazy_free = 0, anon_huge_pages = 0, shmem_pmd_mapped = 0,
  file_pmd_mapped = 0, shared_hugetlb = 0, private_hugetlb = 0, swap = 0,
  swap_pss = 0, locked = 0,
  uss = (96 + 112) * KiB, source = "smaps_rollup",
}

-- Files no kernel writes; every reader must give a result or nil, msg.
local bad_contents = {
  empty = "",
  truncated = "Name:\tlua\nVmRSS:\t  12",
  garbage = "\0\1\2\255\254:::: kB kB\n\n:\n-:-1\n99999999999999999999999 kB\n",
  long_line = ("x"):rep(10240) .. ": 5 kB\nVmRSS: " .. ("9"):rep(10240) .. "\n",
  negative = "VmRSS: -5 kB\n",
}

describe("memprobe.rss()", function()
  after_each(function() memprobe.config{} end)

  it("is statm's resident pages times the page size on the 6.18 fixture", function()
    memprobe.config(H.fixture("linux-6.18"))
    assert.are.equal(437 * pagesize, memprobe.rss())
  end)

  it("agrees with VmRSS of /proc/self/status read in Lua", function()
    local want = H.parse_kv("/proc/self/status").VmRSS
    near(memprobe.rss(), want, 1024 * KiB, "rss vs VmRSS")
  end)

  it("agrees with ps -o rss= for this interpreter", function()
    local t = ps(mypid(), "rss=")
    if not t then pending("procps ps not installed") return end
    near(memprobe.rss(), t[1] * KiB, 2048 * KiB, "rss vs ps")
  end)

  it("raises when given an argument", function()
    local ok, err = pcall(function() local r = memprobe.rss({}) return r end)
    assert.is_false(ok)
    assert.matches("#1 to '[%w.]*rss' %(no arguments expected%)", err)
  end)

  it("allocates nothing in the Lua heap once warm", function()
    assert.are.equal(0, H.heap_growth(memprobe.rss))
  end)

  it("returns nil, a message naming the file, and errno when statm is missing", function()
    memprobe.config{ proc = "/nonexistent" }
    local r, msg, errno = memprobe.rss()
    assert.is_nil(r)
    assert.matches("/nonexistent/self/statm: No such file", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("returns a number or nil and a message for files no kernel writes", function()
    for what, content in pairs(bad_contents) do
      local dir = H.tmpdir{ ["proc/self/statm"] = content }
      memprobe.config{ proc = dir .. "/proc" }
      local ok, r, msg = pcall(memprobe.rss)
      H.rmdir(dir)
      assert.is_true(ok, what)
      assert(type(r) == "number" or (r == nil and type(msg) == "string"), what)
    end
    local dir = H.tmpdir{ ["proc/self/statm"] = "12" }
    memprobe.config{ proc = dir .. "/proc" }
    local r, msg = memprobe.rss()
    H.rmdir(dir)
    assert.is_nil(r)
    assert.matches("self/statm: unexpected content", msg, 1, true)
  end)
end)

describe("memprobe.process()", function()
  after_each(function() memprobe.config{} end)

  it("returns every field of the 6.18 status and statm fixture", function()
    memprobe.config(H.fixture("linux-6.18"))
    assert.are.same(status_618, assert(memprobe.process()))
  end)

  it("agrees with an independent parse of the fixture's kB lines", function()
    memprobe.config(H.fixture("linux-6.18"))
    local p = assert(memprobe.process())
    local n = 0
    for line in H.slurp(F618 .. "self/status"):gmatch("[^\n]+") do
      local k, v = line:match("^([^:]+):%s*(%d+) kB$")
      if k then
        assert.are.equal(tonumber(v) * KiB, p[k], k)
        n = n + 1
      end
    end
    assert.are.equal(16, n)
  end)

  it("reads another pid's files", function()
    memprobe.config(H.fixture("linux-6.18"))
    assert.are.same(status_618, assert(memprobe.process(4401)))
  end)

  it("returns nil, 'no such process' and ENOENT for a pid that does not exist", function()
    memprobe.config(H.fixture("linux-6.18"))
    local r, msg, errno = memprobe.process(4402)
    assert.is_nil(r)
    assert.matches("linux-6.18/proc/4402/status: No such file or directory (no such process)",
      msg, 1, true)
    assert.are.equal(2, errno)
    memprobe.config{}
    r, msg, errno = memprobe.process(2 ^ 31 - 1)
    assert.is_nil(r)
    assert.matches("no such process", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("agrees with ps -o rss=,vsz= for another process", function()
    local pid = spawn_sleep()
    finally(function() os.execute("kill " .. pid .. " 2>/dev/null") end)
    local t = ps(pid, "rss=,vsz=")
    if not t then pending("procps ps not installed") return end
    local p = assert(memprobe.process(pid))
    assert.are.equal(pid, p.Pid)
    assert.are.equal("sleep", p.Name)
    assert.are.equal(t[1] * KiB, p.VmRSS)
    assert.are.equal(t[2] * KiB, p.VmSize)
    assert.are.equal(p.VmSize, p.statm.size)
  end)

  it("agrees with this interpreter's own status", function()
    local p = assert(memprobe.process())
    local want = H.parse_kv("/proc/self/status")
    assert.are.equal(mypid(), p.Pid)
    assert.are.equal(want.PPid, p.PPid)
    assert.are.equal(want.VmPeak ~= nil, p.VmPeak ~= nil)
    near(p.VmRSS, want.VmRSS, 1024 * KiB, "VmRSS")
    near(p.statm.resident, p.VmRSS, 1024 * KiB, "statm.resident")
    assert.is_true(p.VmHWM >= p.VmRSS)
    assert.are.equal("R (running)", p.State)
  end)

  it("refills the table it is given, statm included, without allocating once warm", function()
    local t = {}
    assert.are.equal(t, memprobe.process(t))
    local statm = t.statm
    assert.are.equal(t, memprobe.process(nil, t))
    assert.are.equal(statm, t.statm)
    assert.are.equal(0, H.heap_growth(function() memprobe.process(t) end))
    -- and the measure does see a call that allocates
    assert.is_true(H.heap_growth(function() memprobe.process() end, 10) > 0)
  end)

  it("does not take a kept fd for another pid", function()
    memprobe.config(H.fixture("linux-6.18"))
    assert.are.same(status_618, memprobe.process(4401))
    memprobe.config(H.fixture("cgroup-v2-nested"))  -- drops the kept fds
    assert.is_nil(memprobe.process(4401))
  end)

  it("returns a table or nil and a message for files no kernel writes", function()
    for what, content in pairs(bad_contents) do
      local dir = H.tmpdir{ ["proc/self/status"] = content, ["proc/self/statm"] = content }
      memprobe.config{ proc = dir .. "/proc" }
      local ok, r, msg = pcall(memprobe.process)
      H.rmdir(dir)
      assert.is_true(ok, what)
      assert(type(r) == "table" or (r == nil and type(msg) == "string"), what)
    end
    local dir = H.tmpdir{ ["proc/self/status"] = bad_contents.truncated, ["proc/self/statm"] = "" }
    memprobe.config{ proc = dir .. "/proc" }
    local r = memprobe.process()
    H.rmdir(dir)
    assert.are.same({ Name = "lua", VmRSS = 12, statm = {} }, r)
  end)

  it("raises on a bad pid or a bad table, naming the argument", function()
    local cases = {
      { { "x" }, "#1 to '[%w.]*process' %(pid expected, got string%)" },
      { { true }, "#1 to '[%w.]*process' %(pid expected, got boolean%)" },
      { { 1.5 }, "#1 to '[%w.]*process' %(pid must be a positive integer%)" },
      { { -1 }, "#1 to '[%w.]*process' %(pid must be a positive integer%)" },
      { { 0 }, "#1 to '[%w.]*process' %(pid must be a positive integer%)" },
      { { 2 ^ 40 }, "#1 to '[%w.]*process' %(pid must be a positive integer%)" },
      { { 0 / 0 }, "#1 to '[%w.]*process' %(pid must be a positive integer%)" },
      { { 1, 5 }, "#2 to '[%w.]*process' %(table expected, got number%)" },
    }
    for _, c in ipairs(cases) do
      local args = c[1]
      local ok, err = pcall(function()
        local r = memprobe.process((unpack or table.unpack)(args))
        return r
      end)
      assert.is_false(ok)
      assert.matches(c[2], err)
    end
  end)
end)

describe("memprobe.smaps()", function()
  after_each(function() memprobe.config{} end)

  it("returns every smaps_rollup field of the 6.18 fixture, in bytes", function()
    memprobe.config(H.fixture("linux-6.18"))
    assert.are.same(rollup_618, assert(memprobe.smaps()))
    assert.are.same(rollup_618, assert(memprobe.smaps(4401)))
  end)

  it("sums /proc/<pid>/smaps when smaps_rollup is absent", function()
    memprobe.config(H.fixture("no-smaps-rollup"))
    local s = assert(memprobe.smaps())
    -- An independent sum over the fixture's mappings.
    local want = {}
    for line in H.slurp("spec/fixtures/no-smaps-rollup/proc/self/smaps"):gmatch("[^\n]+") do
      local k, v = line:match("^(%a[%w_]*):%s+(%d+) kB$")
      if k and k ~= "Size" and k ~= "KernelPageSize" and k ~= "MMUPageSize" then
        want[k] = (want[k] or 0) + tonumber(v) * KiB
      end
    end
    assert.are.equal("smaps", s.source)
    assert.are.equal(want.Rss, s.rss)
    assert.are.equal((8 + 20 + 16) * KiB, s.rss)
    assert.are.equal((8 + 10 + 16) * KiB, s.pss)
    assert.are.equal(want.Pss_Dirty, s.pss_dirty)
    assert.are.equal(12 * KiB, s.shared_dirty)
    assert.are.equal((8 + 0 + 0) * KiB, s.private_clean)
    assert.are.equal((0 + 8 + 16) * KiB, s.private_dirty)
    assert.are.equal(32 * KiB, s.uss)
    assert.are.equal(4 * KiB, s.swap)
    assert.are.equal(2 * KiB, s.swap_pss)
    assert.are.equal(want.AnonHugePages, s.anon_huge_pages)
    assert.is_nil(s.size)
    assert.is_nil(s.kernel_page_size)
    assert.is_nil(s.th_peligible)
    assert.is_nil(s.pss_anon)  -- only smaps_rollup has it
  end)

  it("agrees with a sum over /proc/self/smaps done in Lua", function()
    local s = assert(memprobe.smaps())
    local pss, rss = 0, 0
    for k, v in assert(H.slurp("/proc/self/smaps")):gmatch("\n(%a+):%s+(%d+) kB") do
      if k == "Pss" then pss = pss + v * KiB elseif k == "Rss" then rss = rss + v * KiB end
    end
    assert.are.equal("smaps_rollup", s.source)
    near(s.pss, pss, 1024 * KiB, "pss")
    near(s.rss, rss, 1024 * KiB, "rss")
    assert.are.equal(s.private_clean + s.private_dirty, s.uss)
    assert.is_true(s.uss <= s.pss and s.pss <= s.rss)
  end)

  it("reads another process, and agrees with its VmRSS", function()
    local pid = spawn_sleep()
    finally(function() os.execute("kill " .. pid .. " 2>/dev/null") end)
    local s, msg = memprobe.smaps(pid)
    if not s then pending(msg) return end
    near(s.rss, assert(memprobe.process(pid)).VmRSS, 64 * KiB, "rss vs VmRSS")
  end)

  it("returns nil, a message and errno for a pid that does not exist", function()
    local r, msg, errno = memprobe.smaps(2 ^ 31 - 1)
    assert.is_nil(r)
    assert.matches("/smaps: No such file or directory (no such process)", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("returns a table or nil and a message for files no kernel writes", function()
    for _, file in ipairs{ "smaps_rollup", "smaps" } do
      for what, content in pairs(bad_contents) do
        local dir = H.tmpdir{ ["proc/self/" .. file] = content }
        memprobe.config{ proc = dir .. "/proc" }
        local ok, r, msg = pcall(memprobe.smaps)
        H.rmdir(dir)
        assert.is_true(ok, what)
        assert(type(r) == "table" or (r == nil and type(msg) == "string"), what)
      end
    end
  end)

  it("raises on a bad pid, naming the argument", function()
    for _, bad in ipairs{ "1", {}, 1.5, -3, 0 } do
      local ok, err = pcall(function() local r = memprobe.smaps(bad) return r end)
      assert.is_false(ok)
      assert.matches("#1 to '[%w.]*smaps' %(pid", err)
    end
  end)
end)

describe("memprobe.mallinfo()", function()
  -- A 64 MiB block from the C heap: malloc through the FFI on LuaJIT, whose
  -- own allocator does not use malloc; a string on the PUC interpreters.
  local function big_block()
    if jit then
      local ffi = require "ffi"
      pcall(ffi.cdef, "void *malloc(size_t); void free(void *);")
      local p = ffi.C.malloc(64 * 1024 * 1024)
      return function() ffi.C.free(p) end
    end
    local keep = { ("x"):rep(64 * 1024 * 1024) }
    return function() assert(#keep[1] > 0) keep[1] = nil collectgarbage() collectgarbage() end
  end

  it("returns glibc's figures, and sees a 64 MiB allocation", function()
    if H.asan or H.valgrind then pending("malloc is not glibc's here") return end
    local m, msg = memprobe.mallinfo()
    if not m then pending(msg) return end
    for _, k in ipairs{ "arena", "ordblks", "smblks", "hblks", "hblkhd", "fsmblks",
                        "uordblks", "fordblks", "keepcost" } do
      assert.is_true(type(m[k]) == "number" and m[k] >= 0, k)
    end
    -- Garbage freed while the block is made would hide part of it.
    collectgarbage()
    collectgarbage("stop")
    local before = memprobe.mallinfo(m).uordblks + m.hblkhd
    local release = big_block()
    local mid = memprobe.mallinfo()
    collectgarbage("restart")
    assert.is_true(mid.uordblks + mid.hblkhd - before >= 64 * 1024 * 1024)
    release()
    local after = memprobe.mallinfo()
    assert.is_true(mid.uordblks + mid.hblkhd - (after.uordblks + after.hblkhd) >= 60 * 1024 * 1024)
  end)

  it("refills the table it is given without allocating once warm", function()
    local t = {}
    if not memprobe.mallinfo(t) then pending("no mallinfo2") return end
    assert.are.equal(t, memprobe.mallinfo(t))
    assert.are.equal(0, H.heap_growth(function() memprobe.mallinfo(t) end))
  end)

  it("raises on a non-table argument", function()
    local ok, err = pcall(function() local r = memprobe.mallinfo(5) return r end)
    assert.is_false(ok)
    assert.matches("#1 to '[%w.]*mallinfo' %(table expected, got number%)", err)
  end)
end)

describe("memprobe process functions", function()
  it("do not create globals", function()
    local before = H.globals()
    memprobe.rss()
    memprobe.process()
    memprobe.smaps()
    memprobe.mallinfo()
    for k in pairs(_G) do assert.is_true(before[k], k) end
  end)
end)
