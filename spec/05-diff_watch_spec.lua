local memprobe = require "memprobe"
local H = require "spec.helper"

local KiB = 1024

local slab_head = "slabinfo - version: 2.1\n# name <active_objs> ...\n"
local function slabline(name, objs, slabs)
  return ("%s %d %d 832 19 4 : tunables 0 0 0 : slabdata %d %d 0\n"):format(
    name, objs, objs, slabs, slabs)
end

-- A tree with the 6.18 meminfo (fields overridden by 'mem') and a slabinfo.
local function tree(mem, slab)
  local m = H.slurp("spec/fixtures/linux-6.18/proc/meminfo")
  for k, v in pairs(mem or {}) do
    m = m:gsub("\n" .. k:gsub("%p", "%%%0") .. ":%s+%d+", "\n" .. k .. ": " .. v)
  end
  return H.tmpdir{ ["proc/meminfo"] = m, ["proc/slabinfo"] = slab or slab_head,
                   ["proc/vmallocinfo"] = "" }
end

local function read_in(dir, fn, ...)
  memprobe.config{ proc = dir .. "/proc" }
  local r = assert(memprobe[fn](...))
  memprobe.config{}
  return r
end

describe("memprobe.diff()", function()
  after_each(function() memprobe.config{} end)

  it("ranks meminfo fields that grew and shrank, in bytes", function()
    local a, b = tree(), tree{ SUnreclaim = 90000, Slab = 230000, MemFree = 100 }
    local d = memprobe.diff(read_in(a, "meminfo"), read_in(b, "meminfo"))
    local m = H.parse_kv("spec/fixtures/linux-6.18/proc/meminfo")
    assert.are.equal("meminfo", d.source)
    assert.are.same({
      { name = "Slab", before = m.Slab, after = 230000 * KiB, delta = 230000 * KiB - m.Slab },
      { name = "SUnreclaim", before = m.SUnreclaim, after = 90000 * KiB,
        delta = 90000 * KiB - m.SUnreclaim },
    }, d.grew)
    assert.are.same({ { name = "MemFree", before = m.MemFree, after = 100 * KiB,
                        delta = 100 * KiB - m.MemFree } }, d.shrank)
    assert.are.equal(d.grew[1].delta + d.grew[2].delta + d.shrank[1].delta, d.total)
    H.rmdir(a) H.rmdir(b)
  end)

  it("ranks slab caches by bytes in use, with new and gone caches", function()
    local a = tree(nil, slab_head .. slabline("sock_inode_cache", 19, 1) ..
                         slabline("dentry", 95, 5) .. slabline("gone", 20, 2))
    local b = tree(nil, slab_head .. slabline("sock_inode_cache", 1900, 100) ..
                         slabline("dentry", 57, 3) .. slabline("new", 38, 2))
    local d = memprobe.diff(read_in(a, "slabinfo"), read_in(b, "slabinfo"))
    local o = 832  -- objsize: the series is active_objs * objsize
    assert.are.equal("slabinfo", d.source)
    assert.are.same({
      { name = "sock_inode_cache", before = 19 * o, after = 1900 * o, delta = 1881 * o },
      { name = "new", after = 38 * o, delta = 38 * o },
    }, d.grew)
    assert.are.same({
      { name = "dentry", before = 95 * o, after = 57 * o, delta = -38 * o },
      { name = "gone", before = 20 * o, delta = -20 * o },
    }, d.shrank)
    assert.are.equal(1861 * o, d.total)
    H.rmdir(a) H.rmdir(b)
  end)

  it("ranks vmalloc callers by size", function()
    memprobe.config(H.fixture("linux-2.6-slab"))
    local old = assert(memprobe.vmallocinfo())
    local dir = H.tmpdir{ ["proc/vmallocinfo"] = H.slurp(
      "spec/fixtures/linux-2.6-slab/proc/vmallocinfo") ..
      "0xf9000000-0xf9101000 1052672 nv_vmalloc+0x1c/0x40 [nvidia] pages=256 vmalloc\n" }
    memprobe.config{ proc = dir .. "/proc" }
    local new = assert(memprobe.vmallocinfo())
    local d = memprobe.diff(old, new)
    assert.are.equal("vmallocinfo", d.source)
    assert.are.same({ { name = "nv_vmalloc [nvidia]", before = 172032,
                        after = 172032 + 1052672, delta = 1052672 } }, d.grew)
    assert.are.same({}, d.shrank)
    H.rmdir(dir)
  end)

  it("raises on results of different kinds or unknown tables", function()
    memprobe.config(H.fixture("linux-6.18"))
    local m, s = assert(memprobe.meminfo()), assert(memprobe.slabinfo())
    for _, args in ipairs({ { m, s }, { s, m }, { {}, {} }, { 1, 2 }, { m } }) do
      assert.has_error(function() memprobe.diff(args[1], args[2]) end)
    end
  end)
end)

