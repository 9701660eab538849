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

-- meminfo() checks each line against the keys (and the whole lines) of
-- its last read, in place, and hands the rest of the file to the general
-- parser from the first line that differs. Whatever the last read was,
-- the result must be the general parser's.
describe("memprobe.meminfo() after another layout", function()
  local fixtures = { "linux-2.4-vendor", "linux-3.10-nomemavail", "linux-3.16-i686-highmem",
                     "linux-5.15-numa2", "linux-6.18" }
  local base = H.slurp("spec/fixtures/linux-6.18/proc/meminfo")
  local lines = {}
  for line in base:gmatch("[^\n]*\n") do lines[#lines + 1] = line end

  -- base with lines i..j replaced by the given ones
  local function edit(i, j, ...)
    local t = {}
    for k = 1, i - 1 do t[#t + 1] = lines[k] end
    for _, l in ipairs{ ... } do t[#t + 1] = l end
    for k = j + 1, #lines do t[#t + 1] = lines[k] end
    return table.concat(t)
  end
  local function swap(i, j)
    return edit(i, j, lines[j], table.concat(lines, "", i + 1, j - 1), lines[i])
  end
  local function with(i, line) return edit(i, i, line) end
  local key = ("K"):rep(63)
  local texts = {
    base,
    base:gsub(" kB\n", "1 kB\n", 3),                  -- values a digit longer
    with(1, "MemTotal:       99999999 kB\n"),          -- same width, other value
    with(1, "MemTotal:       1 kB\n"),                 -- shorter
    with(2, "MemFree:        1234567890123456\n"),     -- 16 digits
    with(2, "MemFree:        12345678901234567 kB\n"), -- 17
    with(2, "MemFree:        123456789012345678 kB\n"),
    with(2, "MemFree:        1234567890123456789 kB\n"),
    with(2, "MemFree:        99999999999999999999999 kB\n"),  -- held at the cap
    with(2, "MemFree:        00000042 kB\n"),
    with(2, "MemFree:        0\n"),                    -- a count where kB was
    with(2, "MemFree:\t\t4242 kB\n"),
    with(2, "MemFree:4242 kB\n"),
    with(2, "MemFree:        4242kB\n"),
    with(2, "MemFree:        4242  kB\n"),
    with(2, "MemFree:        4242 kB \n"),
    with(2, "MemFree:        4242 kB\r\n"),
    with(2, "MemFree:        4242 B\n"),
    with(2, "MemFree:        +4242 kB\n"),
    with(2, "MemFree:        -4242 kB\n"),
    with(2, "MemFree:        42 42 kB\n"),
    with(2, "MemFree:        4242 kB\0\n"),
    with(2, "MemFree:        " .. ("7"):rep(8) .. " kB" .. (" "):rep(90) .. "\n"),
    with(2, "MemFree:" .. (" "):rep(100) .. "4242 kB\n"),  -- longer than a kept line
    with(2, "MemFree\n"),
    with(2, "\n"),
    with(2, "Mem:  1055760384 1041887232 13873152\n"),
    with(2, "MemFree:\tgarbage kB\n"),
    with(2, "MemFree:Bar: 1 kB\n"),
    with(2, "Memfree:        4242 kB\n"),              -- a key that differs by a letter
    with(2, "MemFreeX:       4242 kB\n"),
    with(2, "MemFre:         4242 kB\n"),
    with(3, lines[3] .. lines[3]:gsub("%d+", "7")),     -- a key twice: the last one wins
    with(2, key .. ":  1 kB\n"),                       -- 63-byte key
    with(2, key .. "K: 1 kB\n"),                       -- 64
    with(2, key .. "KK: 1 kB\n"),                      -- 65: no key
    swap(2, 3), swap(1, #lines), swap(10, 20),        -- keys reordered
    edit(5, 4, "NewKey:         4 kB\n"),             -- a key added
    base .. "Unaccepted:            0 kB\n",
    edit(5, 5),                                        -- a key removed
    edit(#lines, #lines),
    edit(2, #lines),                                   -- one line left
    base:sub(1, -2),                                   -- no final newline
    base:sub(1, -5),                                   -- ... nor unit
    base:sub(1, -6),
    "",
    "MemTotal: 1 kB\n",
    with(2, "MemFree 4242 kB\n"),                     -- no colon after the key
    with(2, "MemFree=4242 kB\n"),
    with(2, "MemFree:        4242\r\n"),
    with(2, "MemFree:        18446744073709551617\n"),  -- 2^64 + 1: held at the cap
    -- a key twice with the last line the same: the last one still wins
    with(3, lines[3]:gsub("%d+", "8") .. lines[3]:gsub("%d+", "7")),
    -- after base: MemFree's line differs by its key, so the general
    -- parser takes over there and gives MemAvailable another value ...
    edit(2, 3, "Foo:            1 kB\n", (lines[3]:gsub("%d+", "5"))),
    -- ... and then base's MemAvailable line is no longer the one kept
    with(2, "Foo:            1 kB\n"),
  }
  for _, f in ipairs(fixtures) do
    texts[#texts + 1] = H.slurp("spec/fixtures/" .. f .. "/proc/meminfo")
  end
  local dirs = {}

  setup(function()
    for i, text in ipairs(texts) do
      dirs[i] = H.tmpdir{ ["proc/meminfo"] = text }
    end
    dirs.other = H.tmpdir{ ["proc/meminfo"] = "Zz: 1\n" }
  end)
  teardown(function()
    memprobe.config{}
    for _, d in pairs(dirs) do H.rmdir(d) end
  end)

  local function read(i)
    memprobe.config{ proc = dirs[i] .. "/proc" }
    return assert(memprobe.meminfo({}))
  end
  -- The general parser's result: after a read whose first key is no
  -- line's, nothing is checked in place.
  local function general(i)
    read("other")
    return read(i)
  end

  it("matches the general parser whatever was read before", function()
    local want, n = {}, 0
    for i = 1, #texts do want[i] = general(i) end
    for prev = 1, #texts do
      for cur = 1, #texts do
        read(prev)
        read(prev)  -- now with prev's lines kept
        assert.are.same(want[cur], read(cur), ("text %d after %d"):format(cur, prev))
        assert.are.same(want[cur], read(cur), ("text %d twice after %d"):format(cur, prev))
        n = n + 1
      end
    end
    assert.are.equal(#texts * #texts, n)
  end)

  it("has the general parser agree with an independent reader on the fixtures", function()
    for i = #texts - #fixtures + 1, #texts do
      local f = fixtures[i - (#texts - #fixtures)]
      assert.are.same(H.parse_kv("spec/fixtures/" .. f .. "/proc/meminfo"), general(i), f)
    end
    local m = general(1)
    assert.are.equal(53, (function() local c = 0 for _ in pairs(m) do c = c + 1 end return c end)())
    assert.are.equal(24683620 * KiB, m.MemTotal)
  end)

  -- A refill writes only the fields whose line changed since the same
  -- table's last refill (fill.c): whatever was read before, and into
  -- whichever table, the table must then hold what a new one gets.
  local function refill(t, i)
    memprobe.config{ proc = dirs[i] .. "/proc" }
    assert.are.equal(t, memprobe.meminfo(t))
    return t
  end
  local function holds(want, t, what)
    local got = {}
    for k in pairs(want) do got[k] = t[k] end
    assert.are.same(want, got, what)
  end

  it("refills a table as a new one is filled, whatever was read into another", function()
    local want, n = {}, 0
    for i = 1, #texts do want[i] = general(i) end
    for prev = 1, #texts do
      for cur = 1, #texts do
        local a, b, what = {}, {}, ("text %d after %d"):format(cur, prev)
        refill(b, cur)  -- cur's lines kept, past the end of a shorter prev too
        refill(a, prev)
        holds(want[cur], refill(a, cur), what)
        refill(a, prev)
        refill(b, cur)  -- cur's lines kept again, from b's refill
        holds(want[cur], refill(a, cur), what .. ", b between")
        n = n + 1
      end
    end
    assert.are.equal(#texts * #texts, n)
  end)

  it("refills a field whose line the general parser read last time", function()
    local t, foo = {}, #texts - #fixtures
    local want = general(foo)
    refill(t, 1)
    refill(t, 1)
    assert.are.equal(5 * KiB, refill(t, foo - 1).MemAvailable)
    holds(want, refill(t, foo), "base's MemAvailable again")
  end)

  it("leaves alone the fields whose line is unchanged; refills an emptied table whole", function()
    local t, want = {}, general(1)
    refill(t, 1)
    refill(t, 1)
    t.MemAvailable = -1
    assert.are.equal(-1, refill(t, 1).MemAvailable)
    assert.are.equal(5 * KiB, refill(t, #texts - #fixtures - 1).MemAvailable)
    refill(t, 1)
    refill(t, 1)
    for k in pairs(t) do t[k] = nil end
    holds(want, refill(t, 1), "emptied")
  end)

  it("reads the mutated lines as the kernel's format says", function()
    assert.are.equal(1234567890123456, general(5).MemFree)
    assert.are.equal(2 ^ 53, general(7).MemFree)  -- beyond 8 PiB: held there
    assert.are.equal(2 ^ 53, general(9).MemFree)
    assert.are.equal(42 * KiB, general(10).MemFree)
    assert.are.equal(0, general(11).MemFree)
    assert.are.equal(4242 * KiB, general(12).MemFree)
    assert.are.equal(4242 * KiB, general(13).MemFree)
    assert.are.equal(4242 * KiB, general(14).MemFree)
    assert.are.equal(4242 * KiB, general(16).MemFree)
    assert.are.equal(77777777 * KiB, general(23).MemFree)
    assert.are.equal(4242 * KiB, general(24).MemFree)
    for _, i in ipairs{ 17, 18, 19, 20, 21, 22, 25, 26, 27, 28, 29, 30, 31, 32 } do
      assert.is_nil(general(i).MemFree, i)
    end
    assert.are.equal(4242 * KiB, general(30).Memfree)
    assert.are.equal(7 * KiB, general(33).MemAvailable)
    assert.are.equal(KiB, general(35)[key .. "K"])
    assert.are.equal(2 ^ 53, general(53).MemFree)
    assert.is_nil(general(36)[key .. "KK"])
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
