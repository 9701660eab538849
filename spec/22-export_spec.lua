-- memprobe.export against hostile input and a hostile disk: the
-- exposition stays valid for Prometheus, textfile never loses the file.
local H = require "spec.helper"
local memprobe = require "memprobe"
local export = require "memprobe.export"

-- A copy of fixture linux-6.18's /proc in a temp dir, with edits:
-- files[name] = function(content) return new content end.
local function proc_copy(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(H.run(("mkdir -p %s && cp -R spec/fixtures/linux-6.18/proc %s/ && echo ok")
    :format(dir, dir)))
  for name, edit in pairs(files or {}) do
    local path = dir .. "/proc/" .. name
    local s = edit(H.slurp(path))
    if s == nil then os.remove(path) else
      local f = assert(io.open(path, "wb"))
      f:write(s)
      f:close()
    end
  end
  return dir
end

local function exposition(dir, opts)
  memprobe.config{ proc = dir .. "/proc", sys = "spec/fixtures/linux-6.18/sys" }
  local ok, text = pcall(export.prometheus, opts)
  memprobe.config{}
  H.run("rm -rf " .. dir)
  assert(ok, text)
  return text
end

local function promtool(text)
  if not H.run("command -v promtool") then return nil end
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  local out = H.run("promtool check metrics < " .. path .. " 2>&1; echo rc=$?")
  os.remove(path)
  return out
end

local function series(text, name)
  local r = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, #name) == name and line:sub(#name + 1, #name + 1):match("[{ ]") then
      r[#r + 1] = line
    end
  end
  return r
end

describe("memprobe.export.prometheus", function()
  it("repairs invalid UTF-8 in label values", function()
    local dir = proc_copy{ meminfo = function(s) return s .. "Bad\255\192Key: 12 kB\n" end }
    local text = exposition(dir, { slab = false, vmalloc = false })
    assert.matches('memprobe_meminfo_bytes{field="Bad\239\191\189\239\191\189Key"} 12288',
                   text, 1, true)
    assert.is_nil(text:find("\255", 1, true))
    local out = promtool(text)
    if out then assert.matches("rc=0", out, 1, true) end
  end)

  it("keeps valid UTF-8 as it is", function()
    local dir = proc_copy{ meminfo = function(s) return s .. "Gr\195\182\195\159e: 1 kB\n" end }
    local text = exposition(dir, { slab = false, vmalloc = false })
    assert.matches('{field="Gr\195\182\195\159e"} 1024', text, 1, true)
  end)

  it("sums a slab cache the kernel lists twice into one series", function()
    local line
    local dir = proc_copy{ slabinfo = function(s)
      line = s:match("\n(kmalloc%-64 [^\n]*)")
      return s .. line .. "\n"
    end }
    local objs, objsize = line:match("^kmalloc%-64%s+(%d+)%s+%d+%s+(%d+)")
    local text = exposition(dir, { vmalloc = false, top = 1000 })
    local got = series(text, "memprobe_slab_active_objects")
    local n = 0
    for _, l in ipairs(got) do
      if l:find('{cache="kmalloc-64"}', 1, true) then
        n = n + 1
        assert.are.equal(2 * tonumber(objs), tonumber(l:match(" (%S+)$")))
      end
    end
    assert.are.equal(1, n)
    assert.is_truthy(tonumber(objsize))
    local out = promtool(text)
    if out then assert.matches("rc=0", out, 1, true) end
  end)

  it("exports vmalloc memory (pages), not address space", function()
    local text = exposition(proc_copy(), { slab = false, top = 1000 })
    -- pci_mmcfg_arch_map maps 1 MiB of I/O space and holds no pages
    assert.matches('memprobe_vmalloc_bytes{caller="pci_mmcfg_arch_map",module="vmlinux"} 0\n',
                   text, 1, true)
    memprobe.config(H.fixture("linux-6.18"))
    local v = memprobe.vmallocinfo()
    memprobe.config{}
    local total = 0
    for _, c in ipairs(v.by_caller) do total = total + c.bytes end
    local sum = 0
    for _, l in ipairs(series(text, "memprobe_vmalloc_bytes")) do
      sum = sum + tonumber(l:match(" (%S+)$"))
    end
    assert.are.equal(total, sum)
  end)

  it("reports memprobe_up and a read error per source that cannot be read", function()
    local dir = proc_copy{ slabinfo = function() return nil end }
    local text = exposition(dir, { vmalloc = false })
    assert.matches("\nmemprobe_up 1\n", text, 1, true)
    assert.matches('memprobe_source_read_error{source="slab"} 1\n', text, 1, true)
    assert.matches('memprobe_source_read_error{source="meminfo"} 0\n', text, 1, true)
    assert.is_nil(text:find("memprobe_slab_bytes", 1, true))
    assert.is_nil(text:find('source="vmalloc"', 1, true))  -- not asked for
    dir = proc_copy{ meminfo = function() return nil end }
    text = exposition(dir, { slab = false, vmalloc = false })
    assert.matches("^# HELP memprobe_up [^\n]*\n# TYPE memprobe_up gauge\nmemprobe_up 0\n", text)
    assert.matches('memprobe_source_read_error{source="meminfo"} 1\n', text, 1, true)
  end)

  it("puts HugePages counts in their own family and uses one label name", function()
    local text = exposition(proc_copy(), { slab = false, vmalloc = false })
    assert.matches('memprobe_meminfo_hugepages{field="HugePages_Total"} 0\n', text, 1, true)
    assert.is_nil(text:find("_pages{", 1, true))
    assert.matches('memprobe_free_bytes{field="total"} ', text, 1, true)
    assert.is_nil(text:find("kind=", 1, true))
  end)
end)

describe("memprobe.export.textfile", function()
  local function ls(dir)
    return H.run("ls -A " .. dir) or ""
  end

  it("never follows or shares a predictable temporary name", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(H.run("mkdir " .. dir .. " && echo ok"))
    local path = dir .. "/m.prom"
    local victim = dir .. "/victim"
    local f = assert(io.open(victim, "wb"))
    f:write("keep\n")
    f:close()
    -- what os.time() .. math.random(1e6) gives with both stubbed
    local time, random = os.time, math.random
    os.time = function() return 1 end  -- luacheck: ignore 122
    math.random = function() return 1 end  -- luacheck: ignore 122
    assert(H.run(("ln -s %s %s.tmp11 && echo ok"):format(victim, path)))
    local ok, err = export.textfile(path, { slab = false, vmalloc = false })
    os.time, math.random = time, random  -- luacheck: ignore 122
    assert.is_true(ok, err)
    assert.are.equal("keep\n", H.slurp(victim))
    assert.matches("memprobe_up 1", H.slurp(path), 1, true)
    assert.are.equal("m.prom\nm.prom.tmp11\nvictim\n", ls(dir))
    H.run("rm -rf " .. dir)
  end)

  it("keeps the previous file and leaves no temporary file on a full disk", function()
    if not H.run("command -v unshare") then pending("no unshare") return end
    local dir = os.tmpname()
    os.remove(dir)
    assert(H.run("mkdir " .. dir .. " && echo ok"))
    -- A private mount namespace with a 64 KiB tmpfs: the good file is
    -- written, the disk filled, then textfile must fail with ENOSPC.
    local write = H.lua_cmd(("-e 'local ok, err, no = require(\"memprobe.export\")" ..
      ".textfile(\"%s/m.prom\", { slab = false, vmalloc = false }) print(\"result\", ok, err, no)'")
      :format(dir))
    local script = ([[
      mount -t tmpfs -o size=64k tmpfs %s || exit 77
      %s
      cp %s/m.prom %s/good
      dd if=/dev/zero of=%s/fill bs=4k 2>/dev/null
      %s
      cmp %s/m.prom %s/good && echo same
      ls -A %s
    ]]):format(dir, write, dir, dir, dir, write, dir, dir, dir)
    local sh = dir .. ".sh"
    local f = assert(io.open(sh, "wb"))
    f:write(script)
    f:close()
    local out = H.run("unshare -m --propagation private sh " .. sh .. " 2>&1; echo rc=$?")
    os.remove(sh)
    H.run("rmdir " .. dir)
    if out:match("rc=77") or out:match("unshare: ") then
      pending("cannot mount a tmpfs in a mount namespace here")
      return
    end
    assert.matches("^result\ttrue\tnil\tnil\n", out)
    assert.matches("\nresult\tnil\t[^\n]*No space left on device\t28\n", out)
    assert.matches("\nsame\n", out, 1, true)
    assert.matches("\nfill\ngood\nm.prom\nrc=0\n$", out)
  end)
end)

describe("memprobe prometheus --textfile", function()
  it("writes the exposition atomically and fails with exit 1 when it cannot", function()
    local dir = H.tmpdir()
    local out = H.lua("bin/memprobe prometheus --textfile " .. dir .. "/m.prom")
    assert.are.equal("exit 0\n", out)
    local text = H.slurp(dir .. "/m.prom")
    assert.matches("\nmemprobe_up 1\n", text, 1, true)
    assert.matches("# TYPE memprobe_meminfo_bytes gauge", text, 1, true)
    assert.are.equal("m.prom\n", H.run("ls -A " .. dir))
    out = H.lua("bin/memprobe prometheus --textfile " .. dir .. "/no/m.prom")
    assert.matches("^memprobe: [^\n]*no/m.prom: No such file or directory\nexit 1\n$", out)
    out = H.lua("bin/memprobe prometheus --textfile")
    assert.matches("needs a value\nexit 2\n$", out)
    H.rmdir(dir)
  end)
end)