describe("memprobe.watch()", function()
  after_each(function() memprobe.config{} end)

  it("fits a least-squares line", function()
    local fit = require("memprobe.watch").fit
    local slope, r2 = fit({ 0, 1, 2, 3 }, { 10, 20, 30, 40 })
    assert.are.equal(10, slope)
    assert.are.equal(1, r2)
    slope, r2 = fit({ 0, 1, 2, 3 }, { 5, 5, 5, 5 })
    assert.are.equal(0, slope)
    assert.are.equal(0, r2)
    -- y = 1, 3, 2, 4: slope 0.8, r² 0.64
    slope, r2 = fit({ 0, 1, 2, 3 }, { 1, 3, 2, 4 })
    assert.is_true(math.abs(slope - 0.8) < 1e-12)
    assert.is_true(math.abs(r2 - 0.64) < 1e-12)
  end)

  it("ranks series by bytes per minute and flags steady growth", function()
    local dirs = {}
    local w = memprobe.watch{ sources = { "meminfo", "slabinfo" }, samples = 4 }
    for i = 1, 4 do
      local noisy = ({ 10, 2, 9, 3 })[i]
      dirs[i] = tree({ SUnreclaim = 80000 + 1000 * i },
        slab_head .. slabline("sock_inode_cache", 19 * 100 * i, 100 * i) ..
                     slabline("kmalloc-64", 19 * noisy, noisy))
      memprobe.config{ proc = dirs[i] .. "/proc" }
      assert.are.equal(i, w:sample(10 * (i - 1)))
    end
    local r = w:report()
    local p = 19 * 832  -- 100 slabs of 19 objects of 832 bytes: 100 * p
    assert.are.equal(4, r.samples)
    assert.are.equal(30, r.seconds)
    assert.are.same({}, r.errors)
    local first = r.series[1]
    assert.are.equal("slabinfo", first.source)
    assert.are.equal("sock_inode_cache", first.name)
    assert.are.equal(100 * p / 10 * 60, first.slope)
    assert.are.equal(1, first.r2)
    assert.are.equal(100 * p, first.first)
    assert.are.equal(400 * p, first.last)
    assert.are.equal(300 * p, first.delta)
    assert.is_true(first.monotonic)
    local by = {}
    for _, e in ipairs(r.series) do by[e.source .. ":" .. e.name] = e end
    local su = by["meminfo:SUnreclaim"]
    assert.are.equal(1000 * KiB / 10 * 60, su.slope)
    assert.is_true(su.monotonic)
    local noisy = by["slabinfo:kmalloc-64"]
    assert.is_false(noisy.monotonic)
    assert.is_true(noisy.r2 < 0.5)
    local flagged = {}
    for _, e in ipairs(r.flagged) do flagged[#flagged + 1] = e.source .. ":" .. e.name end
    table.sort(flagged)
    assert.are.same({ "meminfo:SUnreclaim", "slabinfo:sock_inode_cache" }, flagged)
    assert.are.equal(1, #w:report{ top = 1 }.series)
    for _, d in ipairs(dirs) do H.rmdir(d) end
  end)

  it("runs with its own clock and sleep, and keeps a source's error", function()
    local t, slept = 0, {}
    local w = memprobe.watch{ interval = 5, samples = 3, sources = { "meminfo", "slabinfo" },
      clock = function() return t end,
      sleep = function(s) slept[#slept + 1] = s; t = t + s end }
    memprobe.config{ proc = "spec/fixtures/linux-6.18/proc" }
    local calls = 0
    local r = w:run(function(_, n) calls = calls + 1; assert.are.equal(calls, n) end)
    assert.are.equal(3, calls)
    assert.are.same({ 5, 5 }, slept)
    assert.are.equal(10, r.seconds)
    assert.are.same({}, r.series)  -- nothing changed in a fixture
    memprobe.config{ proc = "/nonexistent" }
    w:sample()
    assert.matches("/nonexistent/slabinfo", w:report().errors.slabinfo, 1, true)
  end)

  it("raises on bad options", function()
    local bad = { 5, { interval = -1 }, { interval = "1" }, { samples = 1 },
                  { samples = 2.5 }, { sources = {} }, { sources = { "nope" } },
                  { sources = "meminfo" }, { clock = 1 }, { nope = true } }
    for _, o in ipairs(bad) do
      assert.has_error(function() memprobe.watch(o) end)
    end
  end)

  it("does not create globals", function()
    local before = H.globals()
    local w = memprobe.watch{ sources = { "meminfo" } }
    w:sample(0) w:sample(1)
    w:report()
    memprobe.diff(memprobe.meminfo(), memprobe.meminfo())
    for k in pairs(_G) do assert.is_true(before[k], k) end
  end)
end)
