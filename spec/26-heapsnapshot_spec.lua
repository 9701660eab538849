local H = require "spec.helper"
local memprobe = require "memprobe"

-- The exported .heapsnapshot, read back two ways: by memlab (its own
-- parser and dominator tree, tools/memlab/check.js, installed into
-- build/memlab by `make memlab`) and by a JSON decoder here.

local MEMLAB = "build/memlab/node_modules"

local function have_memlab()
  return H.status("command -v node") == 0 and
    H.status("test -d " .. MEMLAB .. "/@memlab/heap-analysis") == 0
end

-- What memlab sees in the file: { nodes, edges, total, top = {{ id,
-- name, type, self, retained }} }, or nil and its error output.
local function memlab(path, top)
  local out = H.run(("NODE_PATH=%s node tools/memlab/check.js '%s' %d"):format(
    MEMLAB, path, top or 20))
  if not out then return nil, "memlab printed nothing" end
  return H.json_decode(out:match("([^\n]+)\n*$"))
end

-- The planted heap: a module whose cache is reachable only through an
-- upvalue of its get(), sub-tables shared by two entries, a cycle, and
-- a table whose values are weak.
local function plant()
  local cache, shared = {}, { tag = "shared" }
  for i = 1, 2000 do cache[i] = { i, ("v%05d"):format(i), shared } end
  local a, b = {}, {}
  a.next, b.next = b, a
  local weak = setmetatable({}, { __mode = "v" })
  for i = 1, 100 do weak[i] = {} end
  local mod = { ring = a, weak = weak }
  function mod.get(i) return cache[i] end
  package.loaded.planted = mod
  return mod
end

local function unplant()
  package.loaded.planted = nil
  collectgarbage("collect")
  collectgarbage("collect")
end

-- The strings, nodes and edges of a file, decoded here.
local function decode(path)
  return H.json_decode(assert(H.slurp(path)))
end

local NODE_FIELDS = 7

-- The node of a decoded file whose name is name: its fields, or nil.
local function find_node(d, name)
  local n = d.nodes
  for i = 1, #n, NODE_FIELDS do
    if d.strings[n[i + 1] + 1] == name then
      return { type = n[i], id = n[i + 2], self = n[i + 3], edges = n[i + 4],
               index = (i - 1) / NODE_FIELDS }
    end
  end
end

