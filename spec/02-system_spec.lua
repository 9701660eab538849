local memprobe = require "memprobe"
local H = require "spec.helper"

local KiB = 1024
local pagesize = memprobe.pagesize()
local F618 = "spec/fixtures/linux-6.18"
local F316 = "spec/fixtures/linux-3.16-i686-highmem"
local F515 = "spec/fixtures/linux-5.15-numa2"

local function lines(path)
  return assert(H.slurp(path), path):gmatch("[^\n]+")
end

-- An independent reading of /proc/zoneinfo: what a zone holds, with the
-- derived fields memprobe adds, built line by line with patterns.
local function zoneinfo_ref(path)
  local zones, stats, cur, block = {}, {}, nil, nil
  for line in lines(path) do
    local node, name = line:match("^Node (%d+), zone%s+(%S+)$")
    if node then
      cur = { node = tonumber(node), zone = name }
      zones[#zones + 1] = cur
      block = "zone"
    elseif cur then
      local indent = #line:match("^ *")
      if line == "  pagesets" then
        block = "pagesets"
      elseif block == "pagesets" and (indent > 2 or line:match("^  vm stats")) then
        block = "pagesets"
      elseif line == "  per-node stats" then
        block = "node"
      else
        if block == "pagesets" then block = "zone" end
        local free = line:match("^  pages free%s+(%d+)$")
        local k, v = line:match("^%s+([%w_]+):?%s+(%d+)$")
        if free then
          block = "zone"
          cur.free = tonumber(free)
        elseif line:match("^%s+protection: %(") then
          cur.protection = {}
          for n in line:gmatch("%d+") do cur.protection[#cur.protection + 1] = tonumber(n) end
        elseif k and block == "node" then
          stats[cur.node] = stats[cur.node] or {}
          stats[cur.node][k] = tonumber(v)
        elseif k then
          cur[k] = tonumber(v)
        end
      end
    end
  end
  for _, z in ipairs(zones) do
    z.node_stats = stats[z.node]
    for _, k in ipairs{ "free", "min", "low", "high", "present", "managed" } do
      if z[k] then z[k .. "_bytes"] = z[k] * pagesize end
    end
    if z.present then z.populated = z.present > 0 end
  end
  return zones
end

local function buddyinfo_ref(path)
  local t = {}
  for line in lines(path) do
    local node, zone, rest = line:match("^Node (%d+), zone%s+(%S+)(.*)$")
    local z = { node = tonumber(node), zone = zone, counts = {}, free_pages = 0 }
    for n in rest:gmatch("%d+") do
      z.counts[#z.counts + 1] = tonumber(n)
      z.free_pages = z.free_pages + tonumber(n) * 2 ^ (#z.counts - 1)
    end
    z.free_bytes = z.free_pages * pagesize
    t[#t + 1] = z
  end
  return t
end

local function node_meminfo_ref(path)
  local t = {}
  for line in lines(path) do
    local k, v, kb = line:match("^Node %d+ ([^:]+):%s+(%d+)%s*(k?B?)$")
    t[k] = tonumber(v) * (kb == "kB" and KiB or 1)
  end
  return t
end

local function pairs_ref(path)
  local t = {}
  for line in lines(path) do
    local k, v = line:match("^(%S+) (%d+)$")
    t[k] = tonumber(v)
  end
  return t
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

local function find(list, f)
  for _, v in ipairs(list) do
    if f(v) then return v end
  end
end

-- Writes files under a fresh temporary root; returns config{} roots.
local made = {}
teardown(function()
  for _, dir in ipairs(made) do os.execute("rm -rf '" .. dir .. "'") end
end)

local function tree(files)
  local dir = os.tmpname()
  os.remove(dir)
  made[#made + 1] = dir
  assert(os.execute("mkdir -p " .. dir .. "/proc " .. dir .. "/sys"))
  for rel, text in pairs(files) do
    local path = dir .. "/" .. rel
    assert(os.execute("mkdir -p " .. path:match("^(.*)/")))
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
  end
  return { proc = dir .. "/proc", sys = dir .. "/sys" }, dir
end

local readers = { "zoneinfo", "buddyinfo", "numa", "swaps", "overcommit", "shm" }

describe("memprobe.zoneinfo()", function()
  after_each(function() memprobe.config{} end)

  it("returns every zone and field of the 6.18 fixture, empty zones included", function()
    memprobe.config(H.fixture("linux-6.18"))
    local z = assert(memprobe.zoneinfo())
    assert.are.same(zoneinfo_ref(F618 .. "/proc/zoneinfo"), z)
    assert.are.equal(5, #z)
    local dma, normal, movable, device = z[1], z[3], z[4], z[5]
    assert.are.same({ 0, "DMA", 3840, 60, 75, 90, 105, 4095, 3998, 3840, 0, 1 },
      { dma.node, dma.zone, dma.free, dma.min, dma.low, dma.high, dma.promo, dma.spanned,
        dma.present, dma.managed, dma.cma, dma.start_pfn })
    assert.are.same({ 0, 3018, 4170, 4170, 4170 }, dma.protection)
    assert.are.equal(3840 * pagesize, dma.free_bytes)
    assert.are.equal(5505024, normal.present)
    assert.are.equal(294912, normal.managed)
    assert.are.equal(1037742, normal.numa_hit)
    assert.are.equal(33792, normal.nr_free_pages_blocks)
    -- the per-cpu "high:" lines must not shadow the watermark
    assert.are.equal(6974, normal.high)
    assert.is_nil(normal.count)
    assert.is_nil(normal.batch)
    assert.are.equal("Movable", movable.zone)
    assert.is_false(movable.populated)
    assert.are.equal(32, movable.min)
    assert.is_nil(movable.nr_free_pages)
    assert.are.same({ 0, 0, 0, 0, 0 }, device.protection)
    assert.are.equal(51, count(dma.node_stats))
    assert.are.equal(169933, dma.node_stats.nr_inactive_file)
    for i = 2, 5 do assert.are.equal(dma.node_stats, z[i].node_stats) end
  end)

  it("reads the 3.10 layout: no per-node stats, scanned, counters before protection", function()
    memprobe.config(H.fixture("linux-3.10-nomemavail"))
    local z = assert(memprobe.zoneinfo())
    assert.are.same(zoneinfo_ref("spec/fixtures/linux-3.10-nomemavail/proc/zoneinfo"), z)
    assert.are.same({ "DMA", "DMA32", "Normal" }, { z[1].zone, z[2].zone, z[3].zone })
    assert.are.equal(0, z[1].scanned)
    assert.are.equal(47820, z[2].nr_free_pages)
    assert.are.same({ 0, 0, 273, 273 }, z[2].protection)
    assert.is_nil(z[1].node_stats)
    assert.is_nil(z[1].boost)
  end)

  it("reads the 3.16 32-bit HIGHMEM layout", function()
    memprobe.config(H.fixture("linux-3.16-i686-highmem"))
    local z = assert(memprobe.zoneinfo())
    assert.are.same(zoneinfo_ref(F316 .. "/proc/zoneinfo"), z)
    assert.are.same({ "DMA", "Normal", "HighMem" }, { z[1].zone, z[2].zone, z[3].zone })
    local high = z[3]
    assert.are.same({ 201457, 128, 160, 192, 296946, 227326, 3, 0 },
      { high.free, high.min, high.low, high.high, high.managed, high.start_pfn,
        high.inactive_ratio, high.all_unreclaimable })
    assert.are.same({ 0, 845, 2005, 2005 }, z[1].protection)
    assert.are.equal(41020, high.nr_active_anon)
    -- HighTotal and LowTotal of meminfo are these zones' managed pages
    local m = H.parse_kv(F316 .. "/proc/meminfo")
    assert.are.equal(m.HighTotal, high.managed * 4 * KiB)
    assert.are.equal(m.HighFree, high.free * 4 * KiB)
    assert.are.equal(m.LowTotal, (z[1].managed + z[2].managed) * 4 * KiB)
    assert.are.equal(m.LowFree, (z[1].free + z[2].free) * 4 * KiB)
  end)

  it("reads two nodes and gives empty zones before the stats their node's table", function()
    memprobe.config(H.fixture("linux-5.15-numa2"))
    local z = assert(memprobe.zoneinfo())
    assert.are.same(zoneinfo_ref(F515 .. "/proc/zoneinfo"), z)
    assert.are.equal(10, #z)
    local n1dma, n1normal = z[6], z[8]
    assert.are.same({ 1, "DMA", false }, { n1dma.node, n1dma.zone, n1dma.populated })
    assert.are.same({ 1, "Normal", 3187522, 8256271 },
      { n1normal.node, n1normal.zone, n1normal.free, n1normal.managed })
    assert.are.equal(n1normal.node_stats, n1dma.node_stats)
    assert.are_not.equal(z[1].node_stats, n1dma.node_stats)
    assert.are.equal(1133052, n1dma.node_stats.nr_inactive_anon)
    assert.are.equal(1420551, z[1].node_stats.nr_inactive_anon)
    assert.are.same({ 0, 0, 32251, 32251, 32251 }, n1dma.protection)
  end)

  it("agrees with /proc/zoneinfo read by awk on this machine", function()
    local out = H.run("awk '/^Node/ { gsub(\",\", \"\"); z = $2 \" \" $4 }"
      .. " $1 == \"spanned\" || $1 == \"present\" { print z, $1, $2 }' /proc/zoneinfo")
    if not out then pending("no /proc/zoneinfo here") return end
    local z = assert(memprobe.zoneinfo())
    local n = 0
    for node, zone, k, v in out:gmatch("(%d+) (%S+) (%S+) (%d+)") do
      local got = find(z, function(x) return x.node == tonumber(node) and x.zone == zone end)
      assert.are.equal(tonumber(v), got and got[k], node .. " " .. zone .. " " .. k)
      n = n + 1
    end
    assert.are.equal(2 * #z, n)
  end)
end)

describe("memprobe.buddyinfo()", function()
  after_each(function() memprobe.config{} end)

  it("returns the counts per order and the free pages and bytes of the 6.18 fixture", function()
    memprobe.config(H.fixture("linux-6.18"))
    local b = assert(memprobe.buddyinfo())
    assert.are.same(buddyinfo_ref(F618 .. "/proc/buddyinfo"), b)
    assert.are.equal(3, #b)
    assert.are.same({ 0, "DMA" }, { b[1].node, b[1].zone })
    assert.are.same({ 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3 }, b[1].counts)
    assert.are.equal(3840, b[1].free_pages)  -- = the zone's "pages free"
    assert.are.equal(3840 * pagesize, b[1].free_bytes)
    assert.are.equal(772808, b[2].free_pages)
    assert.are.equal(170, b[3].counts[1])
    assert.are.equal(30, b[3].counts[11])
  end)

  it("matches each zone's free pages in the hand-made trees", function()
    for _, name in ipairs{ "linux-3.16-i686-highmem", "linux-5.15-numa2" } do
      memprobe.config(H.fixture(name))
      local b = assert(memprobe.buddyinfo())
      local z = assert(memprobe.zoneinfo())
      assert.are.same(buddyinfo_ref("spec/fixtures/" .. name .. "/proc/buddyinfo"), b)
      for _, zone in ipairs(b) do
        local zi = find(z, function(x) return x.node == zone.node and x.zone == zone.zone end)
        assert.are.equal(zi.free, zone.free_pages, name .. " " .. zone.zone)
        assert.are.equal(zi.free_bytes, zone.free_bytes)
      end
    end
    assert.are.same({ 1, "Normal" }, { memprobe.buddyinfo()[4].node, memprobe.buddyinfo()[4].zone })
  end)

  it("lists the zones of /proc/buddyinfo on this machine", function()
    local out = H.slurp("/proc/buddyinfo")
    if not out then pending("no /proc/buddyinfo here") return end
    local b = assert(memprobe.buddyinfo())
    local i = 0
    for node, zone, rest in out:gmatch("Node (%d+), zone%s+(%S+)([^\n]*)") do
      i = i + 1
      assert.are.same({ tonumber(node), zone }, { b[i].node, b[i].zone })
      local cols = 0
      for _ in rest:gmatch("%d+") do cols = cols + 1 end
      assert.are.equal(cols, #b[i].counts)
    end
    assert.are.equal(i, #b)
  end)
end)

describe("memprobe.numa()", function()
  after_each(function() memprobe.config{} end)

  it("returns node 0 of the 6.18 fixture with meminfo, numastat and vmstat", function()
    memprobe.config(H.fixture("linux-6.18"))
    local n = assert(memprobe.numa())
    local dir = F618 .. "/sys/devices/system/node/node0/"
    assert.are.same({ 0 }, n.online)
    assert.is_nil(n.possible)
    assert.are.equal(1, #n.nodes)
    local n0 = n.nodes[1]
    assert.are.equal(0, n0.node)
    assert.are.same(node_meminfo_ref(dir .. "meminfo"), n0.meminfo)
    assert.are.same(pairs_ref(dir .. "numastat"), n0.numastat)
    assert.are.same(pairs_ref(dir .. "vmstat"), n0.vmstat)
    assert.are.equal(36, count(n0.meminfo))
    assert.are.equal(68, count(n0.vmstat))
    assert.are.equal(4286240 * KiB, n0.meminfo.MemTotal)
    assert.are.equal(0, n0.meminfo.HugePages_Total)
    assert.are.equal(3297635, n0.numastat.numa_hit)
    assert.are.equal(1114, n0.numastat.interleave_hit)
    assert.is_nil(n0.distance)
    assert.is_nil(n0.cpus)
    -- the fixture's quirk: the node does not add up to /proc/meminfo
    -- (deferred struct page init); nothing here assumes it does
  end)

  it("returns both nodes of the two-node tree, and they add up to /proc/meminfo", function()
    memprobe.config(H.fixture("linux-5.15-numa2"))
    local n = assert(memprobe.numa())
    local dir = F515 .. "/sys/devices/system/node/"
    assert.are.same({ 0, 1 }, n.online)
    assert.are.same({ 0, 1 }, n.possible)
    assert.are.equal(2, #n.nodes)
    for i, id in ipairs{ 0, 1 } do
      local node = n.nodes[i]
      assert.are.equal(id, node.node)
      assert.are.same(node_meminfo_ref(dir .. "node" .. id .. "/meminfo"), node.meminfo)
      assert.are.same(pairs_ref(dir .. "node" .. id .. "/numastat"), node.numastat)
      assert.is_nil(node.vmstat)
    end
    local n0, n1 = n.nodes[1], n.nodes[2]
    assert.are.same({ 10, 21 }, n0.distance)
    assert.are.same({ 21, 10 }, n1.distance)
    assert.are.same({ 0, 1 }, n0.cpus)
    assert.are.same({ 2, 3 }, n1.cpus)
    assert.are.equal(32697844 * KiB, n0.meminfo.MemTotal)
    assert.are.equal(33025084 * KiB, n1.meminfo.MemTotal)
    assert.are.equal(20311, n1.numastat.numa_miss)
    local m = H.parse_kv(F515 .. "/proc/meminfo")
    for _, k in ipairs{ "MemTotal", "MemFree", "Active(anon)", "Inactive(file)", "Slab" } do
      assert.are.equal(m[k], n0.meminfo[k] + n1.meminfo[k], k)
    end
  end)

  it("returns nil and a message when the kernel has no NUMA node directory", function()
    memprobe.config(H.fixture("linux-3.16-i686-highmem"))
    local r, msg, errno = memprobe.numa()
    assert.is_nil(r)
    assert.matches("devices/system/node/online: No such file", msg, 1, true)
    assert.matches("CONFIG_NUMA", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("expands range lists such as 0-1,3 and rejects what is not one", function()
    local roots = tree{ ["sys/devices/system/node/online"] = "0-1,3\n",
                        ["sys/devices/system/node/possible"] = "0-3\n",
                        ["sys/devices/system/node/node3/cpulist"] = "4-5,7,9-10\n" }
    memprobe.config(roots)
    local n = assert(memprobe.numa())
    assert.are.same({ 0, 1, 3 }, n.online)
    assert.are.same({ 0, 1, 2, 3 }, n.possible)
    assert.are.same({ 4, 5, 7, 9, 10 }, n.nodes[3].cpus)
    assert.is_nil(n.nodes[1].meminfo)
    for _, bad in ipairs{ "1-0\n", "0,,1\n", "x\n", "0-99999999999\n", "-1\n", "0 1\n" } do
      roots = tree{ ["sys/devices/system/node/online"] = bad }
      memprobe.config(roots)
      local r, msg = memprobe.numa()
      assert.is_nil(r, bad)
      assert.matches("not a node list", msg, 1, true)
    end
    memprobe.config(tree{ ["sys/devices/system/node/online"] = "\n" })
    assert.are.same({ online = {}, nodes = {} }, memprobe.numa())
  end)

  it("counts the online nodes of this machine", function()
    local online = H.slurp("/sys/devices/system/node/online")
    if not online then pending("kernel without NUMA nodes") return end
    local n = assert(memprobe.numa())
    local dirs = H.run("ls -d /sys/devices/system/node/node[0-9]* | wc -l")
    assert.are.equal(tonumber(dirs), #n.nodes)
    assert.are.equal(#n.online, #n.nodes)
    local total = 0
    for _, node in ipairs(n.nodes) do
      assert.are.equal(node_meminfo_ref("/sys/devices/system/node/node" .. node.node
        .. "/meminfo").MemTotal, node.meminfo.MemTotal)
      total = total + node.meminfo.MemTotal
    end
    assert.is_true(total > 0)
  end)
end)

describe("memprobe.swaps()", function()
  after_each(function() memprobe.config{} end)

  it("returns an empty list for a header-only file", function()
    memprobe.config(H.fixture("linux-6.18"))
    assert.are.same({}, memprobe.swaps())
  end)

  it("returns a partition and a file in bytes, and they add up to SwapTotal", function()
    memprobe.config(H.fixture("linux-5.15-numa2"))
    local s = assert(memprobe.swaps())
    assert.are.same({
      { filename = "/dev/nvme0n1p3", type = "partition", size = 8388604 * KiB,
        used = 262144 * KiB, priority = -2 },
      { filename = "/swapfile", type = "file", size = 4194300 * KiB, used = 0, priority = -3 },
    }, s)
    local m = H.parse_kv(F515 .. "/proc/meminfo")
    assert.are.equal(m.SwapTotal, s[1].size + s[2].size)
    assert.are.equal(m.SwapTotal - m.SwapFree, s[1].used + s[2].used)
    memprobe.config(H.fixture("linux-3.16-i686-highmem"))
    assert.are.same({ { filename = "/dev/sda5", type = "partition", size = 1046524 * KiB,
      used = 12 * KiB, priority = -1 } }, memprobe.swaps())
  end)

  it("decodes the kernel's octal escapes in file names", function()
    memprobe.config(tree{ ["proc/swaps"] = "Filename Type Size Used Priority\n"
      .. "/var/my\\040swap\\134x file 1024 4 5\n" })
    assert.are.same({ { filename = "/var/my swap\\x", type = "file", size = 1024 * KiB,
      used = 4 * KiB, priority = 5 } }, memprobe.swaps())
  end)

  it("agrees with swapon --show --bytes on this machine", function()
    if not H.slurp("/proc/swaps") then pending("no /proc/swaps") return end
    local s = assert(memprobe.swaps())
    local out = H.run("swapon --show=NAME,TYPE,SIZE,USED,PRIO --bytes --noheadings --raw") or ""
    local i = 0
    for name, typ, size, used, prio in out:gmatch("(%S+) (%S+) (%d+) (%d+) (%-?%d+)") do
      i = i + 1
      assert.are.same({ name, typ, tonumber(size), tonumber(prio) },
        { s[i].filename, s[i].type, s[i].size, s[i].priority })
      assert(math.abs(s[i].used - tonumber(used)) <= 64 * 1024 * 1024)
    end
    assert.are.equal(i, #s)
    local rows = -1
    for _ in lines("/proc/swaps") do rows = rows + 1 end
    assert.are.equal(rows, #s)
  end)
end)

describe("memprobe.overcommit()", function()
  after_each(function() memprobe.config{} end)

  it("returns the policy and the commit figures of the 6.18 fixture", function()
    memprobe.config(H.fixture("linux-6.18"))
    local m = H.parse_kv(F618 .. "/proc/meminfo")
    assert.are.same({
      mode = 0, mode_name = "heuristic", ratio = 50, bytes = 0,
      admin_reserve = 8192 * KiB, user_reserve = 100401 * KiB,
      commit_limit = m.CommitLimit, committed_as = m.Committed_AS,
      headroom = m.CommitLimit - m.Committed_AS,
    }, memprobe.overcommit())
    assert.are.equal(12341808 * KiB, m.CommitLimit)
  end)

  it("reports mode 2 and a CommitLimit that follows the ratio", function()
    memprobe.config(H.fixture("linux-5.15-numa2"))
    local o = assert(memprobe.overcommit())
    local m = H.parse_kv(F515 .. "/proc/meminfo")
    assert.are.same({ 2, "never", 80, 0 }, { o.mode, o.mode_name, o.ratio, o.bytes })
    assert.are.equal(131072 * KiB, o.user_reserve)
    assert.are.equal(65161244 * KiB, o.commit_limit)
    assert.are.equal(38765432 * KiB, o.committed_as)
    assert.are.equal((65161244 - 38765432) * KiB, o.headroom)
    local pages = m.MemTotal / 4096
    assert.are.equal((math.floor(pages * 80 / 100) + m.SwapTotal / 4096) * 4096, o.commit_limit)
  end)

  it("converts overcommit_kbytes and leaves absent files nil", function()
    memprobe.config(tree{ ["proc/sys/vm/overcommit_memory"] = "1\n",
                          ["proc/sys/vm/overcommit_kbytes"] = "1048576\n",
                          ["proc/meminfo"] = "CommitLimit: 100 kB\n" })
    assert.are.same({ mode = 1, mode_name = "always", bytes = 1024 * 1024 * KiB,
                      commit_limit = 100 * KiB }, memprobe.overcommit())
    memprobe.config(tree{ ["proc/sys/vm/overcommit_memory"] = "7\n" })
    assert.are.same({ mode = 7 }, memprobe.overcommit())
  end)

  it("returns nil and a message without overcommit_memory", function()
    memprobe.config{ proc = "/nonexistent" }
    local r, msg, errno = memprobe.overcommit()
    assert.is_nil(r)
    assert.matches("/nonexistent/sys/vm/overcommit_memory: No such file", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("agrees with sysctl and /proc/meminfo on this machine", function()
    local out = H.run("sysctl -n vm.overcommit_memory vm.overcommit_ratio vm.overcommit_kbytes")
    if not out then pending("procps sysctl not installed") return end
    local o = assert(memprobe.overcommit())
    local v = {}
    for n in out:gmatch("%d+") do v[#v + 1] = tonumber(n) end
    assert.are.same({ v[1], v[2], v[3] * KiB }, { o.mode, o.ratio, o.bytes })
    assert.are.equal(H.parse_kv("/proc/meminfo").CommitLimit, o.commit_limit)
    assert.are.equal(o.commit_limit - o.committed_as, o.headroom)
  end)
end)

describe("memprobe.shm()", function()
  after_each(function() memprobe.config{} end)

  local function shm_ref(path)
    local rows, head = {}, nil
    for line in lines(path) do
      local cells = {}
      for c in line:gmatch("%S+") do cells[#cells + 1] = c end
      if not head then
        head = cells
      else
        local r = {}
        for i, name in ipairs(head) do
          r[name] = name == "perms" and tonumber(cells[i], 8) or tonumber(cells[i])
        end
        r.key_hex = ("0x%08x"):format(r.key % 2 ^ 32)
        rows[#rows + 1] = r
      end
    end
    return rows
  end

  it("returns the 6.18 segment and the 64-bit default limits", function()
    memprobe.config(H.fixture("linux-6.18"))
    local s = assert(memprobe.shm())
    assert.are.same(shm_ref(F618 .. "/proc/sysvipc/shm"), s.segments)
    assert.are.same({
      key = 2001904484, key_hex = "0x7752a364", shmid = 0, perms = 420, size = 65536,
      cpid = 5094, lpid = 0, nattch = 0, uid = 0, gid = 0, cuid = 0, cgid = 0,
      atime = 0, dtime = 0, ctime = 1795545117, rss = 0, swap = 0,
    }, s.segments[1])
    assert.are.equal("644", ("%o"):format(s.segments[1].perms))
    -- 18446744073692774399 = 2^64 - 2^24 - 1: no int64 holds it; a float does
    assert.are.equal(2 ^ 64 - 2 ^ 24, s.shmmax)
    assert.are.equal(2 ^ 64 - 2 ^ 24, s.shmall)
    assert.is_true(s.shmmax >= 2 ^ 63)
    assert.are.equal(s.shmall * pagesize, s.shmall_bytes)
    assert.are.equal(4096, s.shmmni)
  end)

  it("keeps negative and zero keys as printed, and 32-bit limits exact", function()
    memprobe.config(H.fixture("linux-5.15-numa2"))
    local s = assert(memprobe.shm())
    assert.are.same(shm_ref(F515 .. "/proc/sysvipc/shm"), s.segments)
    assert.are.equal(3, #s.segments)
    local big, priv = s.segments[2], s.segments[3]
    assert.are.same({ -2130574588, "0x81020304", 1, 2147483648, 1073741824, 8388608, 3 },
      { big.key, big.key_hex, big.shmid, big.size, big.rss, big.swap, big.nattch })
    assert.are.same({ 0, "0x00000000", 32770, "1600" },
      { priv.key, priv.key_hex, priv.shmid, ("%o"):format(priv.perms) })
    assert.are.same({ 68719476736, 4294967296, 4294967296 * pagesize, 4096 },
      { s.shmmax, s.shmall, s.shmall_bytes, s.shmmni })
    memprobe.config(H.fixture("linux-3.16-i686-highmem"))
    s = assert(memprobe.shm())
    assert.are.same(shm_ref(F316 .. "/proc/sysvipc/shm"), s.segments)
    assert.are.equal(4278190079, s.shmmax)
    assert.are.equal(4278190079 * pagesize, s.shmall_bytes)
    assert.are.equal(81920, s.segments[2].swap)
  end)

  it("names fields by the header, so older layouts leave missing columns nil", function()
    memprobe.config(tree{ ["proc/sysvipc/shm"] =
      "       key      shmid perms       size  cpid  lpid nattch   uid   gid  cuid  cgid"
      .. "      atime      dtime      ctime\n"
      .. "         0     131072   600     393216  2279  2347      2  1000  1000  1000  1000"
      .. " 1262304000          0 1262303000\n" })
    local s = assert(memprobe.shm())
    assert.are.equal(393216, s.segments[1].size)
    assert.is_nil(s.segments[1].rss)
    assert.is_nil(s.segments[1].swap)
    assert.is_nil(s.shmmax)
  end)

  it("returns nil and a message without /proc/sysvipc/shm", function()
    memprobe.config(tree{ ["proc/meminfo"] = "" })
    local r, msg, errno = memprobe.shm()
    assert.is_nil(r)
    assert.matches("sysvipc/shm: No such file or directory (kernel built without "
      .. "CONFIG_SYSVIPC)", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("finds a segment made by ipcmk as ipcs -m shows it", function()
    local out = H.run("ipcmk -M 65536")
    local id = out and tonumber(out:match("id: (%d+)"))
    if not id then pending("ipcmk not available") return end
    local ok, err = pcall(function()
      -- other processes may add segments meanwhile: take a reading that
      -- ipcs saw unchanged before and after
      local s, ipcs
      for _ = 1, 5 do
        local before = H.run("ipcs -m")
        s = assert(memprobe.shm())
        ipcs = assert(H.run("ipcs -m"))
        if before == ipcs then break end
      end
      local seg = find(s.segments, function(x) return x.shmid == id end)
      assert.is_table(seg)
      assert.are.equal(65536, seg.size)
      local n = 0
      for key, shmid, perms, bytes, nattch in
          ipcs:gmatch("\n(0x%x+) +(%d+) +%S+ +(%d+) +(%d+) +(%d+)") do
        local x = find(s.segments, function(y) return y.shmid == tonumber(shmid) end)
        assert.are.same({ key, perms, tonumber(bytes), tonumber(nattch) },
          { x.key_hex, ("%o"):format(x.perms), x.size, x.nattch })
        n = n + 1
      end
      assert.are.equal(n, #s.segments)
      assert.are.equal(H.slurp("/proc/sys/kernel/shmmni"):match("%d+"), tostring(s.shmmni))
    end)
    os.execute("ipcrm -m " .. id)
    assert(ok, err)
    assert.is_nil(find(memprobe.shm().segments, function(x) return x.shmid == id end))
  end)
end)

describe("the system readers", function()
  after_each(function() memprobe.config{} end)

  local big = ("9"):rep(5000) .. " " .. ("x"):rep(5000)
  local files = {
    zoneinfo = { "proc/zoneinfo", "Node 0, zone      DMA\n  pages free     38\n        min"
      .. "      6\n        protection: (0, 30" },
    buddyinfo = { "proc/buddyinfo", "Node 0, zone      DMA      0      1      1  " },
    numa = { "sys/devices/system/node/online", "0-" },
    swaps = { "proc/swaps", "Filename Type Size Used Priority\n/dev/sda2 partition 1048" },
    overcommit = { "proc/sys/vm/overcommit_memory", "" },
    shm = { "proc/sysvipc/shm", "key shmid perms size\n 0 1 600" },
  }
  local kinds = {
    { "empty", function() return "" end },
    { "truncated", function(name) return files[name][2] end },
    { "garbage", function() return "\0\1\2 Node Node, zone\n:::: ( ) \255\n--1 -- 0x\n" end },
    { "10 KB lines", function() return big .. "\n" .. big end },
  }

  local function survives(roots, name)
    memprobe.config(roots)
    local ok, r, msg = pcall(memprobe[name])
    assert.is_true(ok, r)
    if r == nil then
      assert.is_string(msg)
    else
      assert.is_table(r)
    end
    return r
  end

  for _, name in ipairs(readers) do
    for _, kind in ipairs(kinds) do
      it(name .. "() survives a " .. kind[1] .. " file", function()
        local text = kind[2](name)
        survives(tree{ [files[name][1]] = text, ["proc/meminfo"] = text }, name)
      end)
    end
  end

  for _, kind in ipairs(kinds) do
    it("numa() survives " .. kind[1] .. " node files", function()
      local text = kind[2]("numa")
      local d = "sys/devices/system/node/node0/"
      local n = survives(tree{ ["sys/devices/system/node/online"] = "0\n",
        [d .. "meminfo"] = text, [d .. "numastat"] = text, [d .. "vmstat"] = text,
        [d .. "distance"] = text, [d .. "cpulist"] = text }, "numa")
      assert.are.equal(0, n.nodes[1].node)
    end)
  end

  it("keep what parses of a truncated file", function()
    memprobe.config(tree{ ["proc/zoneinfo"] = files.zoneinfo[2],
                          ["proc/buddyinfo"] = files.buddyinfo[2],
                          ["proc/swaps"] = files.swaps[2],
                          ["proc/sysvipc/shm"] = files.shm[2] })
    local z = assert(memprobe.zoneinfo())
    assert.are.same({ 38, 6, { 0, 30 } }, { z[1].free, z[1].min, z[1].protection })
    assert.is_nil(z[1].low)
    assert.are.same({ 0, 1, 1 }, assert(memprobe.buddyinfo())[1].counts)
    assert.are.same({}, memprobe.swaps())
    assert.are.same({}, memprobe.shm().segments)
  end)

  it("return nil and a message for a header they do not know", function()
    memprobe.config(tree{ ["proc/swaps"] = "Device Size\n/dev/sda 1\n",
                          ["proc/sysvipc/shm"] = "shmid key\n1 2\n",
                          ["proc/sys/vm/overcommit_memory"] = "heuristic\n" })
    for _, name in ipairs{ "swaps", "shm", "overcommit" } do
      local r, msg, errno = memprobe[name]()
      assert.is_nil(r)
      assert.is_string(msg)
      assert.are.equal(0, errno)
    end
  end)

  it("return nil, a message and errno when /proc is missing", function()
    memprobe.config{ proc = "/nonexistent", sys = "/nonexistent" }
    for _, name in ipairs(readers) do
      local r, msg, errno = memprobe[name]()
      assert.is_nil(r, name)
      assert.matches("^/nonexistent/", msg)
      assert.are.equal(2, errno)
    end
  end)

  local badargs = {
    { "a number", 5 }, { "a string", "x" }, { "a table", {} }, { "a boolean", false },
  }
  for _, name in ipairs(readers) do
    for _, case in ipairs(badargs) do
      it(name .. "() raises when given " .. case[1], function()
        assert.error_matches(function() memprobe[name](case[2]) end,
          "bad argument #1 to '.*' %(no arguments expected%)")
      end)
    end
    it(name .. "() raises on a second argument too", function()
      assert.has_error(function() memprobe[name](nil, 1) end)
    end)
  end

  it("do not create globals", function()
    local before = H.globals()
    memprobe.config(H.fixture("linux-5.15-numa2"))
    for _, name in ipairs(readers) do memprobe[name]() end
    memprobe.config{}
    for _, name in ipairs(readers) do memprobe[name]() end
    for k in pairs(H.globals()) do assert.is_true(before[k], k) end
  end)
end)
