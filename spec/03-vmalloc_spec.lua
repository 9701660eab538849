local memprobe = require "memprobe"
local H = require "spec.helper"

local pagesize = memprobe.pagesize()

local flagwords = { "ioremap", "sparse", "vmalloc", "vmap", "user", "dma-coherent",
                    "vm_map_ram" }

-- An independent reading of vmallocinfo: per kind, caller and module sums.
local function parse(path)
  local r = { count = 0, size = 0, pages = 0, vmalloc_pages = 0,
              kind = {}, caller = {}, module = {}, order = {} }
  local function add(t, k, size, pages)
    local e = t[k]
    if not e then
      e = { count = 0, size = 0, pages = 0 }
      t[k] = e
      r.order[#r.order + 1] = k
    end
    e.count, e.size, e.pages = e.count + 1, e.size + size, e.pages + pages
  end
  for line in assert(H.slurp(path)):gmatch("[^\n]+") do
    local size, rest = line:match("^0x%x+%-0x%x+%s+(%d+)%s*(.*)$")
    size = tonumber(size)
    local pages = tonumber(rest:match("pages=(%d+)")) or 0
    local words = {}
    for w in rest:gmatch("%S+") do words[w] = true end
    local kind = "other"
    if rest:match("^unpurged vm_area") then kind = "unpurged" else
      for _, f in ipairs(flagwords) do
        if words[f] then kind = f break end
      end
    end
    r.count, r.size, r.pages = r.count + 1, r.size + size, r.pages + pages
    if words.vmalloc then r.vmalloc_pages = r.vmalloc_pages + pages end
    add(r.kind, kind, size, pages)
    local fn = rest:match("^([%w_.]+)%+0x")
    if fn then
      local mod = rest:match("^%S+ %[([%w_]+)%]") or "vmlinux"
      add(r.caller, fn .. " " .. mod, size, pages)
      add(r.module, mod, size, pages)
    end
  end
  return r
end

local function check_all(path, v)
  local r = parse(path)
  assert.are.same({ count = r.count, virtual = r.size, pages = r.pages,
                    bytes = r.pages * pagesize, vmalloc_pages = r.vmalloc_pages,
                    vmalloc_bytes = r.vmalloc_pages * pagesize }, v.totals)
  local nk = 0
  for k, e in pairs(r.kind) do
    nk = nk + 1
    assert.are.same({ count = e.count, virtual = e.size, pages = e.pages,
                      bytes = e.pages * pagesize }, v.by_kind[k], k)
  end
  for k in pairs(v.by_kind) do assert.is_not_nil(r.kind[k], k) end
  local nc = 0
  for _ in pairs(r.caller) do nc = nc + 1 end
  assert.are.equal(nc, #v.by_caller)
  for i, e in ipairs(v.by_caller) do
    local w = r.caller[e.caller .. " " .. e.module]
    assert.is_not_nil(w, e.caller)
    assert.are.same({ caller = e.caller, module = e.module, count = w.count,
                      virtual = w.size, pages = w.pages, bytes = w.pages * pagesize }, e)
    if i > 1 then assert.is_true(v.by_caller[i - 1].virtual >= e.virtual) end
  end
  local nm = 0
  for _ in pairs(r.module) do nm = nm + 1 end
  assert.are.equal(nm, #v.by_module)
  for _, e in ipairs(v.by_module) do
    local w = r.module[e.module]
    assert.are.same({ module = e.module, count = w.count, virtual = w.size,
                      pages = w.pages, bytes = w.pages * pagesize }, e)
  end
  return r
end

describe("memprobe.vmallocinfo()", function()
  after_each(function() memprobe.config{} end)

  it("sums the 6.18 fixture by kind, caller and module", function()
    memprobe.config(H.fixture("linux-6.18"))
    local v = assert(memprobe.vmallocinfo())
    check_all("spec/fixtures/linux-6.18/proc/vmallocinfo", v)
    assert.is_nil(v.skipped)
    assert.are.equal(300, v.totals.count)
    assert.are.equal(71, v.by_kind.unpurged.count)
    assert.are.equal(29, v.by_kind.ioremap.count)
    assert.are.equal(2, v.by_kind.vmap.count)
    assert.are.equal(0, v.by_kind.ioremap.pages)
    assert.is_nil(v.by_kind.user)
    assert.are.equal("vmlinux", v.by_module[1].module)
    assert.is_nil(v.areas)
  end)

  it("calls address space `virtual` and memory `bytes`, as the rest of the API does", function()
    memprobe.config(H.fixture("linux-6.18"))
    local v = assert(memprobe.vmallocinfo{ areas = true })
    local rows = { v.totals }
    for _, e in pairs(v.by_kind) do rows[#rows + 1] = e end
    for _, list in ipairs({ v.by_caller, v.by_module, v.areas }) do
      for _, e in ipairs(list) do rows[#rows + 1] = e end
    end
    assert.is_true(#rows > 300)
    for _, e in ipairs(rows) do
      assert.is_nil(e.size)
      assert.is_true(e.virtual > 0)
    end
    -- an ioremap area has address space and no pages behind it
    assert.is_true(v.by_kind.ioremap.virtual > 0)
    assert.are.equal(0, v.by_kind.ioremap.bytes)
    assert.has_error(function() memprobe.vmallocinfo{ sort = "size" } end,
      "bad argument #1 to 'vmallocinfo' (sort must be 'virtual', 'pages' or 'count')")
    local s = assert(memprobe.vmallocinfo{ sort = "virtual" })
    for i = 2, #s.by_caller do
      assert.is_true(s.by_caller[i - 1].virtual >= s.by_caller[i].virtual)
    end
    local text = require("memprobe.format").vmalloc(s, "kind")
    assert.matches("KIND%s+AREAS%s+VIRTUAL%s+PAGES%s+MEMORY", text)
    assert.matches("of address space", text, 1, true)
  end)

  it("parses one line of every variant", function()
    -- the variants, one per line, as 6.18 prints them
    local dir = H.tmpdir{ ["proc/vmallocinfo"] = table.concat({
      "0x00000000663c58e8-0x00000000a3e25e1e   20480 unpurged vm_area",
      "0x00000000720c3bdf-0x00000000213c7e81   20480 kernel_clone+0xb8/0x400 pages=4 vmalloc N0=4",
      "0x000000001e1a0b66-0x00000000553661d0 2105344 htab_map_alloc+0x2e4/0x5a0 pages=513 " ..
        "vmalloc vpages N0=513",
      "0x000000008597f8df-0x00000000b875f8e6    8192 acpi_os_map_iomem+0x1bc/0x1e0 " ..
        "phys=0x00000000000a0000 ioremap",
      "0x00000000031ce651-0x000000008597f8df   20480 irq_init_percpu_irqstack+0xed/0x120 vmap",
      "0x0000000000000001-0x0000000000000002   65536 vm_map_ram",
      "",
    }, "\n") }
    memprobe.config{ proc = dir .. "/proc" }
    local v = assert(memprobe.vmallocinfo{ areas = true })
    H.rmdir(dir)
    assert.are.equal(6, #v.areas)
    local a = v.areas
    assert.are.same({ start = "0x00000000663c58e8", ["end"] = "0x00000000a3e25e1e",
                      virtual = 20480, kind = "unpurged", vpages = false }, a[1])
    assert.are.same({ start = "0x00000000720c3bdf", ["end"] = "0x00000000213c7e81",
                      virtual = 20480, caller = "kernel_clone+0xb8/0x400", func = "kernel_clone",
                      pages = 4, kind = "vmalloc", vpages = false }, a[2])
    assert.are.equal(513, a[3].pages)
    assert.is_true(a[3].vpages)
    assert.are.equal("vmalloc", a[3].kind)
    assert.are.equal("0x00000000000a0000", a[4].phys)
    assert.are.equal("ioremap", a[4].kind)
    assert.are.equal("acpi_os_map_iomem", a[4].func)
    assert.are.equal("vmap", a[5].kind)
    assert.are.equal("vm_map_ram", a[6].kind)
    assert.is_nil(a[6].caller)
    assert.are.same({ count = 6, virtual = 20480 * 3 + 2105344 + 8192 + 65536, pages = 517,
                      bytes = 517 * pagesize, vmalloc_pages = 517,
                      vmalloc_bytes = 517 * pagesize }, v.totals)
    assert.are.equal(4, #v.by_caller)
    assert.are.equal("htab_map_alloc", v.by_caller[1].caller)
  end)

  it("parses older kernels' lines: no NUMA counts, modules, user, vm_map_ram", function()
    memprobe.config(H.fixture("linux-2.6-slab"))
    local v = assert(memprobe.vmallocinfo{ areas = true })
    local r = check_all("spec/fixtures/linux-2.6-slab/proc/vmallocinfo", v)
    assert.are.equal(9, v.totals.count)
    assert.are.same({ caller = "nv_vmalloc", module = "nvidia", count = 2,
                      virtual = 106496 + 65536, pages = 40, bytes = 40 * pagesize },
                    v.by_caller[1])
    assert.are.equal(1, v.by_kind.vm_map_ram.count)
    assert.are.equal(2, v.by_kind.vmap.count)
    assert.are.equal(1, v.by_kind.ioremap.count)
    assert.are.equal(5, v.by_kind.vmalloc.count)
    assert.are.equal("7fef0000", v.areas[1].phys)
    assert.are.equal("snd_page_alloc", v.areas[8].module)
    assert.is_true(v.areas[9].vpages)
    local mods = {}
    for _, e in ipairs(v.by_module) do mods[e.module] = e.count end
    assert.are.same({ vmlinux = 4, nvidia = 2, xfs = 1, snd_page_alloc = 1 }, mods)
    assert.are.equal(2 + 4 + 25 + 15 + 16, r.pages)
  end)

  it("sorts by pages or count and keeps the top N", function()
    memprobe.config(H.fixture("linux-6.18"))
    local v = assert(memprobe.vmallocinfo{ sort = "pages", top = 3 })
    assert.are.equal(3, #v.by_caller)
    assert.is_true(v.by_caller[1].pages >= v.by_caller[2].pages)
    assert.is_true(v.by_caller[2].pages >= v.by_caller[3].pages)
    local c = assert(memprobe.vmallocinfo{ sort = "count" })
    for i = 2, #c.by_caller do
      assert.is_true(c.by_caller[i - 1].count >= c.by_caller[i].count)
    end
  end)

  it("never crashes on empty, garbage, truncated or long-line files", function()
    local good = "0x1-0x2 8192 f+0x1/0x2 pages=1 vmalloc N0=1\n"
    local cases = {
      { "", 0, nil },
      { "\0\0\0\n\n", 0, 1 },
      { good .. good:sub(1, 5), 1, 1 },
      { good .. good:sub(1, 20), 2, nil },  -- a cut line can still be a line
      { ("y"):rep(2000000) .. "\n" .. good, 1, 1 },
      { "0x1-0x2 -5 f+0x1/0x2 vmalloc\n" .. good, 1, 1 },
      { "0x1-0x2 8192 f+0 g+0 vmalloc\n0x1-0x2 8192 f+0 pages=x vmalloc\n", 0, 2 },
    }
    for i, case in ipairs(cases) do
      local dir = H.tmpdir{ ["proc/vmallocinfo"] = case[1] }
      memprobe.config{ proc = dir .. "/proc" }
      local v = assert(memprobe.vmallocinfo(), "case " .. i)
      assert.are.equal(case[2], v.totals.count, "case " .. i)
      assert.are.equal(case[3], v.skipped, "case " .. i)
      H.rmdir(dir)
    end
  end)

  it("returns nil, a message and errno when the file is missing", function()
    memprobe.config(H.fixture("linux-2.4-vendor"))
    local r, msg, errno = memprobe.vmallocinfo()
    assert.is_nil(r)
    assert.matches("vmallocinfo: No such file or directory", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("raises on bad arguments", function()
    for _, a in ipairs({ 5, "x", { sort = "c" }, { top = -1 }, { top = 2.5 }, { x = 1 } }) do
      assert.has_error(function() memprobe.vmallocinfo(a) end)
    end
  end)

  it("agrees with meminfo VmallocUsed within 3% on this machine", function()
    if not H.is_root() then pending("needs root: /proc/vmallocinfo is 0400") return end
    local v = assert(memprobe.vmallocinfo())
    local used = assert(memprobe.meminfo()).VmallocUsed
    local ratio = v.totals.vmalloc_bytes / used
    assert(math.abs(ratio - 1) <= 0.03, ("vmalloc areas %d vs VmallocUsed %d"):format(
      v.totals.vmalloc_bytes, used))
  end)

  it("does not create globals", function()
    local before = H.globals()
    memprobe.config(H.fixture("linux-6.18"))
    memprobe.vmallocinfo{ areas = true }
    memprobe.config(H.fixture("linux-6.12-allocprof"))
    memprobe.allocinfo()
    for k in pairs(_G) do assert.is_true(before[k], k) end
  end)
end)

describe("memprobe.allocinfo()", function()
  after_each(function() memprobe.config{} end)

  it("returns bytes and calls per call site, largest first", function()
    memprobe.config(H.fixture("linux-6.12-allocprof"))
    local a = assert(memprobe.allocinfo())
    assert.are.equal("1.0", a.version)
    assert.are.same({ bytes = 167772160 + 1048576 + 54525952 + 4096,
                      calls = 40960 + 256 + 13312 + 1, sites = 5 }, a.totals)
    assert.are.same({
      { bytes = 167772160, calls = 40960, file = "mm/filemap.c", line = 1981,
        func = "__filemap_get_folio" },
      { bytes = 54525952, calls = 13312, file = "mm/slub.c", line = 2452,
        func = "alloc_slab_page" },
      { bytes = 1048576, calls = 256, file = "drivers/gpu/drm/drm_gem.c", line = 121,
        module = "drm", func = "drm_gem_object_init" },
      { bytes = 4096, calls = 1, file = "fs/weird:name.c", line = 7, func = "odd",
        accurate = false },
      { bytes = 0, calls = 0, file = "init/main.c", line = 1310, func = "do_initcalls" },
    }, a.sites)
    local top = assert(memprobe.allocinfo{ top = 2 })
    assert.are.equal(2, #top.sites)
    assert.are.equal(5, top.totals.sites)
  end)

  it("returns nil and the hint where the kernel has no allocation profiling", function()
    memprobe.config(H.fixture("linux-6.18"))
    local r, msg, errno = memprobe.allocinfo()
    assert.is_nil(r)
    assert.matches("allocinfo: No such file or directory (needs kernel 6.10+ with " ..
                   "CONFIG_MEM_ALLOC_PROFILING)", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("returns nil and a message without the header, and skips bad lines", function()
    local dir = H.tmpdir{ ["proc/allocinfo"] = "garbage\n" }
    memprobe.config{ proc = dir .. "/proc" }
    local r, msg = memprobe.allocinfo()
    assert.is_nil(r)
    assert.matches("no 'allocinfo - version:' header", msg, 1, true)
    H.rmdir(dir)
    dir = H.tmpdir{ ["proc/allocinfo"] = "allocinfo - version: 1.0\n1 2 nocolon func:x\n" ..
      "x y a.c:1 func:f\n 5 1 a.c:3 func:g\n12 3 a.c:4" }
    memprobe.config{ proc = dir .. "/proc" }
    local a = assert(memprobe.allocinfo())
    assert.are.equal(1, #a.sites)
    assert.are.equal(3, a.skipped)
    H.rmdir(dir)
  end)

  it("raises on bad arguments", function()
    for _, a in ipairs({ 5, { sort = "size" }, { top = 0 }, { areas = true } }) do
      assert.has_error(function() memprobe.allocinfo(a) end)
    end
  end)
end)
