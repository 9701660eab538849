local memprobe = require "memprobe"
local H = require "spec.helper"

-- Runs 'code' under the interpreter running the specs, with this tree's
-- modules, optionally through a wrapper command (setpriv, unshare).
local function child(wrapper, code)
  return H.run(H.lua_cmd("-e '" .. code .. "'", wrapper))
end

local print_drop = "local m = require(\"memprobe\") print(m.drop_caches(1))"

describe("memprobe.drop_caches()", function()
  after_each(function() memprobe.config{} end)

  it("syncs, writes the level and reports before/after without reading the file", function()
    local dir = H.tmpdir{
      ["proc/meminfo"] = H.slurp("spec/fixtures/linux-6.18/proc/meminfo"),
      ["proc/vmstat"] = H.slurp("spec/fixtures/linux-6.18/proc/vmstat"),
      ["proc/sys/vm/drop_caches"] = "junk that must be overwritten\n",
    }
    -- write-only, as in the kernel: a read would fail
    os.execute("chmod 200 '" .. dir .. "/proc/sys/vm/drop_caches'")
    memprobe.config{ proc = dir .. "/proc" }
    for level = 1, 3 do
      local ok, r = memprobe.drop_caches(level)
      assert.is_true(ok)
      assert.are.equal(level, r.level)
      assert.are.same(memprobe.free(), r.before)
      assert.are.same(memprobe.free(), r.after)
      assert.are.equal(0, r.freed)
      -- the fixture's counters cannot move: not confirmed
      assert.is_false(r.confirmed)
      os.execute("chmod 600 '" .. dir .. "/proc/sys/vm/drop_caches'")
      assert.are.equal(level .. "\n", H.slurp(dir .. "/proc/sys/vm/drop_caches"))
      os.execute("chmod 200 '" .. dir .. "/proc/sys/vm/drop_caches'")
    end
    H.rmdir(dir)
  end)

  it("leaves confirmed nil when vmstat has no drop counters", function()
    local dir = H.tmpdir{
      ["proc/meminfo"] = H.slurp("spec/fixtures/linux-6.18/proc/meminfo"),
      ["proc/vmstat"] = "nr_free_pages 5\n",
      ["proc/sys/vm/drop_caches"] = "",
    }
    memprobe.config{ proc = dir .. "/proc" }
    local ok, r = memprobe.drop_caches(2)
    assert.is_true(ok)
    assert.is_nil(r.confirmed)
    H.rmdir(dir)
  end)

  it("returns nil, a message and ENOENT when the file is missing", function()
    memprobe.config(H.fixture("linux-3.10-nomemavail"))
    local r, msg, errno = memprobe.drop_caches(3)
    assert.is_nil(r)
    assert.matches("sys/vm/drop_caches: No such file or directory", msg, 1, true)
    assert.are.equal(2, errno)
  end)

  it("raises on any level but 1, 2 or 3", function()
    for _, a in ipairs({ 0, 4, 10, -1, 1.5, "1", "3", true, {}, 0 / 0 }) do
      local ok, err = pcall(memprobe.drop_caches, a)
      assert.is_false(ok)
      assert.matches("bad argument #1 to '[%w.]*drop_caches' %(level must be 1, 2 or 3%)", err)
    end
    assert.has_error(function() memprobe.drop_caches() end)
  end)

  it("drops the page cache on this machine and the counter confirms it", function()
    if not H.is_root() then pending("needs root") return end
    local ok, r = memprobe.drop_caches(1)
    if not ok then pending("cannot write drop_caches here: " .. tostring(r)) return end
    assert.is_true(r.confirmed)
    assert.are.equal(r.after.free - r.before.free, r.freed)
  end)

  it("returns EACCES and the hint to an unprivileged user", function()
    if not H.is_root() or not H.run("command -v setpriv") then
      pending("needs root and setpriv") return
    end
    local out = child("setpriv --reuid=65534 --regid=65534 --clear-groups", print_drop)
    assert.are.equal("nil\t/proc/sys/vm/drop_caches: Permission denied " ..
                     "(needs root (euid 0))\t13\n", out)
  end)

  it("returns EROFS and the hint where /proc/sys is read-only", function()
    if not H.is_root() or not H.run("command -v unshare") then
      pending("needs root and unshare") return
    end
    local out = child("unshare -m sh -c 'mount -o bind,ro /proc/sys /proc/sys && exec \"$@\"' -",
                      print_drop)
    if out == nil then pending("cannot make a mount namespace here") return end
    assert.are.equal("nil\t/proc/sys/vm/drop_caches: Read-only file system " ..
                     "(/proc/sys is mounted read-only, as in most containers; " ..
                     "run on the host)\t30\n", out)
  end)

  it("returns EINVAL and the hint when the kernel refuses the value", function()
    if not H.is_root() then pending("needs root") return end
    -- pid_max refuses anything below 301, so writing 1 changes nothing
    local dir = H.tmpdir{ ["proc/meminfo"] = H.slurp("/proc/meminfo") }
    os.execute("mkdir -p '" .. dir .. "/proc/sys/vm' && ln -s /proc/sys/kernel/pid_max '" ..
               dir .. "/proc/sys/vm/drop_caches'")
    local pid_max = H.slurp("/proc/sys/kernel/pid_max")
    memprobe.config{ proc = dir .. "/proc" }
    local r, msg, errno = memprobe.drop_caches(1)
    memprobe.config{}
    H.rmdir(dir)
    assert.are.equal(pid_max, H.slurp("/proc/sys/kernel/pid_max"))
    assert.is_nil(r)
    assert.are.equal(dir .. "/proc/sys/vm/drop_caches: Invalid argument " ..
                     "(the kernel refused the value)", msg)
    assert.are.equal(22, errno)
  end)

  it("does not create globals", function()
    local before = H.globals()
    pcall(memprobe.drop_caches, 9)
    for k in pairs(_G) do assert.is_true(before[k], k) end
  end)
end)
