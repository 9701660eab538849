--- The Lua heap: a census by type, live bytes per module, snapshots and
-- their diffs, reference paths. The walk is in C (`memprobe.core`); the
-- size model it uses is measured here, on the running VM, and the paths it
-- returns as segments are joined and grouped here. See docs/heap.md.
-- @module memprobe.heap

local core = require "memprobe.core"
local settle = require("memprobe.settle").settle

local M = {}

-- The library functions the walk uses, as they were when it was loaded:
-- a program that replaces ipairs or the string methods changes nothing.
local ipairs, next, type, error, pcall = ipairs, next, type, error, pcall
local setmetatable, tostring = setmetatable, tostring
local match, format = string.match, string.format
local concat, sort = table.concat, table.sort
local clock = core.clock

local calibrate_in = require "memprobe.heapmodel"

--- Live bytes of the Lua heap from `collectgarbage("count")`, which is exact.
local function gc_live()
  return collectgarbage("count") * 1024
end

--- Measures the size model of the running VM in this state. Every figure
-- is the exact change of live bytes when a sample object is created, so
-- no struct layout is assumed; `live` defaults to `collectgarbage("count")`
-- and may be any exact live-bytes counter (an allocator tracker's).
-- `memprobe.heap`'s functions measure it in a scratch state instead
-- (`model()`), which costs the same whatever this state's heap holds.
-- @tparam[opt] {live=function} opts
-- @treturn table the model `memprobe.heap` functions take as `opts.model`
function M.calibrate(opts)
  local m = calibrate_in(core, { live = opts and opts.live })
  -- The string samples grew the string table; let it shrink back (one
  -- halving per cycle) so that calibrating leaves the VM as it was.
  settle(16)
  return m
end

local dump = string.dump
local model_cache, model_job

-- The job that measures the model in a scratch state, started once and
-- shared by the walks that wait for it.
local function measuring()
  if not model_job then model_job = core.heap_model_job(dump(calibrate_in)) end
  return model_job
end

--- The model of this VM build, measured on first use (in a scratch state,
-- or with `opts.live` in this one) and kept.
-- @tparam[opt] table opts `model` (a model to use), `live` (a counter)
-- @treturn table the model
function M.model(opts)
  if opts and opts.model then return opts.model end
  if not model_cache then
    if opts and opts.live then
      model_cache = M.calibrate(opts)
    else
      local job = measuring()
      job:step()
      model_cache = job:result()
    end
  end
  return model_cache
end
local model = M.model

--- Measures the model for up to `ms` milliseconds (in the scratch state)
-- and says whether it is known: a console warms it from its ticks.
-- @tparam number ms
-- @treturn boolean true once the model is known
function M.model_ready(ms)
  if model_cache then return true end
  local job = measuring()
  if not job:step(ms) then return false end
  model_cache = job:result()
  return true
end

local function sorted_keys(t)
  local keys = {}
  for k in next, t do  -- raw: the program's __pairs is not asked
    if type(k) == "string" then keys[#keys + 1] = k end
  end
  sort(keys)
  return keys
end

local function is_name(s)
  return type(s) == "string" and match(s, "^[%a_][%w_]*$") ~= nil
end

local function module_path(name)
  if name == "_G" then return "_G" end
  return is_name(name) and "package.loaded." .. name
    or format("package.loaded[%q]", name)
end

-- The roots of a walk: every package.loaded entry, then the registry (and
-- the string metatable, which lives outside it), then the running thread.
-- Returns the roots and the row names by label.
local function roots_of()
  local roots, names = {}, {}
  local loaded = package.loaded
  for _, name in ipairs(sorted_keys(loaded)) do
    names[#names + 1] = name
    roots[#roots + 1] = { loaded[name], module_path(name), #names }
  end
  local G = _G
  if loaded._G ~= G then
    names[#names + 1] = "(globals)"
    roots[#roots + 1] = { G, "_G", #names }
  end
  names[#names + 1] = "(registry)"
  roots[#roots + 1] = { debug.getregistry(), "registry", #names }
  roots[#roots + 1] = { debug.getmetatable(""), "registry.<string metatable>",
                        #names }
  names[#names + 1] = "(stack)"
  roots[#roots + 1] = { core.heap_thread(), "thread", #names }
  return roots, names
end

-- An edge of a path, as the walk gives it ({ kind, key, data }), in
-- Lua's syntax: ".name", "[3]", ":upvalue(x)" ...
local function segment(e)
  local kind, key = e.kind, e.key
  if kind == "root" then return key end
  if kind == "field" then
    return is_name(key) and "." .. key or '["' .. key .. '"]'
  end
  if kind == "index" then return format("[%d]", key) end
  if kind == "numkey" then return "[<number>]" end
  if kind == "objkey" then return "[<" .. key .. ">]" end
  if key == nil then return ":" .. kind end
  return ":" .. kind .. "(" .. tostring(key) .. ")"
end

--- Joins a path (an array of edges) into a string.
local function join(path)
  local out = {}
  for i, e in ipairs(path) do out[i] = segment(e) end
  return concat(out)
end

--- The pattern of a path: its data-like edges (indices, the keys of
-- tables with many entries, as the walk marks them) become `[*]`.
-- @tparam {table,...} path edges `{ kind, key, data }`
-- @treturn string
function M.pattern(path)
  local out = {}
  for i, e in ipairs(path) do out[i] = e.data and "[*]" or segment(e) end
  return concat(out)
end
local pattern = M.pattern

-- The functions whose frames are the walk's own (filled in at the end):
-- the walk skips them on the running thread, so that their locals, garbage
-- once it returns, are not counted as live.
local own = {}

-- The model, or for a budgeted walk on a state that has none yet, the job
-- measuring it: the walk's first steps then wait for it within their
-- budget, so that a cold first call keeps its budget.
local function model_or_job(opts)
  if opts.model or model_cache or opts.live then return model(opts) end
  local job = measuring()
  model_cache = job:result()
  if not model_cache and (opts.max_ms or opts.max_units) then return job end
  return model(opts)
end

-- Budget options are checked here, where the public function is known.
local function checkbudget(fname, opts)
  local function bad(k, what)
    error(format("bad argument #1 to '%s' (%s must be %s)", fname, k, what), 4)
  end
  for _, k in ipairs({ "max_objects", "max_units" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v < 1 or v % 1 ~= 0 or
                     (k == "max_objects" and v > 4294967280)) then
      bad(k, k == "max_objects" and "an integer in 1..4294967280"
        or "a whole number at least 1")
    end
  end
  local ms = opts.max_ms
  if ms ~= nil and (type(ms) ~= "number" or not (ms > 0 and ms <= 1e9)) then
    bad("max_ms", "a number of milliseconds > 0")
  end
end

local function walk(opts, label_each, target, fname, tally)
  opts = opts or {}
  -- a timed walk's first slice counts from here
  local started = opts.max_ms and core.clock()
  checkbudget(fname or "snapshot", opts)
  local roots, names = roots_of()
  if not label_each then
    for i = 1, #roots do roots[i][3] = 1 end
  end
  local o = { max_objects = opts.max_objects, max_ms = opts.max_ms,
              max_units = opts.max_units, fail_after = opts.fail_after,
              target = target, own = own, started = started,
              census = tally and tally.census, rows = tally and tally.rows }
  return core.heap_snapshot(model_or_job(opts), roots, o), names, roots
end

-- Objects per byte of collectgarbage("count") in the last walk that
-- finished, for a job's estimate of its total; a guess before the first.
local density = 1 / 100

--- A job: a walk that advances by `job:step([ms])`, then its result.
-- `heap{max_ms}` and `modules{max_ms}` return one.
-- @type Job
local Job = {}
Job.__index = Job

local function job(snap, gc_bytes, ms, finish_fn)
  return setmetatable({ snap = snap, gc_bytes = gc_bytes, ms = ms,
                        finish = finish_fn, objects = 0 }, Job)
end

--- Advances the walk within `ms` milliseconds (default: the job's
-- `max_ms`); when the walk is done, builds the result.
-- @treturn boolean true when the result is ready
function Job:step(ms)
  if self.done then return true end
  if ms ~= nil and (type(ms) ~= "number" or ms ~= ms or ms <= 0) then
    error(format("bad argument #1 to 'step' (milliseconds > 0 expected, got %s)",
      tostring(ms)), 2)
  end
  ms = ms or self.ms
  local snap, started = self.snap, clock()
  if self.res == nil then
    local walked = snap:step(ms)
    self.objects = snap:stats().objects
    if not walked then return false end
    local ok, r = pcall(self.finish, snap)
    if not ok then snap:close(); self.snap = nil; error(r, 0) end
    if self.gc_bytes > 0 then density = self.objects / self.gc_bytes end
    self.res = r
  end
  -- the bookkeeping of millions of objects goes back in slices too,
  -- within what is left of this step's budget
  self.done = snap:release(ms and math.max(ms - (clock() - started) * 1000, 0.01))
  if self.done then self.snap = nil end
  return self.done
end

--- The result, as the unsliced call returns it; nil until `step` said
-- true.
function Job:result()
  return self.res
end

--- How far the walk is: objects so far, an estimated total (from the
-- heap's size and the last walk's objects per byte), a fraction in 0..1.
-- @treturn number objects, number total, number fraction
function Job:progress()
  if self.res ~= nil then return self.objects, self.objects, 1 end
  local total = self.gc_bytes * density
  if total < self.objects * 1.01 then total = self.objects * 1.01 end
  if total < 1 then total = 1 end
  return self.objects, total, self.objects / total
end

--- Stops the walk and frees what it holds.
function Job:close()
  if self.snap then self.snap:close(); self.snap = nil end
end

--- The census, module rows, snapshots, paths and diffs.
-- @section walks

-- A call that returns its result, or with max_ms a job that builds it.
local function run(snap, opts, gc_bytes, finish_fn)
  local j = job(snap, gc_bytes, opts.max_ms, finish_fn)
  if opts.max_ms then return j end
  j:step()
  return j.res
end

-- The census of a finished walk, with its paths joined.
local function census_of(snap, top, gc_bytes)
  local c = snap:census(top)
  for _, big in ipairs(c.largest) do
    big.path = join(big.path)
  end
  c.gc_bytes = gc_bytes
  c.unexplained = gc_bytes - c.total
  return c
end

--- Census of the Lua heap.
-- @tparam[opt] table opts `top` (largest containers, default 10),
-- `model`, `max_objects`; `max_ms` returns a job instead
-- @treturn table `{ by_type = {[type] = {count, bytes}}, userdata =
-- {[__name] = {count, bytes}}, functions = {["src:line"] = {count, bytes,
-- proto}}, largest = {{path, bytes, entries, type}}, total, objects,
-- gc_bytes, unexplained, shared_code = {count, bytes, by_type}}`;
-- `shared_code` is what the host shares between states (skynet's code
-- cache: prototypes and their strings; shared tables), outside this
-- state's heap and not in `total`
function M.heap(opts)
  opts = opts or {}
  local gc_bytes = gc_live()
  local top = opts.top or 10
  local snap = walk(opts, false, nil, "heap", { census = top })
  return run(snap, opts, gc_bytes, function(s)
    return census_of(s, top, gc_bytes)
  end)
end

-- The bytes each module's load retained, when require accounting is on.
local function load_costs()
  local loads = {}
  local mp = package.loaded.memprobe
  if type(mp) == "table" and type(mp.requires) == "function" then
    local okr, r = pcall(mp.requires)
    if okr and type(r) == "table" then
      for _, row in ipairs(r) do
        if type(row) == "table" and row.name then
          loads[row.name] = row.retained
        end
      end
    end
  end
  return loads
end

-- The rows of a finished walk labelled by root.
local function modules_of(snap, names, roots, gc_bytes)
  local rows = snap:rows(roots)
  local loads = load_costs()
  local out, total = {}, 0
  for label, name in ipairs(names) do
    local row = rows[label]
    out[#out + 1] = { name = name, exclusive = row.exclusive,
                      shared = row.shared, objects = row.objects,
                      by_type = row.by_type, load = loads[name] }
    total = total + row.exclusive
  end
  local sh = rows[-1]
  if sh then
    out[#out + 1] = { name = "(shared)", exclusive = sh.exclusive, shared = 0,
                      objects = sh.objects, by_type = sh.by_type }
    total = total + sh.exclusive
  end
  local code = rows.shared_code
  if code and code.count > 0 then
    out[#out + 1] = { name = "(shared code)", exclusive = 0,
                      shared = code.bytes, objects = code.count,
                      by_type = code.by_type }
  end
  sort(out, function(a, b)
    if a.exclusive ~= b.exclusive then return a.exclusive > b.exclusive end
    return a.name < b.name
  end)
  out.total, out.gc_bytes = total, gc_bytes
  return out
end

--- Live bytes per `package.loaded` entry, plus rows for the registry,
-- the running thread's stack and objects shared between roots, so that
-- the `exclusive` column adds up to the census total. Code the host
-- shares between states (skynet's code cache) is outside this state's
-- heap: a row `(shared code)` whose bytes are all `shared`.
-- @tparam[opt] table opts `model`, `max_objects`; `max_ms` returns a job
-- @treturn table rows `{ name, exclusive, shared, objects, by_type, load }`
-- sorted by exclusive bytes; fields `total` and `gc_bytes`
function M.modules(opts)
  opts = opts or {}
  local gc_bytes = gc_live()
  local snap, names, roots = walk(opts, true, nil, "modules", { rows = true })
  return run(snap, opts, gc_bytes, function(s)
    return modules_of(s, names, roots, gc_bytes)
  end)
end

--- Starts a snapshot of the heap. Without budgets it walks the whole heap
-- now; with `max_ms` or `max_units` it stops there and `snap:step(ms)`
-- continues. See docs/heap.md for what a snapshot taken in slices means.
-- @tparam[opt] table opts `max_objects`, `max_ms`, `max_units`, `model`
-- @return a `memprobe.Snapshot`
function M.snapshot(opts)
  return (walk(opts))
end

-- What an edge costs a path's readability: named keys nothing, indices
-- 1, the VM's edges (upvalues, locals, metatables) 2.
local anon_cost = { root = 0, field = 0, index = 1, numkey = 1, objkey = 1 }

-- The paths of the referrers a finished walk with a target found,
-- ranked: named keys first, then shorter.
local function paths_of(snap, max)
  local list, others = {}, false
  for _, r in ipairs(snap:referrers()) do
    local anon = 0
    for _, e in ipairs(r.path) do anon = anon + (anon_cost[e.kind] or 2) end
    -- the running thread's locals hold obj at least in this call: show
    -- them only when nothing else does
    local stack = r.path[1].kind == "root" and r.path[1].key == "thread"
    others = others or not stack
    list[#list + 1] = { path = join(r.path), anon = anon, len = #r.path,
                        stack = stack }
  end
  sort(list, function(a, b)
    if a.anon ~= b.anon then return a.anon < b.anon end
    if a.len ~= b.len then return a.len < b.len end
    return a.path < b.path
  end)
  local out, seen = {}, {}
  for _, e in ipairs(list) do
    if not seen[e.path] and #out < max and not (others and e.stack) then
      seen[e.path] = true
      out[#out + 1] = e.path
    end
  end
  return out
end

--- The shortest readable reference paths to obj, named keys first.
-- @param obj a table, function, userdata, thread or string
-- @tparam[opt] table opts `max` paths (default 5), `model`; `max_ms`
-- returns a job instead
-- @treturn {string,...}
function M.path(obj, opts)
  local t = type(obj)
  if t ~= "table" and t ~= "function" and t ~= "userdata" and
     t ~= "thread" and t ~= "string" then
    error(format("bad argument #1 to 'path' (collectable value expected, got %s)",
      t), 2)
  end
  opts = opts or {}
  local gc_bytes = gc_live()
  local max = opts.max or 5
  local snap = walk(opts, false, obj, "path")
  return run(snap, opts, gc_bytes, function(s) return paths_of(s, max) end)
end

-- Merges the groups of a heap_added job by path pattern into m (a
-- merger: { by = {}, out = {}, at = 1 }) until the deadline; true when
-- all are in.
local function merge(m, groups, deadline)
  local by, out = m.by, m.out
  for i = m.at, #groups do
    if deadline and i % 256 == 0 and clock() >= deadline then
      m.at = i
      return false
    end
    local g = groups[i]
    local p = pattern(g.path)
    local e = by[p]
    if not e then
      e = { path = p, count = 0, bytes = 0 }
      by[p] = e
      out[#out + 1] = e
    end
    e.count = e.count + g.count
    e.bytes = e.bytes + g.bytes
  end
  m.at = #groups + 1
  return true
end

local function bigger(a, b)
  if a.bytes ~= b.bytes then return a.bytes > b.bytes end
  return a.path < b.path
end

--- A diff that advances by `job:step([ms])`: `snap:diff(older,
-- {max_ms})` returns one.
-- @type DiffJob
local DiffJob = {}
DiffJob.__index = DiffJob

-- The phases: what newer adds, what older had (freed), then the groups
-- of each merged by pattern.
local function diff_step(self, deadline)
  local function left()
    return deadline and math.max((deadline - clock()) * 1000, 0.001) or nil
  end
  if self.phase == 1 then
    if not self.add:step(left()) then return false end
    self.groups, self.grown = self.add:result()
    self.add = core.heap_added(self.older, self.newer, 0)
    self.phase = 2
  end
  if self.phase == 2 then
    if not self.add:step(left()) then return false end
    self.fgroups = self.add:result()
    self.add = nil
    self.m, self.fm = { by = {}, out = {}, at = 1 }, { by = {}, out = {}, at = 1 }
    self.phase = 3
  end
  if not merge(self.m, self.groups, deadline) or
     not merge(self.fm, self.fgroups, deadline) then
    return false
  end
  local d = { added = self.m.out, freed = self.fm.out, grown = {},
              added_bytes = 0, freed_bytes = 0 }
  sort(d.added, bigger)
  sort(d.freed, bigger)
  for _, g in ipairs(d.added) do d.added_bytes = d.added_bytes + g.bytes end
  for _, g in ipairs(d.freed) do d.freed_bytes = d.freed_bytes + g.bytes end
  for _, g in ipairs(self.grown) do
    g.path = join(g.path)
    d.grown[#d.grown + 1] = g
  end
  sort(d.grown, function(a, b)
    if a.entries ~= b.entries then return a.entries > b.entries end
    return a.path < b.path
  end)
  self.res = d
  self.newer, self.older, self.groups, self.fgroups = nil, nil, nil, nil
  self.grown, self.m, self.fm = nil, nil, nil
  return true
end

--- Advances the diff within `ms` milliseconds (default: the job's
-- `max_ms`).
-- @treturn boolean true when the result is ready
function DiffJob:step(ms)
  if self.res then return true end
  if ms ~= nil and (type(ms) ~= "number" or ms ~= ms or ms <= 0) then
    error(format("bad argument #1 to 'step' (milliseconds > 0 expected, got %s)",
      tostring(ms)), 2)
  end
  ms = ms or self.ms
  return diff_step(self, ms and clock() + ms / 1000)
end

--- The diff, as `snap:diff` without `max_ms` returns it; nil until
-- `step` said true.
function DiffJob:result()
  return self.res
end

--- Records compared so far, the records of both snapshots, a fraction.
-- @treturn number objects, number total, number fraction
function DiffJob:progress()
  local total = self.total
  if self.res then return total, total, 1 end
  local n = total
  if self.add then
    n = self.add:progress()
    if self.phase == 2 then n = n + self.n1 end
  end
  -- the merge comes last: done at 1 only
  return n, total, math.min(n / total, 0.99)
end

--- Stops the diff.
function DiffJob:close()
  if self.add then self.add:close() end
  self.add, self.newer, self.older = nil, nil, nil
  if not self.res then self.res = false end
end

--- Diffs of snapshots.
-- @section diffs

--- What changed from `older` to `newer` (both finished snapshots):
-- objects added, grouped by reference-path pattern; tables that grew and
-- by how many entries; objects freed, grouped the same way.
-- @param newer the later snapshot (`snap` in `snap:diff(older)`)
-- @param older the earlier snapshot
-- @tparam[opt] table opts `top` tables that grew (20); `max_ms` returns
-- a job instead, which compares both in slices
-- @return `{ added = {{path, count, bytes}}, grown = {{path, before, after,
-- entries, bytes}}, freed = {...}, added_bytes, freed_bytes }`
function M.diff(newer, older, opts)
  opts = opts or {}
  local ms = opts.max_ms
  if ms ~= nil and (type(ms) ~= "number" or not (ms > 0 and ms <= 1e9)) then
    error("bad argument #2 to 'diff' (max_ms must be a number of milliseconds > 0)", 2)
  end
  local add = core.heap_added(newer, older, opts.top or 20)
  local _, n1 = add:progress()
  local n2 = older:stats().objects
  local j = setmetatable({ newer = newer, older = older, add = add, phase = 1,
                           ms = ms, n1 = n1, total = math.max(n1 + n2, 1) },
                         DiffJob)
  if ms then return j end
  j:step()
  return j.res
end

own[1], own[2], own[3], own[4], own[5], own[6], own[7] =
  walk, M.heap, M.modules, M.snapshot, M.path, Job.step, run

-- snap:diff(older) on every snapshot.
local meta = debug.getregistry()["memprobe.Snapshot"]
if meta and meta.__index then meta.__index.diff = M.diff end

return M
