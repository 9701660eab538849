local memprobe = require "memprobe"
local H = require "spec.helper"

local KiB = 1024
local pagesize = memprobe.pagesize()

describe("memprobe.meminfo()", function()
  after_each(function() memprobe.config{} end)

  it("returns every key of the 6.18 fixture, kB as bytes, counts as counts", function()
    memprobe.config(H.fixture("linux-6.18"))
    local m = assert(memprobe.meminfo())
    local want = H.parse_kv("spec/fixtures/linux-6.18/proc/meminfo")
    local n = 0
    for k, v in pairs(want) do
      assert.are.equal(v, m[k], k)
      n = n + 1
    end
    for k in pairs(m) do assert.is_not_nil(want[k], k) end
    assert.are.equal(53, n)
    assert.are.equal(24683620 * KiB, m.MemTotal)
    assert.are.equal(169800 * KiB, m["Active(file)"])
    assert.are.equal(0, m.HugePages_Total)
    assert.are.equal(2048 * KiB, m.Hugepagesize)
    assert.are.equal(34359738367 * KiB, m.VmallocTotal)
    assert.is_nil(m.Unaccepted)
  end)

  it("skips 2.4-style byte lines and lines that do not parse", function()
    memprobe.config(H.fixture("linux-2.4-vendor"))
    local m = assert(memprobe.meminfo())
    assert.is_nil(m.Mem)
    assert.is_nil(m.Swap)
    assert.is_nil(m.BogoLine)
    assert.are.equal(1031016 * KiB, m.MemTotal)
    assert.are.equal(0, m.MemShared)
    assert.are.equal(130992 * KiB, m.HighTotal)
    assert.is_nil(m.MemAvailable)
  end)

  it("refills the table it is given, without allocating once warm", function()
    local t = {}
    assert.are.equal(t, memprobe.meminfo(t))
    assert.is_true(t.MemTotal > 0)
    memprobe.meminfo(t)
    -- LuaJIT's trace compiler keeps its traces in the same heap.
    if jit then jit.off() jit.flush() end
    for _ = 1, 200 do memprobe.meminfo(t) end
    collectgarbage("collect")
    collectgarbage("stop")
    local before = collectgarbage("count")
    for _ = 1, 200 do memprobe.meminfo(t) end
    local after = collectgarbage("count")
    collectgarbage("restart")
    if jit then jit.on() end
    assert.are.equal(before, after)
  end)

  it("returns nil, a message naming the file, and errno when it is missing", function()
    memprobe.config{ proc = "/nonexistent" }
    local r, msg, errno = memprobe.meminfo()
    assert.is_nil(r)
    assert.matches("/nonexistent/meminfo: No such file", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("raises on a non-table argument", function()
    assert.has_error(function() memprobe.meminfo(5) end)
    assert.has_error(function() memprobe.meminfo("x") end)
  end)
end)

describe("memprobe.free()", function()
  after_each(function() memprobe.config{} end)

  it("follows procps 4 on the 6.18 fixture", function()
    memprobe.config(H.fixture("linux-6.18"))
    local f = assert(memprobe.free())
    local m = H.parse_kv("spec/fixtures/linux-6.18/proc/meminfo")
    local cache = m.Cached + m.SReclaimable
    assert.are.equal(m.MemTotal, f.total)
    assert.are.equal(m.MemFree, f.free)
    assert.are.equal(m.MemAvailable, f.available)
    assert.are.equal(m.MemTotal - m.MemAvailable, f.used)
    assert.are.equal(m.MemTotal - m.MemFree - m.Buffers - cache, f.used_classic)
    assert.are.equal(m.Shmem, f.shared)
    assert.are.equal(m.Buffers, f.buffers)
    assert.are.equal(cache, f.cache)
    assert.are.equal(m.Buffers + cache, f.buff_cache)
    assert.are.equal(0, f.swap_total)
    assert.are.equal(0, f.swap_used)
    assert.are.equal(0, f.swap_free)
    assert.is_false(f.available_estimated)
  end)

  it("estimates available from the low watermarks before 3.14", function()
    memprobe.config(H.fixture("linux-3.10-nomemavail"))
    local f = assert(memprobe.free())
    local m = H.parse_kv("spec/fixtures/linux-3.10-nomemavail/proc/meminfo")
    local low = (41 + 9453 + 733) * pagesize
    local pc = m["Active(file)"] + m["Inactive(file)"]
    local want = m.MemFree - low + pc - math.min(math.floor(pc / 2), low)
      + m.SReclaimable - math.min(math.floor(m.SReclaimable / 2), low)
    assert.is_true(f.available_estimated)
    assert.are.equal(want, f.available)
    assert.are.equal(m.MemTotal - want, f.used)
    assert.are.equal(m.SwapTotal - m.SwapFree, f.swap_used)
  end)

  it("falls back to MemFree without zoneinfo, and leaves absent fields nil", function()
    memprobe.config(H.fixture("linux-2.4-vendor"))
    local f = assert(memprobe.free())
    assert.is_true(f.available_estimated)
    assert.are.equal(13548 * KiB, f.available)
    assert.is_nil(f.shared)
    assert.are.equal(692320 * KiB, f.cache)
  end)

  it("agrees with procps free -b on this machine", function()
    local out = H.run("free -b")
    if not out then pending("procps free not installed") return end
    local f = assert(memprobe.free())
    local nums = {}
    for n in out:match("Mem:([^\n]+)"):gmatch("%d+") do nums[#nums + 1] = tonumber(n) end
    local sw = {}
    for n in out:match("Swap:([^\n]+)"):gmatch("%d+") do sw[#sw + 1] = tonumber(n) end
    local function near(a, b, what)
      local slack = math.max(16 * 1024 * 1024, 0.02 * math.abs(b))
      assert(math.abs(a - b) <= slack, ("%s: memprobe %d, free -b %d"):format(what, a, b))
    end
    assert.are.equal(nums[1], f.total)
    near(f.used, nums[2], "used")
    near(f.free, nums[3], "free")
    near(f.shared, nums[4], "shared")
    near(f.buff_cache, nums[5], "buff/cache")
    near(f.available, nums[6], "available")
    assert.are.same({ sw[1], sw[2], sw[3] }, { f.swap_total, f.swap_used, f.swap_free })
  end)
end)

describe("memprobe.vmstat()", function()
  after_each(function() memprobe.config{} end)

  it("returns every counter of the fixture", function()
    memprobe.config(H.fixture("linux-6.18"))
    local v = assert(memprobe.vmstat())
    local n = 0
    for line in H.slurp("spec/fixtures/linux-6.18/proc/vmstat"):gmatch("[^\n]+") do
      local k, val = line:match("^(%S+) (%d+)$")
      assert.are.equal(tonumber(val), v[k], k)
      n = n + 1
    end
    assert.is_true(n > 100)
    assert.are.equal(1, v.drop_pagecache)
    assert.are.equal(2, v.drop_slab)
  end)
end)

describe("kept /proc files", function()

  it("are reopened in a forked child, where /proc/self is another process", function()
    -- the parent keeps self/status and self/statm open
    local me = memprobe.process().Pid
    assert.is_true(memprobe.rss() > 0)
    local status = H.in_child(function()
      local p = memprobe.process()
      return p and p.Pid ~= me and p.PPid == me
    end)
    if status == nil then pending("needs memprobe_testalloc (make testalloc) or an FFI") return end
    -- exit code 0: the child read its own status, not its parent's
    assert.are.equal(0, status)
    assert.are.equal(me, memprobe.process().Pid)
  end)

  it("are read whole: every key a plain read of the live file has", function()
    local function keys(path, pattern)
      local f = assert(io.open(path))
      local set = {}
      for k in f:read("*a"):gmatch(pattern) do set[k] = true end
      f:close()
      return set
    end
    memprobe.config{}
    for _ = 1, 3 do  -- warm: the kept fds are read again
      local m, v, p = assert(memprobe.meminfo({})), assert(memprobe.vmstat({})),
        assert(memprobe.process({}))
      for k in pairs(keys("/proc/meminfo", "([^\n:]+):")) do assert.is_not_nil(m[k], k) end
      for k in pairs(keys("/proc/vmstat", "(%S+) %d+")) do assert.is_not_nil(v[k], k) end
      for k in pairs(keys("/proc/self/status", "([%w_]+):%s+%d+ kB\n")) do
        assert.is_not_nil(p[k], k)
      end
      assert.is_not_nil(p.nonvoluntary_ctxt_switches)  -- the last line
    end
    -- slabinfo comes a page of records at a time: a short read is not
    -- its end (as root, where it can be read)
    local s = memprobe.slabinfo()
    if s then
      local n = 0
      for line in H.slurp("/proc/slabinfo"):gmatch("[^\n]+") do
        if not line:match("^slabinfo") and not line:match("^#") then n = n + 1 end
      end
      assert.is_true(n > 100)
      assert.is_true(math.abs(#s.caches - n) <= 2, #s.caches .. " of " .. n)
    end
  end)
end)
