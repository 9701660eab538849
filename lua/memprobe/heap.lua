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
local setmetatable, tostring, rawget = setmetatable, tostring, rawget
local match, format = string.match, string.format
local concat, sort = table.concat, table.sort
local min, fmax = math.min, math.max
-- OpenResty replaces coroutine.* in request handlers with functions that
-- bind a coroutine to the request that made it, and keeps the standard
-- ones as coroutine._create and so on: a job's stage made in one request
-- and resumed from a timer crashed the worker. The standard ones it is.
local function std(name)
  local f = coroutine["_" .. name]
  return type(f) == "function" and f or coroutine[name]
end
local co_create, co_resume = std("create"), std("resume")
local co_yield, co_status = std("yield"), std("status")
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

-- The Lua work of a job (the roots before the walk, the result after
-- it) runs as a stage: a coroutine that a step resumes, and that yields
-- when the step's deadline has passed, the clock read every 64 ticks. A
-- slicer 'sl' is { deadline, n }; an unsliced call passes none and the
-- stage runs to its end. 70000 package.loaded entries made 270 ms of
-- roots in the call that started a job and 420 ms of rows in its last
-- step on 5.4, each of them now in slices.
local function tick(sl)
  if sl then
    local n = sl.n + 1
    sl.n = n
    if n % 64 == 0 and clock() >= sl.deadline then co_yield() end
  end
end

-- An empty table whose array part has room for n: growing one by
-- doubling past 64k slots reallocated megabytes in a step (4-6 ms).
local function array(n)
  if n > 0 and n <= 2 ^ 20 then return core.heap_sample("table", n, 0) end
  return {}
end

-- Sorts a by lt: table.sort at once, or with a slicer a bottom-up merge
-- sort that can stop between two moves. Returns the sorted array (a or
-- another one); lt is a total order here, so both give the same result.
local function sliced_sort(a, lt, sl)
  if not sl then sort(a, lt); return a end
  local n = #a
  local src, dst, width = a, array(n), 1
  while width < n do
    for lo = 1, n, 2 * width do
      local mid, hi = min(lo + width, n + 1), min(lo + 2 * width, n + 1)
      local i, j = lo, mid
      for k = lo, hi - 1 do
        if j >= hi or (i < mid and not lt(src[j], src[i])) then
          dst[k], i = src[i], i + 1
        else
          dst[k], j = src[j], j + 1
        end
        tick(sl)
      end
    end
    src, dst, width = dst, src, width * 2
  end
  return src
end

local function before(a, b) return a < b end