describe("snap:save(path, 'heapsnapshot')", function()
  local dir, snap
  setup(function()
    dir = H.tmpdir()
    plant()
    snap = memprobe.snapshot()
  end)
  teardown(function()
    if snap then snap:close() end
    unplant()
    H.rmdir(dir)
  end)

  it("writes V8's JSON: counts, names and sizes as the snapshot has them", function()
    local path = dir .. "/a.heapsnapshot"
    assert.is_true(snap:save(path, "heapsnapshot"))
    local d = decode(path)
    local meta = d.snapshot.meta
    assert.are.same({ "type", "name", "id", "self_size", "edge_count",
                      "trace_node_id", "detachedness" }, meta.node_fields)
    assert.are.same({ "type", "name_or_index", "to_node" }, meta.edge_fields)
    local objects = snap:stats().objects
    assert.are.equal(objects + 1, d.snapshot.node_count)
    assert.are.equal(#d.nodes, d.snapshot.node_count * NODE_FIELDS)
    assert.are.equal(#d.edges, d.snapshot.edge_count * 3)
    -- every edge goes to a node; the edge counts add up
    local sum, total = 0, 0
    for i = 1, #d.nodes, NODE_FIELDS do
      sum = sum + d.nodes[i + 4]
      total = total + d.nodes[i + 3]
    end
    assert.are.equal(d.snapshot.edge_count, sum)
    for i = 3, #d.edges, 3 do
      local to = d.edges[i]
      assert(to % NODE_FIELDS == 0 and to < #d.nodes, "edge to no node: " .. to)
    end
    -- the self sizes add up to the census of the same walk
    assert.are.equal(snap:census(0).total, total)
    -- named by type and path; the cache's size is the census's
    local mod = find_node(d, "table package.loaded.planted")
    assert.is_truthy(mod, "no node for the module")
    local cache = find_node(d, "table package.loaded.planted.get:upvalue(cache)")
    assert.is_truthy(cache, "no node for the cache")
    local largest  -- among the 1000 largest: the suite's own heap may hold bigger ones
    for _, big in ipairs(snap:census(1000).largest) do
      if require("memprobe.heap").pattern(big.path) ==
         "package.loaded.planted.get:upvalue(cache)" then
        largest = big
      end
    end
    assert.is_truthy(largest, "the cache is not among the census's largest")
    assert.are.equal(largest.bytes, cache.self)
    assert.are.equal(2000, cache.edges)
    -- edges named by key, upvalue, metatable
    local names = {}
    for i = 2, #d.edges, 3 do
      local t = d.snapshot.meta.edge_types[1][d.edges[i - 1] + 1]
      if t ~= "element" and t ~= "hidden" then names[d.strings[d.edges[i] + 1]] = t end
    end
    assert.are.equal("property", names.ring)
    assert.are.equal("property", names.get)
    assert.are.equal("property", names["package.loaded.planted"])
    assert.are.equal("context", names.cache)
    assert.are.equal("internal", names.metatable)
  end)

  it("writes any key as valid JSON, and the end of a long path", function()
    local odd = "\255q\"\1\\\226\130\172"   -- not UTF-8, a quote, a control byte, a euro sign
    local deep = {}
    local t = deep
    for _ = 1, 300 do t.next = {} t = t.next end
    package.loaded.planted_odd = { [odd] = { 1 }, deep = deep }
    local s = memprobe.snapshot()
    local path = dir .. "/odd.heapsnapshot"
    assert.is_true(s:save(path, "heapsnapshot"))
    s:close()
    package.loaded.planted_odd = nil
    local d = decode(path)
    -- the byte that is not UTF-8 reads as its Latin-1 code point, the rest as they are
    local want = "\195\191q\"\1\\\226\130\172"
    local found
    for _, str in ipairs(d.strings) do if str == want then found = true end end
    assert.is_true(found, "no edge name for the odd key")
    assert.is_truthy(find_node(d, 'table package.loaded.planted_odd["' .. want .. '"]'))
    -- a name holds at most 512 bytes: a longer path keeps its end
    local longest = 0
    for _, str in ipairs(d.strings) do
      assert(#str <= 512, #str)
      if str:find("^table %.%.%.%.next") and str:find("%.next$") then
        local _, edges = str:gsub("%.next", "")
        longest = math.max(longest, edges)
      end
    end
    assert.is_true(longest >= 90 and longest <= 102, longest)
  end)

  it("is loaded by memlab, which finds the same nodes, edges and bytes", function()
    if not have_memlab() then pending("memlab is not installed (make memlab)") return end
    local path = dir .. "/b.heapsnapshot"
    assert.is_true(snap:save(path, "heapsnapshot"))
    local m, err = memlab(path, 20)
    assert.is_truthy(m, err)
    local d = decode(path)
    assert.are.equal(d.snapshot.node_count, m.nodes)
    assert.are.equal(d.snapshot.edge_count, m.edges)
    assert.are.equal(snap:census(0).total, m.total)
    -- everything hangs from the root; the cache keeps its entries
    assert.are.equal(m.total, m.root_retained)
    local byname = {}
    for _, row in ipairs(m.top) do byname[row.name] = row end
    local cache = byname["table package.loaded.planted.get:upvalue(cache)"]
    assert.is_truthy(cache, "the cache is not among memlab's 20 largest")
    assert.is_true(cache.retained > cache.self * 2, cache.retained)
    assert.is_truthy(byname["table package.loaded.planted"])
  end)

  it("gives memlab the graph whose 20 largest retained sizes are memprobe's, within 1%", function()
    if not have_memlab() then pending("memlab is not installed (make memlab)") return end
    if type(snap.retained) ~= "function" then pending("no snap:retained() yet") return end
    local path = dir .. "/r.heapsnapshot"
    assert.is_true(snap:save(path, "heapsnapshot"))
    local m, err = memlab(path, 20)
    assert.is_truthy(m, err)
    local ours = snap:retained(20)
    assert.are.equal(20, #ours)
    assert.are.equal(20, #m.top)
    for i = 1, 20 do
      local a, b = ours[i].retained, m.top[i].retained
      assert(math.abs(a - b) <= 0.01 * a,
        ("row %d: memprobe %s %d, memlab %s %d"):format(i, ours[i].path, a, m.top[i].name, b))
    end
    -- the rows name the same objects where the names are unique
    local names, seen = {}, {}
    for _, r in ipairs(m.top) do
      names[r.name] = r
      seen[r.name] = (seen[r.name] or 0) + 1
    end
    local matched = 0
    for _, r in ipairs(ours) do
      local row = names[r.type .. " " .. r.path]
      if row and seen[r.type .. " " .. r.path] == 1 then
        matched = matched + 1
        assert.is_near(r.retained, row.retained, r.retained * 0.01)
        assert.are.equal(r.self, row.self)
      end
    end
    assert.is_true(matched >= 10, matched)
    -- the planted cache, which only get() reaches, is one of them
    local cache = names["table package.loaded.planted.get:upvalue(cache)"]
    assert.is_truthy(cache, "the cache is not among memlab's 20 largest")
  end)

  it("is written the same, byte for byte, in slices of a budget", function()
    local whole, sliced = dir .. "/c1.heapsnapshot", dir .. "/c2.heapsnapshot"
    assert.is_true(snap:save(whole, "heapsnapshot"))
    local job = snap:save(sliced, "heapsnapshot", { max_ms = 0.2 })
    local steps = 1
    while job:step() == false do steps = steps + 1 end
    assert.is_true(job:result())
    assert.is_true(steps > 1, "one step")
    local bytes, done, total, frac = job:progress()
    assert.are.equal(1, frac)
    assert.are.equal(done, total)
    assert.are.equal(#H.slurp(whole), bytes)
    assert.are.equal(H.slurp(whole), H.slurp(sliced))
  end)

  it("holds nothing but its buffer, 8 bytes a record without the edge log", function()
    local core = require "memprobe.core"
    local tree = memprobe.snapshot{ retained = false }  -- records no edges
    local before = core.heap_walk_buffers()
    for _, s in ipairs{ snap, tree } do
      local job = s:save(dir .. "/m.heapsnapshot", "heapsnapshot", { max_ms = 0.05 })
      local held = core.heap_walk_buffers() - before
      if s == snap then
        assert.are.equal(0, held)
      else
        local n = s:stats().objects
        assert.is_true(held >= 8 * n and held <= 8 * n + 8192, held)
      end
      while job:step() == false do end
      assert.are.equal(before, core.heap_walk_buffers())
      -- a write that fails midway gives them back too
      assert.is_nil(s:save("/dev/full", "heapsnapshot"))
      assert.are.equal(before, core.heap_walk_buffers())
    end
    -- the file of the tree of first referrers: an edge per record reached
    -- from another, one per root, one per closure to its prototype
    assert.is_true(tree:save(dir .. "/t.heapsnapshot", "heapsnapshot"))
    local d = decode(dir .. "/t.heapsnapshot")
    assert.are.equal(tree:stats().objects + 1, d.snapshot.node_count)
    local cache = find_node(d, "table package.loaded.planted.get:upvalue(cache)")
    assert.are.equal(2000, cache.edges)
    tree:close()
  end)

  it("returns nil, message, errno when the file cannot be written", function()
    local ok, msg, errno = snap:save(dir .. "/no/such/dir/x.heapsnapshot", "heapsnapshot")
    assert.is_nil(ok)
    assert.is_truthy(msg:find("No such file or directory", 1, true), msg)
    assert.are.equal(2, errno)
    -- a full disk, mid-file
    ok, msg, errno = snap:save("/dev/full", "heapsnapshot")
    assert.is_nil(ok)
    assert.is_truthy(msg:find("/dev/full: No space left on device", 1, true), msg)
    assert.are.equal(28, errno)
    -- a FIFO is refused at once, not waited on
    if H.status("mkfifo '" .. dir .. "/fifo'") == 0 then
      ok, msg, errno = snap:save(dir .. "/fifo", "heapsnapshot")
      assert.is_nil(ok)
      assert.is_truthy(msg:find("not a regular file", 1, true), msg)
      assert.are.equal(22, errno)
    end
  end)

  it("raises on misuse, and on a snapshot closed while a job writes it", function()
    assert.has_error(function() snap:save(nil, "heapsnapshot") end,
      "bad argument #1 to 'save' (path expected, got nil)")
    assert.has_error(function() snap:save(dir .. "/x", "svg") end,
      'bad argument #2 to \'save\' (format must be "heapsnapshot" or "html", got svg)')
    assert.has_error(function() snap:save(dir .. "/x", "heapsnapshot", { nope = 1 }) end,
      "bad argument #3 to 'save' (unknown option 'nope')")
    local other = memprobe.snapshot()
    local job = other:save(dir .. "/d.heapsnapshot", "heapsnapshot", { max_ms = 0.05 })
    other:close()
    assert.has_error(function() job:step() end,
      "heap snapshot writer: its snapshot was closed")
    job:close()
    local unfinished = memprobe.snapshot{ max_units = 1 }
    assert.has_error(function() unfinished:save(dir .. "/e", "heapsnapshot") end)
    unfinished:close()
  end)
end)

describe("memprobe snapshot SCRIPT --out FILE", function()
  local dir
  setup(function()
    dir = H.tmpdir{ ["app.lua"] = [[
      print("app", ...)
      local cache = {}
      for i = 1, 3000 do cache[i] = { id = i } end
      package.loaded.cli_app = { get = function(i) return cache[i] end }
    ]] }
  end)
  teardown(function() H.rmdir(dir) end)

  local function cli(args)
    local body, code = H.lua("bin/memprobe " .. args):match("^(.-)exit (%d+)\n$")
    return body, tonumber(code)
  end

  it("runs the script, then writes what it left as a .heapsnapshot", function()
    local path = dir .. "/app.heapsnapshot"
    local out, code = cli(("snapshot --out '%s' '%s/app.lua' x"):format(path, dir))
    assert.are.equal(0, code, out)
    assert.matches("wrote " .. path:gsub("%p", "%%%0") .. " %(heapsnapshot, %d+ objects", out)
    local d = decode(path)
    assert.is_truthy(find_node(d, "table package.loaded.cli_app.get:upvalue(cache)"))
  end)

  it("writes an .html report, --json says what it wrote", function()
    local path = dir .. "/app.html"
    local out, code = cli(("snapshot --out '%s' --json '%s/app.lua'"):format(path, dir))
    assert.are.equal(0, code, out)
    local r = H.json_decode(out:match("{.*}"))
    assert.are.equal("html", r.format)
    assert.are.equal(path, r.file)
    assert.is_true(r.objects > 1000)
    assert.is_truthy(H.slurp(path):find("<span class=\"name\">cli_app</span>", 1, true))
  end)

  it("refuses a missing or unknown --out and a missing script (exit 2)", function()
    local out, code = cli(("snapshot '%s/app.lua'"):format(dir))
    assert.are.equal(2, code)
    assert.matches("snapshot needs %-%-out", out)
    out, code = cli(("snapshot --out x.txt '%s/app.lua'"):format(dir))
    assert.are.equal(2, code)
    assert.matches("%-%-out needs a .heapsnapshot or .html file", out)
    out, code = cli("snapshot --out x.html")
    assert.are.equal(2, code)
    assert.matches("snapshot needs a Lua script", out)
  end)

  it("exits 1 with the reason when the file cannot be written", function()
    local out, code = cli(("snapshot --out '%s/no/x.heapsnapshot' '%s/app.lua'"):format(dir, dir))
    assert.are.equal(1, code)
    assert.matches("No such file or directory", out)
  end)
end)
