local memprobe = require "memprobe"
local H = require "spec.helper"

local MiB = 1024 * 1024
local V1_LEAF = "/process_api/caa80e32979ebd7e17d6fb80e6b30cea"
local V1_DIR = "spec/fixtures/linux-6.18/sys/fs/cgroup/memory" .. V1_LEAF .. "/"
local V2_DIR = "spec/fixtures/cgroup-v2-nested/sys/fs/cgroup/app.slice/game.service/"
local DOCKER = "/docker/4f1c0e6d2b9a8c7e5d3f1a2b4c6d8e0f9a7b5c3d1e2f4a6b8c0d2e4f6a8b0c2d"
local POD = "/kubepods.slice/kubepods-burstable.slice/"
  .. "kubepods-burstable-pod0f3d5c8e_6b2a_4d1e_9c7f_2a8b4e6d1c3f.slice/"
  .. "cri-containerd-9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d.scope"

-- An independent parse of a "key value" file.
local function pairs_of(path)
  local t = {}
  for k, v in assert(H.slurp(path), path):gmatch("(%S+) (%d+)") do t[k] = tonumber(v) end
  return t
end

-- A copy of the nested v2 fixture with some files replaced.
local function v2_tree(over)
  local files = {
    ["proc/self/cgroup"] = "0::/app.slice/game.service\n",
    ["sys/fs/cgroup/cgroup.controllers"] = "memory\n",
    ["sys/fs/cgroup/app.slice/memory.max"] = "536870912\n",
    ["sys/fs/cgroup/app.slice/game.service/memory.max"] = "max\n",
    ["sys/fs/cgroup/app.slice/game.service/memory.current"] = "1000\n",
  }
  for k, v in pairs(over) do files[k] = v or nil end
  return H.tmpdir(files)
end

