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

  -- A child in its own mount namespace with the kernel's drop_caches (or
  -- another procfs file) bound into a fixture tree: the report logic runs
  -- against fixture meminfo/vmstat while the write goes to procfs.
  local function bound(files, target, code)
    if not H.is_root() or not H.run("command -v unshare") then return nil end
    files["proc/sys/vm/drop_caches"] = ""
    local dir = H.tmpdir(files)
    local f = dir .. "/proc/sys/vm/drop_caches"
    local out = child(("unshare -m sh -c 'mount --bind %s %s && exec \"$@\"' -")
                      :format(target, f),
                      ("local m = require(\"memprobe\") m.config{ proc = %q } %s")
                      :format(dir .. "/proc", code))
    return out, dir
  end

  it("writes the level to procfs and reports before/after from free()", function()
    local out, dir = bound({
      ["proc/meminfo"] = H.slurp("spec/fixtures/linux-6.18/proc/meminfo"),
      ["proc/vmstat"] = H.slurp("spec/fixtures/linux-6.18/proc/vmstat"),
    }, "/proc/sys/vm/drop_caches", [[
      local f = m.free()
      for level = 1, 3 do
        local ok, r = m.drop_caches(level)
        print(ok, r.level, r.before.total == f.total, r.after.free == f.free, r.freed,
              r.confirmed)
      end]])
    if out == nil then pending("needs root, unshare and mount") return end
    H.rmdir(dir)
    -- the fixture's counters cannot move: not confirmed
    assert.are.equal("true\t1\ttrue\ttrue\t0\tfalse\n" ..
                     "true\t2\ttrue\ttrue\t0\tfalse\n" ..
                     "true\t3\ttrue\ttrue\t0\tfalse\n", out)
  end)

  it("leaves confirmed nil when vmstat has no drop counters", function()
    local out, dir = bound({
      ["proc/meminfo"] = H.slurp("spec/fixtures/linux-6.18/proc/meminfo"),
      ["proc/vmstat"] = "nr_free_pages 5\n",
    }, "/proc/sys/vm/drop_caches", [[
      local ok, r = m.drop_caches(2) print(ok, r.confirmed)]])
    if out == nil then pending("needs root, unshare and mount") return end
    H.rmdir(dir)
    assert.are.equal("true\tnil\n", out)
  end)

  -- Under a config{} root, drop_caches as root once wrote "1\n" over
  -- whatever <root>/sys/vm/drop_caches was, through symlinks, and said
  -- true. Only procfs is written now, and nothing is truncated.
  it("refuses a regular file, a symlink and a FIFO, and leaves them as they were", function()
    local victim = H.tmpdir{ ["precious"] = "do not overwrite\n" }
    local cases = {
      file = "echo junk > %s",
      symlink = "ln -s " .. victim .. "/precious %s",
      fifo = "mkfifo %s",
      dir = "mkdir %s",
    }
    for name, make in pairs(cases) do
      local dir = H.tmpdir{ ["proc/meminfo"] = H.slurp("spec/fixtures/linux-6.18/proc/meminfo") }
      local f = dir .. "/proc/sys/vm/drop_caches"
      assert(os.execute("mkdir -p " .. dir .. "/proc/sys/vm && " .. make:format(f)))
      memprobe.config{ proc = dir .. "/proc" }
      local r, msg, errno = memprobe.drop_caches(1)
      memprobe.config{}
      assert.is_nil(r, name)
      assert.are.equal(f .. ": not a procfs file (only the kernel's drop_caches " ..
                       "is written; symlinks are not followed)", msg, name)
      assert.are.equal(0, errno, name)
      if name == "file" then assert.are.equal("junk\n", H.slurp(f)) end
      H.rmdir(dir)
    end
    assert.are.equal("do not overwrite\n", H.slurp(victim .. "/precious"))
    H.rmdir(victim)
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
    local out = H.nobody("-e '" .. print_drop .. "'")
    assert.are.equal("nil\t/proc/sys/vm/drop_caches: Permission denied " ..
                     "(needs root (euid 0))\t13\nexit 0\n", out)
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
    -- pid_max refuses anything below 301, so writing 1 changes nothing
    local pid_max = H.slurp("/proc/sys/kernel/pid_max")
    local out, dir = bound({ ["proc/meminfo"] = H.slurp("/proc/meminfo") },
                           "/proc/sys/kernel/pid_max", "print(m.drop_caches(1))")
    if out == nil then pending("needs root, unshare and mount") return end
    H.rmdir(dir)
    assert.are.equal(pid_max, H.slurp("/proc/sys/kernel/pid_max"))
    assert.are.equal("nil\t" .. dir .. "/proc/sys/vm/drop_caches: Invalid argument " ..
                     "(the kernel refused the value)\t22\n", out)
  end)

  it("does not create globals", function()
    local before = H.globals()
    pcall(memprobe.drop_caches, 9)
    for k in pairs(_G) do assert.is_true(before[k], k) end
  end)
end)
