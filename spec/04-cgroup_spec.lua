local memprobe = require "memprobe"
local H = require "spec.helper"

local MiB = 1024 * 1024
local V1_LEAF = "/process_api/caa80e32979ebd7e17d6fb80e6b30cea"
local V1_DIR = "spec/fixtures/linux-6.18/sys/fs/cgroup/memory" .. V1_LEAF .. "/"
local V2_DIR = "spec/fixtures/cgroup-v2-nested/sys/fs/cgroup/app.slice/game.service/"

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

local function with_tree(dir, fn)
  memprobe.config{ proc = dir .. "/proc", sys = dir .. "/sys" }
  local ok, a, b, c = pcall(fn)
  memprobe.config{}
  H.rmdir(dir)
  assert(ok, a)
  return a, b, c
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
      dir = "/sys/fs/cgroup/memory" .. g.path:gsub("/$", "")
      local lim = tonumber(H.slurp(dir .. "/memory.limit_in_bytes"))
      assert.are.equal(lim < 9223372036854771712 and lim or nil, g.limit)
      local usage = tonumber(H.slurp(dir .. "/memory.usage_in_bytes"))
      assert(math.abs(g.usage - usage) < 8 * MiB, "usage")
    else
      assert.are.equal(text:match("0::(%S+)"), g.path)
      local path = g.path:gsub("/$", "")
      dir = "/sys/fs/cgroup" .. path
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