-- This machine's mount of the v1 memory or the v2 hierarchy, read in Lua
-- from /proc/self/mountinfo: the directory of cgroup `path`, or nil.
local function mounted_dir(version, path)
  local function unescape(s)
    return (s:gsub("\\(%d%d%d)", function(o) return string.char(tonumber(o, 8)) end))
  end
  for line in (H.slurp("/proc/self/mountinfo") or ""):gmatch("[^\n]+") do
    local root, point, fs, opts =
      line:match("^%S+ %S+ %S+ (%S+) (%S+) %S+ .-%- (%S+) %S+ (%S+)")
    if fs == (version == 2 and "cgroup2" or "cgroup")
        and (version == 2 or ("," .. opts .. ","):find(",memory,", 1, true)) then
      root, point = unescape(root):gsub("/$", ""), unescape(point)
      if path == root or path:sub(1, #root + 1) == root .. "/" then
        return point .. path:sub(#root + 1):gsub("/$", "")
      end
    end
  end
end

local function with_tree(dir, fn)
  memprobe.config{ proc = dir .. "/proc", sys = dir .. "/sys" }
  local ok, a, b, c = pcall(fn)
  memprobe.config{}
  H.rmdir(dir)
  assert(ok, a)
  return a, b, c
end

-- cgroup() on a tree of these /proc/self/cgroup and mountinfo and files.
local function mounted(cgroup, mountinfo, files)
  files["proc/self/cgroup"] = cgroup
  files["proc/self/mountinfo"] = mountinfo
  return with_tree(H.tmpdir(files), memprobe.cgroup)
end

-- Checks each field of want against g; NONE stands for nil.
local NONE = {}
local function expect(g, want)
  for k, v in pairs(want) do
    if v == NONE then assert.is_nil(g[k], k) else assert.are.same(v, g[k], k) end
  end
end

-- cgroup() on fixture tree `name`.
local function on_fixture(name)
  memprobe.config(H.fixture(name))
  return assert(memprobe.cgroup())
end

describe("memprobe.cgroup()", function()
  after_each(function() memprobe.config{} end)

  it("reads the memory controller on v1 on the hybrid 6.18 host", function()
    memprobe.config(H.fixture("linux-6.18"))
    local g = assert(memprobe.cgroup())
    local stat = pairs_of(V1_DIR .. "memory.stat")
    assert.are.equal(1, g.version)
    assert.are.equal(V1_LEAF, g.path)
    assert.are.equal(23400448, g.usage)
    assert.is_nil(g.limit)              -- 9223372036854771712
    assert.is_nil(g.effective_limit)
    assert.is_nil(g.limited_by)
    assert.are.equal(24092672, g.peak)
    assert.is_nil(g.soft_limit)
    assert.are.equal(23830528, g.memsw_usage)
    assert.is_nil(g.memsw_limit)
    assert.are.equal(0, g.swap_usage)   -- total_swap
    assert.is_nil(g.swap_limit)
    assert.is_nil(g.high)
    assert.are.equal(23400448 - 19660800, g.working_set)
    assert.are.same(stat, g.stat)
    local n = 0
    for _ in pairs(g.stat) do n = n + 1 end
    assert.are.equal(42, n)
    assert.are.same({ failcnt = 0, oom_kill_disable = 0, under_oom = 0, oom_kill = 0 }, g.events)
  end)

  it("reads a v2 cgroup two levels deep, limited by its parent", function()
    memprobe.config(H.fixture("cgroup-v2-nested"))
    local g = assert(memprobe.cgroup())
    assert.are.equal(2, g.version)
    assert.are.equal("/app.slice/game.service", g.path)
    assert.are.equal(268435456, g.usage)
    assert.is_nil(g.limit)               -- "max"
    assert.are.equal(536870912, g.effective_limit)
    assert.are.equal("/app.slice", g.limited_by)
    assert.is_nil(g.high)
    assert.are.equal(402653184, g.peak)
    assert.are.equal(8388608, g.swap_usage)
    assert.are.equal(1073741824, g.swap_limit)
    assert.are.equal(268435456 - 83886080, g.working_set)
    assert.are.same(pairs_of(V2_DIR .. "memory.stat"), g.stat)
    assert.are.equal(812345, g.stat.pgfault)
    assert.are.same({ low = 0, high = 0, max = 17, oom = 2, oom_kill = 1, oom_group_kill = 0 },
      g.events)
    assert.is_nil(g.memsw_usage)
    assert.is_nil(g.soft_limit)
  end)

  it("names the leaf when its own limit is the smallest", function()
    local g = with_tree(v2_tree{
      ["sys/fs/cgroup/app.slice/game.service/memory.max"] = "104857600\n",
      ["sys/fs/cgroup/app.slice/game.service/memory.high"] = "94371840\n",
    }, memprobe.cgroup)
    assert.are.equal(104857600, g.limit)
    assert.are.equal(104857600, g.effective_limit)
    assert.are.equal("/app.slice/game.service", g.limited_by)
    assert.are.equal(94371840, g.high)
    assert.is_nil(g.stat)
    assert.is_nil(g.events)
    assert.is_nil(g.working_set)
  end)

  it("finds cgroup2 at fs/cgroup/unified when fs/cgroup is not it", function()
    local g = with_tree(H.tmpdir{
      ["proc/self/cgroup"] = "1:name=systemd:/\n0::/a\n",
      ["sys/fs/cgroup/unified/cgroup.controllers"] = "memory\n",
      ["sys/fs/cgroup/unified/a/memory.current"] = "4096\n",
      ["sys/fs/cgroup/unified/a/memory.max"] = "9223372036854775807\n",
    }, memprobe.cgroup)
    assert.are.equal(2, g.version)
    assert.are.equal(4096, g.usage)
    assert.is_nil(g.limit)
    assert.is_nil(g.effective_limit)
  end)

  it("takes every v1 ancestor's limit into account", function()
    local base = "sys/fs/cgroup/memory/"
    local g = with_tree(H.tmpdir{
      ["proc/self/cgroup"] = "5:cpu,memory:/a/b/c\n0::/\n",
      [base .. "memory.limit_in_bytes"] = "9223372036854771712\n",
      [base .. "a/memory.limit_in_bytes"] = "2147483648\n",
      [base .. "a/b/memory.limit_in_bytes"] = "1073741824\n",
      [base .. "a/b/c/memory.limit_in_bytes"] = "9223372036854771712\n",
      [base .. "a/b/c/memory.usage_in_bytes"] = "65536\n",
    }, memprobe.cgroup)
    assert.are.equal(1, g.version)
    assert.are.equal("/a/b/c", g.path)
    assert.is_nil(g.limit)
    assert.are.equal(1073741824, g.effective_limit)
    assert.are.equal("/a/b", g.limited_by)
    assert.are.same({}, g.events)
  end)

  it("reads the hierarchy root when the path is not visible (a container)", function()
    local g = with_tree(H.tmpdir{
      ["proc/self/cgroup"] = "4:memory:/docker/0123abcd\n",
      ["sys/fs/cgroup/memory/memory.usage_in_bytes"] = "8192\n",
      ["sys/fs/cgroup/memory/memory.limit_in_bytes"] = "268435456\n",
    }, memprobe.cgroup)
    assert.are.equal("/docker/0123abcd", g.path)
    assert.are.equal(8192, g.usage)
    assert.are.equal(268435456, g.limit)
    assert.are.equal("/", g.limited_by)
  end)

  it("finds memory co-mounted with cpu through mountinfo", function()
    local dir = "spec/fixtures/cgroup-v1-comount/sys/fs/cgroup/cpu,memory/batch/etl/"
    expect(on_fixture("cgroup-v1-comount"), {
      version = 1, path = "/batch/etl", usage = 1207959552, limit = NONE,
      effective_limit = 4294967296, limited_by = "/batch", peak = 1493172224,
      soft_limit = 1073741824, working_set = 1207959552 - 603979776,
      stat = pairs_of(dir .. "memory.stat"),
      events = { failcnt = 0, oom_kill_disable = 0, under_oom = 0, oom_kill = 0 },
    })
  end)

  it("reads a cgroup below a docker container's mount of its own cgroup (v1)", function()
    local dir = "spec/fixtures/container-v1-docker/sys/fs/cgroup/memory/build/"
    expect(on_fixture("container-v1-docker"), {
      version = 1, path = DOCKER .. "/build",
      usage = 524288000,   -- build's, not the container's 713031680
      limit = NONE, peak = 612368384, soft_limit = 268435456, memsw_usage = 524288000,
      -- the container's limit, at the mount's root, named by its cgroup path
      effective_limit = 1073741824, limited_by = DOCKER,
      stat = pairs_of(dir .. "memory.stat"),
      events = { failcnt = 3, oom_kill_disable = 0, under_oom = 0, oom_kill = 1 },
    })
  end)

  it("names a kubernetes container's own cgroup when its mount root sets the limit (v2)", function()
    local g = on_fixture("container-v2-nocgroupns")
    expect(g, {
      version = 2, path = POD, usage = 402653184, limit = 536870912,
      effective_limit = 536870912, limited_by = POD, high = NONE, swap_limit = 0,
      working_set = 402653184 - 62914560,
      events = { low = 0, high = 0, max = 4, oom = 0, oom_kill = 0, oom_group_kill = 0 },
    })
    assert.are.equal(1733305, g.stat.pgfault)
  end)

  it("reads a RHEL 6 /cgroup/memory mount next to the sys root", function()
    local dir = "spec/fixtures/rhel6-cgroup/cgroup/memory/webapps/tomcat/"
    expect(on_fixture("rhel6-cgroup"), {
      version = 1, path = "/webapps/tomcat", usage = 1503657984,
      limit = NONE, soft_limit = NONE, memsw_limit = NONE,   -- 9223372036854775807
      effective_limit = 2147483648, limited_by = "/webapps", peak = 1610612736,
      memsw_usage = 1520435200, swap_usage = 16777216,
      working_set = 1503657984 - 314572800,
      stat = pairs_of(dir .. "memory.stat"),
      events = { failcnt = 0, oom_kill_disable = 0, under_oom = 0 },
    })
  end)

  it("decodes a mount point with an escaped space", function()
    expect(on_fixture("cgroup-v1-escaped"), {
      version = 1, path = "/batch jobs/nightly", usage = 335544320,
      effective_limit = 805306368, limited_by = "/batch jobs",
      working_set = 335544320 - 62914560,
    })
  end)

  it("decodes escaped blanks and backslashes in a mount's root", function()
    local g = mounted("0::/ci\\runner pool/job\t7\n",
      "30 1 0:27 /ci\\134runner\\040pool /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", {
        ["sys/fs/cgroup/memory.max"] = "1048576\n",
        ["sys/fs/cgroup/job\t7/memory.current"] = "4096\n",
      })
    expect(g, { path = "/ci\\runner pool/job\t7", usage = 4096, effective_limit = 1048576,
                limited_by = "/ci\\runner pool" })
  end)

  it("maps a mount point outside /sys under the directory holding the sys root", function()
    local dir = H.tmpdir{
      ["proc/self/cgroup"] = "3:memory:/a\n",
      ["proc/self/mountinfo"] = "9 1 0:21 / /opt/cg rw - cgroup cgroup rw,memory\n",
      ["host/opt/cg/a/memory.usage_in_bytes"] = "8192\n",
    }
    memprobe.config{ proc = dir .. "/proc", sys = dir .. "/host/sys/" }
    local g = memprobe.cgroup()
    memprobe.config{ proc = dir .. "/proc", sys = "sys" }   -- relative: under "."
    local r, msg = memprobe.cgroup()
    memprobe.config{}
    H.rmdir(dir)
    assert.are.equal(8192, g.usage)
    assert.is_nil(r)
    assert.matches("under the cgroup mounts of " .. dir .. "/proc/self/mountinfo", msg, 1, true)
  end)

  it("picks the mount that holds the cgroup, then the one under /sys/fs/cgroup", function()
    local mi = table.concat({
      -- a bind mount of another part of the hierarchy
      "50 1 0:32 /other /srv/cg rw - cgroup cgroup rw,memory",
      -- shared subtrees repeat a mount elsewhere (Bedrock Linux strata)
      "51 1 0:32 / /bedrock/strata/arch/sys/fs/cgroup/memory rw shared:13 - cgroup x rw,memory",
      "52 1 0:32 / /sys/fs/cgroup/memory rw shared:13 - cgroup cgroup rw,memory",
      "53 1 0:32 / /bedrock/strata/kde/sys/fs/cgroup/memory rw shared:13 - cgroup x rw,memory",
      -- a name=memory hierarchy and a fuse look-alike are not it
      "54 1 0:40 / /sys/fs/cgroup/x rw - cgroup cgroup rw,name=memory",
      "55 1 0:41 / /sys/fs/cgroup/y rw - fuse.lxcfs lxcfs rw,memory",
    }, "\n") .. "\n"
    local g = mounted("4:memory:/a\n", mi, {
      ["sys/fs/cgroup/memory/a/memory.usage_in_bytes"] = "1\n",
      ["srv/cg/a/memory.usage_in_bytes"] = "2\n",
      ["bedrock/strata/arch/sys/fs/cgroup/memory/a/memory.usage_in_bytes"] = "3\n",
      ["sys/fs/cgroup/x/a/memory.usage_in_bytes"] = "4\n",
      ["sys/fs/cgroup/y/a/memory.usage_in_bytes"] = "5\n",
    })
    assert.are.equal(1, g.usage)
  end)

  it("takes the later of two mounts at the same point", function()
    local g = mounted("0::/q\n", "30 1 0:27 /x /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
      .. "31 30 0:28 /y /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", {
        ["sys/fs/cgroup/memory.current"] = "77\n",
        ["sys/fs/cgroup/memory.max"] = "100\n",
      })
    expect(g, { usage = 77, path = "/q", limited_by = "/y" })
  end)

  it("reads the whole hierarchy under a sys root that has it (a host's /sys)", function()
    -- the process's own mount is its container's cgroup; the sys root
    -- given to config{} is the host's, where the full path is
    local g = mounted("9:memory:/docker/c1\n",
      "40 31 0:32 /docker/c1 /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n", {
        ["sys/fs/cgroup/memory/memory.usage_in_bytes"] = "999999\n",
        ["sys/fs/cgroup/memory/docker/memory.limit_in_bytes"] = "1048576\n",
        ["sys/fs/cgroup/memory/docker/c1/memory.usage_in_bytes"] = "4096\n",
      })
    expect(g, { usage = 4096, effective_limit = 1048576, limited_by = "/docker" })
  end)

  it("reads the mount itself for a cgroup outside the mount's root or namespace", function()
    for _, path in ipairs{ "/elsewhere", "/../../user.slice/x", "/pod/../x" } do
      local g = mounted("0::" .. path .. "\n",
        "30 1 0:27 /pod /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", {
          ["sys/fs/cgroup/memory.current"] = "5\n",
          ["sys/fs/cgroup/memory.max"] = "10\n",
        })
      assert.are.equal(5, g.usage, path)
      assert.are.equal("/pod", g.limited_by, path)
    end
  end)

  it("keeps the usual places for a hierarchy mountinfo does not mount", function()
    local g = with_tree(v2_tree{
      ["proc/self/mountinfo"] = "22 27 0:20 / /sys rw - sysfs sysfs rw\n"
        .. "31 22 0:25 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n"
        .. "32 31 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
    }, memprobe.cgroup)
    assert.are.equal(2, g.version)
    assert.are.equal(1000, g.usage)
    assert.are.equal("/app.slice", g.limited_by)
  end)

  it("returns nil and a message when the process is in no memory cgroup", function()
    for _, files in ipairs{
      { ["proc/self/cgroup"] = "0::/\n", ["sys/fs/cgroup/cgroup.controllers"] = "memory\n" },
      { ["proc/self/cgroup"] = "3:cpu:/x\n2:pids:/\n" },
      { ["proc/self/cgroup"] = "" },
      { ["proc/self/cgroup"] = "4:memory:/gone\n" },
    } do
      local r, msg, errno = with_tree(H.tmpdir(files), memprobe.cgroup)
      assert.is_nil(r)
      assert.matches("not in a memory cgroup", msg, 1, true)
      assert.are.equal(2, errno)
    end
  end)

  it("returns nil, a message naming the file, and errno without /proc/self/cgroup", function()
    memprobe.config{ proc = "/nonexistent", sys = "/nonexistent" }
    local r, msg, errno = memprobe.cgroup()
    assert.is_nil(r)
    assert.matches("/nonexistent/self/cgroup: No such file", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("returns a table or nil and a message for files no kernel writes", function()
    local junk = {
      "", "max max\n", "12 kB\n", "\0\1\255", "-5\n", ("9"):rep(10240),
      ("x"):rep(10240) .. " 5\n", "99999999999999999999999\n", "0::\n", ":::/\n",
    }
    for i, s in ipairs(junk) do
      for _, files in ipairs{
        { ["proc/self/cgroup"] = s },
        { ["proc/self/mountinfo"] = s },
        { ["proc/self/mountinfo"] = "1 2 3:4 / /sys/fs/cgroup - - cgroup2 cgroup2 " .. s },
        { ["proc/self/mountinfo"] = "1 2 3:4 " .. s .. " /sys/fs/cgroup rw - cgroup2 x rw\n" },
        { ["sys/fs/cgroup/app.slice/game.service/memory.current"] = s,
          ["sys/fs/cgroup/app.slice/game.service/memory.stat"] = s,
          ["sys/fs/cgroup/app.slice/game.service/memory.events"] = s,
          ["sys/fs/cgroup/app.slice/memory.max"] = s },
      } do
        local r, msg = with_tree(v2_tree(files), memprobe.cgroup)
        assert(type(r) == "table" or (r == nil and type(msg) == "string"), i)
        if r then assert(r.usage == nil or r.usage >= 0, i) end
      end
    end
    local g = with_tree(v2_tree{ ["sys/fs/cgroup/app.slice/memory.max"] = "lots\n" },
      memprobe.cgroup)
    assert.is_nil(g.effective_limit)
  end)

  it("agrees with the files of this machine's memory cgroup, read in Lua", function()
    local g, msg = memprobe.cgroup()
    if not g then pending(msg) return end
    local text = assert(H.slurp("/proc/self/cgroup"))
    local dir
    if g.version == 1 then
      assert.are.equal(text:match("%d+:[%w,]*memory[%w,]*:(%S+)"), g.path)
      dir = mounted_dir(1, g.path) or "/sys/fs/cgroup/memory" .. g.path:gsub("/$", "")
      local lim = tonumber(H.slurp(dir .. "/memory.limit_in_bytes"))
      assert.are.equal(lim < 9223372036854771712 and lim or nil, g.limit)
      local usage = tonumber(H.slurp(dir .. "/memory.usage_in_bytes"))
      assert(math.abs(g.usage - usage) < 8 * MiB, "usage")
    else
      assert.are.equal(text:match("0::(%S+)"), g.path)
      local path = g.path:gsub("/$", "")
      dir = mounted_dir(2, g.path) or "/sys/fs/cgroup" .. path
      if not H.slurp(dir .. "/memory.current") then dir = "/sys/fs/cgroup/unified" .. path end
      local lim = H.slurp(dir .. "/memory.max")
      assert.are.equal(lim and tonumber(lim), g.limit)
      local usage = tonumber(H.slurp(dir .. "/memory.current"))
      assert(math.abs(g.usage - usage) < 8 * MiB, "usage")
    end
    local stat = pairs_of(dir .. "/memory.stat")
    for k in pairs(stat) do assert.is_not_nil(g.stat[k], k) end
    for k in pairs(g.stat) do assert.is_not_nil(stat[k], k) end
    assert.is_true(g.working_set <= g.usage)
  end)

  it("raises when given an argument", function()
    for _, bad in ipairs{ {}, 1, "x" } do
      local ok, err = pcall(function() local r = memprobe.cgroup(bad) return r end)
      assert.is_false(ok)
      assert.matches("#1 to '[%w.]*cgroup' %(no arguments expected%)", err)
    end
  end)

  it("does not create globals", function()
    local before = H.globals()
    memprobe.cgroup()
    memprobe.config(H.fixture("cgroup-v2-nested"))
    memprobe.cgroup()
    for k in pairs(_G) do assert.is_true(before[k], k) end
  end)
end)