-- The string keys of t, sorted; raw: the program's __pairs is not asked.
-- In slices, a key removed between two of them (next no longer knows
-- it) starts the listing again, and the second time it runs at once; a
-- key added meanwhile may or may not be listed, as for any table a
-- sliced walk reads (docs/heap.md), and one that a rehash moved may be
-- listed twice, which the caller skips once sorted (no set of them: a
-- hash of 70000 keys grew in 20 ms steps).
local function sorted_keys(t, sl)
  local n, k, restarts = 0, nil, 0
  if sl then  -- count first, for the room of the list
    for _ in next, t do n = n + 1; tick(sl) end  -- luacheck: ignore 512
  end
  local keys = array(n)
  while true do
    local ok, nk = pcall(next, t, k)
    if not ok then
      restarts = restarts + 1
      if restarts >= 2 then sl = nil end
      keys = {}
      ok, nk = pcall(next, t, nil)
      if not ok then error(nk, 0) end
    end
    if nk == nil then break end
    if type(nk) == "string" then keys[#keys + 1] = nk end
    k = nk
    tick(sl)
  end
  return sliced_sort(keys, before, sl)
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
-- the string metatable, which lives outside it), then the running thread
-- (the one that calls thread_root, not a stage's coroutine). Returns the
-- roots and the row names by label; label_each false puts all under 1.
-- No closure per call here: a LuaJIT trace through a loop that calls one
-- keeps it, and with it the roots (a module dropped stayed alive).
local function add_root(roots, names, label_each, value, path, name)
  if name then names[#names + 1] = name end
  roots[#roots + 1] = { value, path, label_each and #names or 1 }
end

local function roots_of(label_each, sl)
  local loaded = package.loaded
  local keys = sorted_keys(loaded, sl)
  local roots, names = array(#keys + 4), array(#keys + 3)
  local last
  for _, name in ipairs(keys) do
    local v = rawget(loaded, name)
    if v ~= nil and name ~= last then
      add_root(roots, names, label_each, v, module_path(name), name)
    end
    last = name
    tick(sl)
  end
  local G = _G
  if rawget(loaded, "_G") ~= G then add_root(roots, names, label_each, G, "_G", "(globals)") end
  add_root(roots, names, label_each, debug.getregistry(), "registry", "(registry)")
  add_root(roots, names, label_each, debug.getmetatable(""), "registry.<string metatable>")
  names[#names + 1] = "(stack)"
  return roots, names
end

local function thread_root(roots, names, label_each)
  roots[#roots + 1] = { core.heap_thread(), "thread", label_each and #names or 1 }
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
  local maxobj = core.heap_max_objects
  for _, k in ipairs({ "max_objects", "max_units" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v < 1 or v % 1 ~= 0 or
                     (k == "max_objects" and v > maxobj)) then
      bad(k, k == "max_objects" and format("an integer in 1..%d", maxobj)
        or "a whole number at least 1")
    end
  end
  local ms = opts.max_ms
  if ms ~= nil and (type(ms) ~= "number" or not (ms > 0 and ms <= 1e9)) then
    bad("max_ms", "a number of milliseconds > 0")
  end
end

-- The options of core.heap_snapshot: a walk's own, and the budget of its
-- first slice (ms from started).
local function walk_opts(opts, target, tally, ms, started)
  return { max_objects = opts.max_objects, max_ms = ms,
           max_units = opts.max_units, fail_after = opts.fail_after,
           target = target, own = own, started = started,
           census = tally and tally.census, rows = tally and tally.rows,
           edges = tally and tally.edges }
end

-- Objects per byte of collectgarbage("count") in the last walk that
-- finished, for a job's estimate of its total; a guess before the first.
local density = 1 / 100

--- A job: a walk that advances by `job:step([ms])`, then its result.
-- `heap{max_ms}` and `modules{max_ms}` return one. Its stages: the
-- roots listed (Lua, sliced), the walk (the snapshot's steps), the
-- result built (Lua, sliced), the bookkeeping given back.
-- @type Job
local Job = {}
Job.__index = Job

-- Runs fn(sl, job) as the job's current stage within the step (deadline;
-- nil for an unsliced call, which runs it at once). Returns true and fn's
-- results once it is done.
local function stage(self, fn, deadline)
  if not deadline then return true, fn(nil, self) end
  local sl = self.sl
  if not sl then  -- the slicer also holds the coroutine
    sl = { n = 0, co = co_create(fn) }
    self.sl = sl
  end
  sl.deadline, sl.busy = deadline, true
  local ok, a, b = co_resume(sl.co, sl, self)
  sl.busy = false
  if not ok then self.sl = nil; error(a, 0) end
  if co_status(sl.co) ~= "dead" then return false end
  self.sl = nil
  return true, a, b
end

-- The stages of a job: its roots listed, its result built.
local function list_roots(sl, j) return roots_of(j.walk.label_each, sl) end
local function list_unlabelled(sl) return roots_of(false, sl) end
local function build_result(sl, j) return j.finish(j, j.snap, sl) end

-- A snapshot's walk. A timed walk's first slice counts from started (the
-- public call), or from here; its roots are listed in its first steps,
-- by a lister that the walk calls with each step's deadline (70000
-- modules took 450 ms to list on 5.4). Without a time budget they are
-- listed at once.
local function walk(opts, started)
  opts = opts or {}
  started = opts.max_ms and (started or clock())
  checkbudget("snapshot", opts)
  local roots
  if opts.max_ms then
    local lister = {}  -- holds the stage's slicer
    roots = function(deadline)
      local done, r, names = stage(lister, list_unlabelled, deadline)
      if not done then return nil end
      thread_root(r, names, false)
      return r
    end
  else
    local names
    roots, names = roots_of(false)
    thread_root(roots, names, false)
  end
  -- a snapshot records every edge, for its retained sizes, unless told
  -- not to (docs/heap.md)
  return core.heap_snapshot(model_or_job(opts), roots,
                            walk_opts(opts, nil, { edges = opts.retained ~= false },
                                      opts.max_ms, started))
end

-- The ms left before deadline (nil for none), 0.01 at least.
local function ms_left(deadline)
  return deadline and fmax((deadline - clock()) * 1000, 0.01)
end

-- A step of at most ms (none: to the end) from started.
local function advance(self, ms, started)
  if self.done then return true end
  if self.sl and self.sl.busy then
    error("bad argument #1 to 'step' (job is busy: stepped from its own step)", 3)
  end
  local deadline = ms and started + ms / 1000
  if self.res == nil then
    if not self.snap then
      local done, roots, names = stage(self, list_roots, deadline)
      if not done then return false end
      -- the path's target and the options are not the job's once the
      -- walk is on (this frame is the walk's own, the job is not)
      local w = self.walk
      self.walk = nil
      thread_root(roots, names, w.label_each)
      if w.label_each then self.roots, self.names = roots, names end
      self.snap = core.heap_snapshot(model_or_job(w.opts), roots,
        walk_opts(w.opts, w.target, w.tally, ms_left(deadline), deadline and clock()))
      self.objects = self.snap:stats().objects
      if deadline and clock() >= deadline then return false end
    end
    local snap = self.snap
    if not self.walked then
      local walked = snap:step(ms_left(deadline))
      self.objects = snap:stats().objects
      if not walked then return false end
      self.walked = true
    end
    local ok, done, r = pcall(stage, self, build_result, deadline)
    if not ok then snap:close(); self.snap = nil; error(done, 0) end
    if not done then return false end
    if self.gc_bytes > 0 then density = self.objects / self.gc_bytes end
    self.res = r
  end
  -- the bookkeeping of millions of objects goes back in slices too,
  -- within what is left of this step's budget
  self.done = self.snap:release(ms_left(deadline))
  if self.done then self.snap = nil end
  return self.done
end

-- A walk labelled by root (label_each) or not, with a target (path), a
-- tally (census top, or rows), finished by finish(job, snap, sl). With
-- opts.max_ms the job, whose first step runs in this call (counted from
-- started, the public call's clock, or from here); without, the result.
local function start(opts, fname, label_each, target, tally, finish, started)
  opts = opts or {}
  started = started or clock()
  checkbudget(fname, opts)
  local j = setmetatable({ gc_bytes = gc_live(), ms = opts.max_ms, objects = 0,
                           finish = finish, walk = { opts = opts, target = target,
                           tally = tally, label_each = label_each } }, Job)
  advance(j, opts.max_ms, started)
  if opts.max_ms then return j end
  return j.res
end

--- Advances the job within `ms` milliseconds (default: the job's
-- `max_ms`): its roots, its walk, then its result.
-- @treturn boolean true when the result is ready
function Job:step(ms)
  if ms ~= nil and (type(ms) ~= "number" or ms ~= ms or ms <= 0) then
    error(format("bad argument #1 to 'step' (milliseconds > 0 expected, got %s)",
      tostring(ms)), 2)
  end
  return advance(self, ms or self.ms, clock())
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
  self.sl = nil
end

--- The census, module rows, snapshots, paths and diffs.
-- @section walks

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
-- @tparam[opt] number started the `memprobe.clock()` of the public call,
-- which the first slice of a budgeted call counts from (default: now)
-- @treturn table `{ by_type = {[type] = {count, bytes}}, userdata =
-- {[__name] = {count, bytes}}, functions = {["src:line"] = {count, bytes,
-- proto}}, largest = {{path, bytes, entries, type}}, total, objects,
-- gc_bytes, unexplained, shared_code = {count, bytes, by_type}}`;
-- `shared_code` is what the host shares between states (skynet's code
-- cache: prototypes and their strings; shared tables), outside this
-- state's heap and not in `total`
function M.heap(opts, started)
  local top = opts and opts.top or 10
  return start(opts, "heap", false, nil, { census = top }, function(j, s)
    return census_of(s, top, j.gc_bytes)
  end, started)
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

-- Rows between two clock reads of a sliced result, which the core
-- builds that many at a time.
local ROWS = 256

local function by_exclusive(a, b)
  if a.exclusive ~= b.exclusive then return a.exclusive > b.exclusive end
  return a.name < b.name
end

-- The bytes each label's roots retain (modules{retained = true}); an
-- entry whose value an earlier root holds (an alias) retains nothing.
local function retained_by_label(snap, roots, sl)
  local by = {}
  for _, root in ipairs(roots) do
    local b, label = snap:_retained_of(root[1])
    if b and label == root[3] then by[label] = (by[label] or 0) + b end
    tick(sl)
  end
  return by
end

-- The rows of a finished walk labelled by root, ROWS labels at a time.
local function modules_of(snap, names, roots, gc_bytes, sl, retained)
  local loads = load_costs()
  local n = #names
  local out, total = array(n + 2), 0
  local kept = retained and retained_by_label(snap, roots, sl)
  for first = 1, n, ROWS do
    local last = min(first + ROWS - 1, n)
    local rows = snap:rows(roots, first, last)
    for label = first, last do
      local row, name = rows[label], names[label]
      out[#out + 1] = { name = name, exclusive = row.exclusive,
                        shared = row.shared, objects = row.objects,
                        by_type = row.by_type, load = loads[name],
                        retained = kept and (kept[label] or 0) or nil }
      total = total + row.exclusive
      tick(sl)
    end
  end
  -- the shared row and shared_code come after the labels
  local rows = snap:rows(roots, n + 1, n + 2)
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
  out = sliced_sort(out, by_exclusive, sl)
  out.total, out.gc_bytes = total, gc_bytes
  return out
end

--- Live bytes per `package.loaded` entry, plus rows for the registry,
-- the running thread's stack and objects shared between roots, so that
-- the `exclusive` column adds up to the census total. Code the host
-- shares between states (skynet's code cache) is outside this state's
-- heap: a row `(shared code)` whose bytes are all `shared`.
-- With `retained = true` each row also has `retained`: the bytes its
-- entry dominates (docs/heap.md), which the walk pays for with every edge
-- and the dominator tree.
-- @tparam[opt] table opts `model`, `max_objects`, `retained`; `max_ms`
-- returns a job
-- @tparam[opt] number started the `memprobe.clock()` of the public call,
-- which the first slice of a budgeted call counts from (default: now)
-- @treturn table rows `{ name, exclusive, shared, objects, by_type, load,
-- retained }` sorted by exclusive bytes; fields `total` and `gc_bytes`
function M.modules(opts, started)
  local retained = opts and opts.retained
  return start(opts, "modules", true, nil, { rows = true, edges = retained },
    function(j, s, sl)
      return modules_of(s, j.names, j.roots, j.gc_bytes, sl, retained)
    end, started)
end

--- Starts a snapshot of the heap. Without budgets it walks the whole heap
-- now; with `max_ms` or `max_units` it stops there and `snap:step(ms)`
-- continues. See docs/heap.md for what a snapshot taken in slices means.
-- @tparam[opt] table opts `max_objects`, `max_ms`, `max_units`, `model`
-- @tparam[opt] number started the `memprobe.clock()` of the public call,
-- which the first slice of a budgeted call counts from (default: now)
-- @return a `memprobe.Snapshot`
function M.snapshot(opts, started)
  return (walk(opts, started))
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
-- @tparam[opt] number started the `memprobe.clock()` of the public call,
-- which the first slice of a budgeted call counts from (default: now)
-- @treturn {string,...}
function M.path(obj, opts, started)
  local t = type(obj)
  if t ~= "table" and t ~= "function" and t ~= "userdata" and
     t ~= "thread" and t ~= "string" then
    error(format("bad argument #1 to 'path' (collectable value expected, got %s)",
      t), 2)
  end
  local max = opts and opts.max or 5
  return start(opts, "path", false, obj, nil, function(_, s)
    return paths_of(s, max)
  end, started)
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

--- Retained sizes.
-- @section retained

-- The rows of the core's retained methods, with their paths joined.
local function joined(rows)
  if rows then
    for _, r in ipairs(rows) do r.path = join(r.path) end
  end
  return rows
end

--- The objects that retain the most bytes: each one's own bytes and
-- those of every object it dominates (reachable only through it), which
-- a full collection frees once it is unreachable (docs/heap.md). The
-- snapshot must be finished and taken with retained sizes (the default).
-- @param snap a finished snapshot (`snap:retained(n)`)
-- @tparam[opt] integer n rows, 1..1024 (default 20)
-- @treturn table rows `{ path, type, self, retained }`, largest retained
-- first
function M.retained(snap, n)
  if n ~= nil and (type(n) ~= "number" or n < 1 or n > 1024 or n % 1 ~= 0) then
    error("bad argument #1 to 'retained' (n must be an integer in 1..1024)", 2)
  end
  return joined(snap:_retained(n or 20))
end

-- The record a path names: from the roots, the edges whose segments
-- spell it, longest match first (a key may itself contain a dot).
local function resolve(snap, path)
  local function down(children, at)
    local cands = {}
    for _, c in ipairs(children) do
      local seg = segment(c[2])
      if path:sub(at, at + #seg - 1) == seg then cands[#cands + 1] = { c[1], #seg } end
    end
    sort(cands, function(a, b) return a[2] > b[2] end)
    for _, c in ipairs(cands) do
      local nxt = at + c[2]
      if nxt > #path then return c[1] end
      local r = down(snap:_children(c[1]), nxt)
      if r then return r end
    end
  end
  return down(snap:_children(), 1)
end

--- Who keeps an object alive: the chain of its dominators, from the
-- object up to a root. Each one's removal would free the object.
-- @param snap a finished snapshot (`snap:retainers(x, n)`)
-- @param x the object (a table, function, userdata or thread), or a
-- path to it as the snapshot shows paths (`package.loaded.mod.cache`)
-- @tparam[opt] integer n rows at most (default 64)
-- @treturn ?table rows `{ path, type, self, retained }`, the object
-- first; nil when the snapshot does not have it
function M.retainers(snap, x, n)
  if n ~= nil and (type(n) ~= "number" or n < 1 or n % 1 ~= 0) then
    error("bad argument #2 to 'retainers' (n must be a positive integer)", 2)
  end
  local t = type(x)
  if t ~= "table" and t ~= "function" and t ~= "userdata" and t ~= "thread"
    and t ~= "string" then
    error(format("bad argument #1 to 'retainers' (object or path string expected, got %s)",
      t), 2)
  end
  -- a path names a record (a number), which the core takes too
  if t == "string" then
    x = resolve(snap, x)
    if x == nil then return nil end
  end
  return joined(snap:_retainers(x, n or 64))
end

own[1], own[2], own[3], own[4], own[5], own[6], own[7], own[8] =
  walk, M.heap, M.modules, M.snapshot, M.path, Job.step, advance, start

-- snap:diff(older), snap:retained(n), snap:retainers(x, n) on every
-- snapshot.
local meta = debug.getregistry()["memprobe.Snapshot"]
if meta and meta.__index then
  meta.__index.diff, meta.__index.retained = M.diff, M.retained
  meta.__index.retainers = M.retainers
end
-- and snap:save(path, fmt)
require "memprobe.save"

return M
