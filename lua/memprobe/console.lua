--- An admin console for games and servers: `console:run(line)` takes what
-- an operator typed (`mem slab 10`, `slab 10`, `json free` ...) and returns
-- one string to print, at most 80 columns wide. It never raises, whatever
-- the input: unknown commands and garbage get a hint, failures one short
-- line. `console:data(line)` gives the figures behind the text to scripts.
-- @module memprobe.console

local format = require "memprobe.format"
local json = require "memprobe.json"
local check = require("memprobe.options").check

local M = {}
local Console = {}
local waiting, replay  -- defined with Console:run
Console.__index = Console

local size = format.size

local MAX_WORDS = 16       -- a command line is a few words; more is garbage
local MIN_HEADROOM = 2^20  -- a limit leaves at least this much above live

local multipliers = { [""] = 1, b = 1, k = 2^10, m = 2^20, g = 2^30, t = 2^40 }

--- Parses a size like `512M`, `1.5G`, `64k`, `100B` or `1048576` into bytes.
-- @tparam string s
-- @treturn ?integer bytes, or nil when s is not a size
function M.parse_size(s)
  local num, unit = tostring(s):match("^%s*(%d+%.?%d*)%s*([kKmMgGtTbB]?)[iI]?[bB]?%s*$")
  if not num then return nil end
  return math.floor(tonumber(num) * multipliers[unit:lower()])
end

local commands, help, most = {}, {}, {}

-- A command: its name, its help line, and (when given) the most words it
-- takes after its name; more are refused with its usage.
local function def(name, usage, fn, max_words)
  commands[name] = fn
  help[#help + 1] = { name, usage }
  most[name] = max_words
end

-- A word typed by the operator, as a reply quotes it: control bytes shown
-- as '?', at most n bytes, never half a UTF-8 character.
local function shown(word, n)
  local s = tostring(word):gsub("%c", "?")
  if #s > n then s = s:sub(1, n):gsub("[\192-\255][\128-\191]*$", "") end
  return s
end

-- Stops a command with a message for the operator ("cannot: ...").
local function need(r, err)
  if r == nil then error({ hint = err }, 0) end
  return r
end

-- A count argument: nil when absent, the default; a hint when malformed.
-- Digits only: '0x10' and '1e3' are not what an operator means by a count.
local function count(s, default, what, max)
  if s == nil then return default end
  max = max or 1e6
  local n = s:match("^[1-9]%d?%d?%d?%d?%d?%d?$") and tonumber(s)
  if not n or n > max then
    error({ hint = ("%s must be a whole number from 1 to %d, got '%s'"):format(
      what or "N", max, shown(s, 20)) }, 0)
  end
  return n
end

-- The tracker the console works with: its own ('track on'), else the one
-- the host installed (memprobe.track() in init_worker, say).
local function tracker(self)
  return self.tracker or (self.mp.tracker and self.mp.tracker()) or nil
end

def("help", "this list", function()
  local rows = {}
  for _, h in ipairs(help) do rows[#rows + 1] = { h[1], h[2] } end
  return "commands (a leading 'mem' is optional):\n" .. format.columns(nil, rows)
end, 0)

def("mem", "summary: system, process, Lua heap", function(self)
  local mp = self.mp
  local f = need(mp.free())
  local rss = mp.rss and mp.rss()
  local lua = math.floor(collectgarbage("count") * 1024)
  local data = { used = f.used, available = f.available, total = f.total,
                 rss = rss, gc = lua }
  local text = string.format("sys used %s of %s (%s available)  rss %s  lua %s",
    size(f.used), size(f.total), size(f.available), size(rss), size(lua))
  return text, data
end, 0)

def("sys", "memory as free -h shows it (also: free)", function(self, h)
  -- 'free -h' is what the hand types: it is what this shows
  if h ~= nil and h ~= "-h" then error({ hint = "sys (or free) takes no words" }, 0) end
  local f = need(self.mp.free())
  return format.free(f, true), f
end, 1)
commands.free, most.free = commands.sys, most.sys

local slab_keys = "a b c l v n o p s u"
local slab_sort = {}
for k in slab_keys:gmatch("%a") do slab_sort[k] = true end

def("slab", "[N] [[sort] " .. slab_keys:gsub(" ", "|") .. "]: largest slab caches",
  function(self, ...)
    local n, sort, said_sort
    local function bad(a)
      error({ hint = "slab [N] [sort KEY], KEY one of " .. slab_keys ..
                     (a and "; got '" .. shown(a, 20) .. "'" or "") }, 0)
    end
    for _, a in ipairs({ ... }) do
      if a == "sort" and not said_sort and not sort then said_sort = true
      elseif a:match("^%d") and not n then n = count(a, 10)
      elseif slab_sort[a] and not sort then sort = a
      else bad(a) end
    end
    if said_sort and not sort then bad() end
    local s = need(self.mp.slabinfo{ top = n or 10, sort = sort or "c" })
    return format.slabinfo(s), s
  end)

local vmalloc_by = { caller = true, module = true, kind = true }

def("vmalloc", "[N] [caller|module|kind]: vmalloc use summed", function(self, ...)
  local n, by
  for _, a in ipairs({ ... }) do
    if a:match("^%d") and not n then n = count(a, 10)
    elseif vmalloc_by[a] and not by then by = a
    else error({ hint = "vmalloc [N] [caller|module|kind]; got '" .. shown(a, 20) .. "'" }, 0) end
  end
  local v = need(self.mp.vmallocinfo{ top = n or 10 })
  json.map(v.by_kind)  -- a map: {} when empty, as when not
  return format.vmalloc(v, by or "caller"), v
end)

def("proc", "[PID]: a process (default this one): rss, pss, uss, C heap",
  function(self, pid)
    local mp = self.mp
    pid = pid and count(pid, nil, "PID", 2^22 - 1)
    local p = need(mp.process(pid))
    local sm = mp.smaps(pid) or {}
    local mi = not pid and mp.mallinfo and mp.mallinfo() or {}
    local data = format.process(p, sm)
    data.c_heap = mi.uordblks and (mi.uordblks + (mi.hblkhd or 0))
    return format.columns(nil, {
      { "pid", data.pid }, { "rss", size(data.rss) },
      { "peak rss", size(data.peak_rss) }, { "virtual", size(data.virtual) },
      { "pss", size(data.pss) }, { "uss", size(data.uss) },
      { "swap", size(data.swap) }, { "C heap in use", size(data.c_heap) },
    }), data
  end, 1)

def("lua", "Lua heap: GC count and tracker figures", function(self)
  local data = { gc = math.floor(collectgarbage("count") * 1024) }
  local rows = { { "collectgarbage", size(data.gc) } }
  local t = tracker(self)
  if t then
    local s = t:stats()
    data.tracker = s
    rows[#rows + 1] = { "tracked live", size(s.live) }
    rows[#rows + 1] = { "tracked peak", size(s.peak) }
    rows[#rows + 1] = { "allocs / frees", s.allocs .. " / " .. s.frees }
    rows[#rows + 1] = { "refused", s.failed }
    rows[#rows + 1] = { "limit", s.limit and size(s.limit) or "none" }
  else
    rows[#rows + 1] = { "tracker", "off ('track on' to start)" }
  end
  return format.columns(nil, rows), data
end, 0)

-- Millions as "4.1M", for the progress line.
local function millions(n)
  if n >= 1e6 then return ("%.1fM"):format(n / 1e6) end
  if n >= 1e4 then return ("%.0fk"):format(n / 1e3) end
  return ("%d"):format(math.floor(n))
end

--- Budgeted commands.
-- With `budget_ms`, a command that walks the heap or collects it starts
-- a job the console keeps (in `self.jobs`, by command): `run` and
-- `console:step(ms)` advance it, and until it is done the command answers
-- with its progress. A task is a job made of stages, each a
-- `function(task, ms)` that says true when done; `task.job` is the job
-- whose progress the reply shows, `task.what` what it does.
-- @section tasks
local Task = {}
Task.__index = Task

local function task(self, what, stages, finish)
  return setmetatable({ clock = self.mp.clock, what = what, stages = stages,
                        at = 1, finish = finish }, Task)
end

function Task:step(ms)
  local clock = self.clock
  local deadline = clock() + ms / 1000
  while self.at <= #self.stages do
    local left = math.max((deadline - clock()) * 1000, 0.01)
    if not self.stages[self.at](self, left) then return false end
    self.at = self.at + 1
    self.job = nil
    if self.at <= #self.stages and clock() >= deadline then return false end
  end
  if self.res == nil then self.res = self:finish() end
  return true
end

function Task:progress()
  if self.job then return self.job:progress() end
  return 0, 1, 0
end

function Task:result()
  return self.res
end

-- A stage that runs a job made by make(task, ms) to its end, then hands
-- its result to done(task, result).
local function stage(make, done)
  return function(t, ms)
    if not t.job then
      -- a job's first slice runs as it is made
      local made = t.clock()
      t.job = make(t, ms)
      ms = ms - (t.clock() - made) * 1000
      if ms < 0.01 then return false end
    end
    if not t.job:step(ms) then return false end
    done(t, t.job:result())
    return true
  end
end

-- The progress line of a job.
local function progress_line(job)
  local n, total, f = job:progress()
  return ("%s: %d%% (%s of %s objects)"):format(job.what or "walking heap",
    math.floor(f * 100), millions(n), millions(total))
end

-- One slice of the job at the head of the queue, within rest ms: true
-- when it is done. A job starts when it reaches the head, and its first
-- slice runs as it is made.
local function slice(e, rest, deadline, clock)
  if not e.job then
    e.job = e.make(rest)
    rest = (deadline - clock()) * 1000
  end
  return rest >= 0.01 and e.job:step(rest)
end

-- Runs the queue of jobs for up to ms: one job at a time, oldest first
-- (two walks at once would each see the other's queue change under it,
-- and share the budget besides). A job that fails leaves the queue with
-- its error, which its command then reports. True when one finished.
local function advance(self, ms)
  local clock = self.mp.clock
  local deadline = clock() + ms / 1000
  local finished = false
  while #self.queue > 0 do
    local rest = (deadline - clock()) * 1000
    if rest < ms / 10 then break end
    local e = self.jobs[self.queue[1]]
    local ok, done = pcall(slice, e, rest, deadline, clock)
    if ok and not done then break end
    e.err = not ok and (done or "the walk failed") or nil
    e.finished, finished = true, true
    table.remove(self.queue, 1)
  end
  return finished
end

-- The result of the job 'key' makes (make() starts it): at once when
-- ready, else nil and its progress line. The queue advances within
-- budget_ms; once done, the next run of its command takes its result,
-- or a replay for the host's reply function.
local function pending(self, key, make)
  local e = self.jobs[key]
  if not e then
    e = { make = make }
    self.jobs[key] = e
    self.queue[#self.queue + 1] = key
  end
  -- a replay only answers: the ticks advance the queue
  if not e.finished and not self.replaying then advance(self, self.budget_ms) end
  if not e.finished then
    self.walking = key
    if not e.job then
      return nil, ("walking heap: queued after '%s'"):format(self.queue[1])
    end
    return nil, progress_line(e.job)
  end
  if not self.replaying then self.jobs[key] = nil end
  if e.err then error(e.err, 0) end
  return e.job:result()
end

-- The result of heap() or modules(): at once, or with budget_ms from a
-- job; nil and a progress line while it walks.
local function walked(self, what)
  if not self.budget_ms then return need(self.mp[what]()) end
  local r, line = pending(self, what, function(ms)
    return self.mp[what]{ max_ms = ms }
  end)
  if r == nil and line then return nil, line end
  return need(r)
end

-- The Lua heap's live bytes, after collections: garbage is no growth.
local function live()
  require("memprobe.settle").settle()
  return math.floor(collectgarbage("count") * 1024)
end

def("modules", "[N]: live bytes per package.loaded entry", function(self, n)
  n = count(n, 15)
  local rows, walking = walked(self, "modules")
  if not rows then return walking, nil end
  table.sort(rows, function(a, b) return (a.exclusive or 0) > (b.exclusive or 0) end)
  local cells = {}
  for i = 1, math.min(#rows, n) do
    local r = rows[i]
    cells[#cells + 1] = { r.name, size(r.exclusive), size(r.shared), r.objects }
  end
  return format.columns({ "module", "exclusive", "shared", "objects" }, cells), rows
end)

def("heap", "census of the Lua heap by type", function(self)
  local h, walking = walked(self, "heap")
  if not h then return walking, nil end
  local cells = {}
  for t, v in pairs(h.by_type) do cells[#cells + 1] = { t, v.count, size(v.bytes) } end
  table.sort(cells, function(a, b) return a[2] > b[2] end)
  -- code the host shares between states is not this heap's: a row apart
  local code = h.shared_code
  if code and code.count > 0 then
    cells[#cells + 1] = { "(shared code)", code.count, size(code.bytes) }
  end
  return format.columns({ "type", "count", "bytes" }, cells), h
end)

-- A snapshot with retained sizes as a job of the console's queue: its
-- walk and dominator tree advance by step(ms); done, read(snap) makes
-- the result and the snapshot goes (every waiting line reads the same).
local DOM = { dfs = true, preds = true, semi = true, idom = true, retain = true }
local SnapJob = {}
SnapJob.__index = SnapJob

local function snap_job(mp, ms, read)
  return setmetatable({ snap = mp.snapshot{ max_ms = ms }, read = read,
                        gc = collectgarbage("count") * 1024,
                        what = "walking heap" }, SnapJob)
end

function SnapJob:step(ms)
  if self.res ~= nil then return true end
  if not self.snap:step(ms) then return false end
  self.res = self.read(self.snap) or false
  self.snap:close()
  return true
end

function SnapJob:result() return self.res end

function SnapJob:progress()
  if self.res ~= nil then return 1, 1, 1 end
  local st = self.snap:stats()
  if DOM[st.phase] then
    self.what = "retained sizes"  -- the walk is done: its objects are all
    return st.objects, st.objects, 0.99
  end
  -- about 100 bytes an object, as heap jobs guess before their first
  local total = math.max(self.gc / 100, st.objects * 1.01, 1)
  return st.objects, total, st.objects / total
end

-- What read(snap) makes of a finished snapshot, at once or from a job
-- (key) with budget_ms; nil and a progress line while it walks.
local function snapped(self, key, read)
  if not self.budget_ms then
    local snap = self.mp.snapshot()
    local r = read(snap)
    snap:close()
    return r or false
  end
  return pending(self, key, function(ms) return snap_job(self.mp, ms, read) end)
end

-- Rows { path, type, self, retained } as a table.
local function retained_table(rows)
  local cells = {}
  for _, r in ipairs(rows) do
    cells[#cells + 1] = { size(r.retained), size(r.self), r.type, shown(r.path, 100) }
  end
  return format.columns({ "retained", "self", "type", "path" }, cells)
end

def("retained", "[N]: the objects whose loss would free the most", function(self, n)
  n = count(n, 15, "N", 1024)
  local rows, walking = snapped(self, "retained " .. n, function(snap)
    return snap:retained(n)
  end)
  if rows == nil then return walking, nil end
  return retained_table(rows), rows
end, 1)

def("who", "<path>: what keeps it alive, its dominators up to a root", function(self, path)
  if path == nil then return "usage: who <path>", nil end
  local rows, walking = snapped(self, "who " .. path, function(snap)
    return snap:retainers(path)
  end)
  if rows == nil then return walking, nil end
  if not rows then return "not in the heap: " .. shown(path, 60), nil end
  return retained_table(rows), rows
end, 1)

-- The modules rows the mark/diff pair compares: the stack holds the
-- console's own call, the mark included.
local function by_module(rows)
  local m, total = {}, 0
  for _, r in ipairs(rows or {}) do
    if r.name ~= "(stack)" then
      m[r.name] = r.exclusive
      total = total + r.exclusive
    end
  end
  return m, total
end

-- What the mark/diff pair compares besides the Lua heap; each source may
-- be unreadable. With budget_ms, the modules walk is a stage of the task.
local function observe(mp)
  local o = {}
  o.slab = mp.slabinfo and mp.slabinfo() or nil
  if mp.modules then o.modules = by_module(mp.modules()) end
  return o
end

-- What the comparison needs, loaded before a mark counts: none of it is
-- the host's growth. The size model is measured apart (warm_model).
local function warm(self)
  require "memprobe.heap"
  require "memprobe.diff"
  if self.mp.slabinfo then
    local s = self.mp.slabinfo()
    if s then self.mp.diff(s, s) end
  end
  return true
end

-- The heap walk's size model, measured within ms (all of it without).
local function warm_model(ms)
  return require("memprobe.heap").model_ready(ms)
end

-- The mark's task: warm, then the modules walk, whose live total (the
-- stack left out) is the mark's Lua heap: a walk counts no garbage, and
-- a full collection cannot be cut in slices in generational mode.
local function mark_task(self)
  local marked = {}
  return task(self, "walking heap", {
    function() return warm(self) end,
    function(_, ms) return warm_model(ms) end,
    stage(function(t, ms)
      t.what = "walking heap"
      marked.slab = self.mp.slabinfo and self.mp.slabinfo() or nil
      return self.mp.modules{ max_ms = ms }
    end, function(_, rows) marked.modules, marked.walked = by_module(rows) end),
  }, function() return marked end)
end

def("mark", "remember the present, for 'diff'", function(self)
  local text, data = "marked: " .. os.date("%H:%M:%S"), { ok = true }
  if self.budget_ms then
    local marked, walking = pending(self, "mark", function() return mark_task(self) end)
    if not marked then return walking, nil end
    self.marked = marked
    return text, data
  end
  -- the heap walk, its size model and memprobe.diff load first
  warm(self)
  warm_model()
  local marked = observe(self.mp)
  self.marked = marked
  -- counted with the mark itself held, as 'diff' will count it; a mark
  -- without its count (memory ran out) is no mark
  self.marked = nil
  marked.lua = live()
  self.marked = marked
  return text, data
end)

-- The diff's text and figures from the mark and now.
local function compare(self, old, grew, now)
  local lines = { "lua heap " .. size(grew) }
  local data = { lua = grew }
  if old.slab and now.slab then
    data.slab = self.mp.diff(old.slab, now.slab)
    for i = 1, math.min(5, #data.slab.grew) do
      local g = data.slab.grew[i]
      lines[#lines + 1] = string.format("slab %-24s %s", g.name, size(g.delta))
    end
  end
  if old.modules and now.modules then
    data.modules = {}
    for name, b in pairs(now.modules) do
      local d = b - (old.modules[name] or 0)
      if d ~= 0 then data.modules[#data.modules + 1] = { name = name, bytes = d } end
    end
    table.sort(data.modules, function(a, b) return a.bytes > b.bytes end)
    for i = 1, math.min(5, #data.modules) do
      local m = data.modules[i]
      lines[#lines + 1] = string.format("module %-22s %s", m.name, size(m.bytes))
    end
  end
  return table.concat(lines, "\n"), data
end

-- The diff's task: the modules walk, as the mark's.
local function diff_task(self)
  local now = {}
  return task(self, "walking heap", {
    stage(function(_, ms)
      now.slab = self.mp.slabinfo and self.mp.slabinfo() or nil
      return self.mp.modules{ max_ms = ms }
    end, function(_, rows) now.modules, now.walked = by_module(rows) end),
  }, function() return now end)
end

def("diff", "what grew since 'mark': slab, Lua, modules", function(self)
  local old = self.marked
  if not old then return "no mark yet: type 'mark' first", nil end
  if self.budget_ms then
    local now, walking = pending(self, "diff", function() return diff_task(self) end)
    if not now then return walking, nil end
    return compare(self, old, now.walked - old.walked, now)
  end
  local grew = live() - old.lua  -- before this diff makes anything
  return compare(self, old, grew, observe(self.mp))
end)

def("gc", "full collection; shows what it freed", function()
  local before = collectgarbage("count")
  collectgarbage("collect")
  local freed = math.floor((before - collectgarbage("count")) * 1024)
  return "collected: freed " .. size(freed), { freed = freed }
end, 0)

def("track", "on|off: the allocator tracker", function(self, what)
  local t = tracker(self)
  if what == "on" then
    if t then return "tracking (already on): live " .. size(t:stats().live), { on = true } end
    self.tracker = self.mp.track()
    return "tracking: live " .. size(self.tracker:stats().live), { on = true }
  elseif what == "off" then
    if t and not self.tracker then
      return "the host installed this tracker: not stopped", { on = true }
    end
    if t then t:untrack() end
    self.tracker = nil
    return "tracking off", { on = false }
  end
  return "usage: track on|off", nil
end, 1)

-- The least limit the console accepts: live bytes plus half again, and at
-- least MIN_HEADROOM more. Below it the collector cannot keep up (Lua 5.1
-- and LuaJIT have no emergency collection) and the host dies.
local function least_limit(live_bytes)
  return live_bytes + math.max(MIN_HEADROOM, math.floor(live_bytes / 2))
end

def("limit", "<size: 512M, 2G ...>|off: cap the Lua heap", function(self, what)
  local t = tracker(self)
  if not t then return "the limit needs the tracker: 'track on' first", nil end
  if what == "off" then
    t:limit(nil)
    return "limit off", { limit = false }
  end
  if what and what:match("^%d+%.?%d*$") then
    return ("a limit needs a unit: %sM, %sK or %sB"):format(what, what, what):sub(1, 79), nil
  end
  local bytes = M.parse_size(what or "")
  if not bytes then return "usage: limit <size like 512M>|off", nil end
  if bytes >= 2^53 then return "refused: " .. shown(what, 20) .. " is more than any heap", nil end
  -- with a budget, no collections: garbage counts as live, which only
  -- raises the least limit
  local floor = least_limit(self.budget_ms and
    math.floor(collectgarbage("count") * 1024) or live())
  if bytes < floor then
    return ("refused: %s is below live plus headroom; at least %s"):format(
      size(bytes), size(floor)), nil
  end
  -- reply first: once the cap is on, nothing more is made here
  local text, data = "limit " .. size(bytes), { limit = bytes }
  t:limit(bytes)
  return text, data
end, 1)

-- The allocation-site profiler (memprobe.profile): one per console.
local PROF_USAGE = "usage: prof start [rate]|top [N] [live|alloc]|stop|flame PATH"

local function prof_top(p, a, b)
  local n, kind = 10, "live"
  for _, w in ipairs({ a, b }) do
    if w == "live" or w == "alloc" then kind = w
    else n = count(w, 10, "N", 1000) end
  end
  local rows, out = p:top(n, kind), {}
  for i, r in ipairs(rows) do
    local site = #r.site > 40 and ".." .. r.site:sub(-38) or r.site  -- keep the line
    out[i] = { shown(site, 40), shown(r.func, 16), size(r.bytes), r.count }
  end
  if #out == 0 then return ("no %s samples yet"):format(kind), rows end
  return kind .. " bytes by site (estimates)\n" ..
    format.columns({ "site", "func", "bytes", "count" }, out), rows
end

def("prof", "start [rate]|top [N] [live|alloc]|stop|flame PATH: allocation sites",
  function(self, what, a, b)
    if what == "start" then
      if b ~= nil then return PROF_USAGE, nil end
      local rate = a and M.parse_size(a)
      if a and not (rate and rate >= 1 and rate < 2^53) then
        return "usage: prof start [rate, bytes per sample: 64K, 1M ...]", nil
      end
      if self.profile then self.profile:stop() end
      self.profile = self.mp.profile{ rate = rate }
      local r = self.profile.rate
      return "profiling: one sample per " .. size(r) .. " allocated", { rate = r }
    end
    local p = self.profile
    if what == "top" then
      if not p then return "no profile: 'prof start' first", nil end
      return prof_top(p, a, b)
    elseif what == "stop" and a == nil then
      if not p then return "no profile: 'prof start' first", nil end
      p:stop()
      local info = p:info()
      return ("stopped after %d samples"):format(info.samples), info
    elseif what == "flame" and a ~= nil and b == nil then
      if not p then return "no profile: 'prof start' first", nil end
      need(p:flamegraph(a))
      return "flame graph written to " .. shown(a, 50), { path = a }
    end
    return PROF_USAGE, nil
  end, 3)

def("watch", "take a sample; rank growth once there are 3", function(self)
  if not self.watcher then
    self.watcher = self.mp.watch{ sources = { "meminfo", "slabinfo" } }
  end
  self.watcher:sample()
  local r = self.watcher:report()
  return format.watch(r, 10), r
end, 0)

def("drop", "<1|2|3>: drop caches (if the host allows it)", function(self, level)
  if not self.allow_drop_caches then
    return "drop is disabled on this console (allow_drop_caches = false)", nil
  end
  local n = tonumber(level)
  if n ~= 1 and n ~= 2 and n ~= 3 then return "usage: drop 1|2|3", nil end
  local ok, r = self.mp.drop_caches(n)
  if not ok then error({ hint = r }, 0) end
  return "dropped: freed " .. size(r.freed), r
end, 1)

def("json", "<command>: the command's figures as JSON", function(self, ...)
  local args = { ... }
  local name = table.remove(args, 1)
  if name == nil or name == "json" or not commands[name] then
    return "usage: json <command>", nil
  end
  local text, data = self:call(name, args)
  if data == nil then return text, nil end
  local s, err = json.encode(data)
  return s or err, data
end)

-- "usage: NAME ARGS", ARGS from the help line: what comes before its
-- first ': ' outside brackets ('limit <size: 512M ...>|off: ...').
local function usage(name)
  local line = ""
  for _, h in ipairs(help) do if h[1] == name then line = h[2] end end
  local depth = 0
  for i = 1, #line do
    local c = line:sub(i, i)
    if c == "[" or c == "<" then depth = depth + 1
    elseif c == "]" or c == ">" then depth = depth - 1
    elseif c == ":" and depth == 0 then return "usage: " .. name .. " " .. line:sub(1, i - 1) end
  end
  return "usage: " .. name
end

-- One short line for the operator: no install paths, no traceback.
local function oneline(e)
  local msg = type(e) == "table" and tostring(e.hint) or tostring(e)
  -- "error loading module 'memprobe.heap' from file '/usr/...': not
  -- enough memory" and the like
  if msg:find("not enough memory", 1, true) then return "failed: not enough memory" end
  msg = msg:match("^[^\n]*")
  -- "/usr/.../console.lua:65: bad argument ...", an absolute path with
  -- spaces, a chunk loaded from a string ('[string "..."]:3: '), nested
  -- prefixes; never the message's own words ("error in a.lua:3: ...")
  local prev
  repeat
    prev = msg
    msg = msg:gsub("^[^%s:]+:%d+: ", ""):gsub("^/[^:]-%.lua:%d+: ", "")
      :gsub('^%[string ".-"%]:%d+: ', "")
  until msg == prev
  msg = msg:gsub("^bad argument #%d+ to '([^']*)' %((.*)%)$", "%1: %2")
  local s = (type(e) == "table" and "cannot: " or "failed: ") .. msg
  return #s > 79 and s:sub(1, 78) .. "~" or s
end

-- Runs a command by name; errors come back as one short line, never raise.
function Console:call(name, args)
  if #args > MAX_WORDS then return "too many words: a command takes a few", nil end
  if most[name] and #args > most[name] then return usage(name), nil end
  local ok, text, data = pcall(commands[name], self, (table.unpack or unpack)(args))
  if ok then return text, data end
  return oneline(text), nil
end

-- Words of a line, without a leading 'mem'; nil when there are more
-- than MAX_WORDS.
local function words(line)
  local w = {}
  if type(line) ~= "string" and type(line) ~= "number" then line = "" end
  for word in tostring(line):gmatch("%S+") do
    if #w == MAX_WORDS then return nil end
    w[#w + 1] = word
  end
  if w[1] == "mem" and #w > 1 then table.remove(w, 1) end
  return w
end

-- text, data for a line; may raise only when memory runs out.
local function answer(self, line)
  local w = words(line)
  if w == nil then return "too many words: a command takes a few", nil end
  local name = table.remove(w, 1)
  if name == nil then return "type 'help' for the commands", nil end
  if not commands[name] then
    return "unknown command '" .. shown(name, 40) .. "': type 'help'", nil
  end
  return self:call(name, w)
end

-- 'limit off' first and without making anything (find with no captures
-- allocates nothing): it is how an operator gets out of a heap that sits
-- at its cap. True when it was that and the limit is off.
local function limit_off(self, line)
  if type(line) ~= "string" or not (line:find("^%s*limit%s+off%s*$")
     or line:find("^%s*mem%s+limit%s+off%s*$")) then
    return false
  end
  local t = tracker(self)
  if t then t:limit(nil) end
  return t ~= nil
end

-- Remembers a line that answered with a job's progress, for replay.
waiting = function(self, line)
  for _, w in ipairs(self.waiting) do if w == line then return end end
  self.waiting[#self.waiting + 1] = line
end

-- The answers of the waiting lines whose jobs are done, into answers;
-- the lines still waiting into still.
local function answer_waiting(self, still, answers)
  for _, line in ipairs(self.waiting) do
    self.walking = nil
    local ok, text = pcall(answer, self, line)
    if self.walking then
      still[#still + 1] = line
    else
      if not (ok and type(text) == "string") then
        local ok2, msg = pcall(oneline, text)
        text = ok2 and msg or "failed: not enough memory"
      end
      answers[#answers + 1] = { line, text }
    end
  end
end

-- Answers through self.reply the waiting lines whose jobs are done; each
-- finished job serves every line that waited for it, then goes. When the
-- heap is at its cap and that fails, nothing changes: the lines and their
-- jobs wait for the next tick.
replay = function(self)
  local still, answers = {}, {}
  self.replaying = true
  local ok = pcall(answer_waiting, self, still, answers)
  self.replaying = nil
  if not ok then return end
  self.waiting = still
  for key, e in pairs(self.jobs) do
    if e.finished then self.jobs[key] = nil end
  end
  for _, a in ipairs(answers) do pcall(self.reply, a[1], a[2]) end
end

-- The answer to a line, remembered for replay when it started a job that
-- it waits for: ok, text, data as pcall returns them. All of it runs
-- protected: at the heap's cap even setting a field can allocate (a new
-- key makes the table grow), and the error must not reach the host.
local function serve(self, line)
  local console = type(self) == "table" and self or {}
  console.walking = nil
  local ok, text, data = pcall(answer, self, line)
  if console.walking then waiting(console, line) end
  return ok, text, data
end

local function served(self, line)
  local ok, ok1, text, data = pcall(serve, self, line)
  if not ok then return false, ok1 end
  return ok1, text, data
end

--- Runs one line typed by an operator.
-- @tparam string line e.g. `"mem slab 10"` or `"slab 10"`
-- @treturn string text to print: exactly one value, and it never raises,
-- so `return console:run(line)` hands a reply function a string
function Console:run(line)
  if limit_off(self, line) then return "limit off" end
  local ok, text = served(self, line)
  if ok and type(text) == "string" then return text end
  local ok2, msg = pcall(oneline, text)
  return ok2 and msg or "failed: not enough memory"
end

local LIMIT_OFF = { limit = false }  -- made once: 'limit off' may run at the cap

--- The figures behind a command's text, for scripts.
-- @tparam string line as for `run`
-- @treturn ?table the figures, or nil and the text (a hint or an error)
function Console:data(line)
  if limit_off(self, line) then return LIMIT_OFF end
  local ok, text, data = served(self, line)
  if not ok then
    local ok2, msg = pcall(oneline, text)
    return nil, ok2 and msg or "failed: not enough memory"
  end
  if data == nil then return nil, text end
  return data
end

--- Advances the jobs that budgeted commands started (`heap`,
-- `modules`, `mark`, `diff`), from the host's tick: a game
-- loop's frame, an `ngx.timer`, a `skynet.timeout`. They run one at a
-- time, oldest first, within the one budget. When one is done and the
-- console has a `reply` function, the lines that waited for it are
-- answered through it; else the next `run` of the command answers.
-- @tparam[opt] number ms the budget of this tick (default `budget_ms`)
-- @treturn boolean true when no job is left
function Console:step(ms)
  -- at the heap's cap the replay's own tables may fail: the host's tick
  -- goes on, and the lines wait for the next one
  if advance(self, ms or self.budget_ms or 2) and self.reply then pcall(replay, self) end
  return #self.queue == 0
end

--- Creates a console.
-- @tparam[opt] table opts `allow_drop_caches` (default false): whether
-- `drop` may write /proc/sys/vm/drop_caches; `budget_ms`: the commands
-- that walk the heap (`heap`, `modules`, `mark`, `diff`) run as jobs in
-- slices of that many milliseconds, answering
-- with their progress until done; `reply(line, text)`: called from
-- `step` with the answer of each line that waited for a job
-- @treturn table a console with `run(line)`, `data(line)` and `step(ms)`
function M.new(opts)
  opts = check("new", opts, { allow_drop_caches = "boolean",
                               budget_ms = "number", reply = "function" }, 1, 3)
  -- a budgeted console (made at start-up, as a rule) loads the heap layer
  -- now: its strings, new in a heap of millions of strings, made Lua 5.4
  -- rehash its whole string table in the first budgeted walk (66 ms at
  -- 10M objects); require "memprobe" itself stays without it
  if opts.budget_ms then require "memprobe.heap" end
  return setmetatable({
    mp = require "memprobe",
    allow_drop_caches = opts.allow_drop_caches == true,
    budget_ms = opts.budget_ms and opts.budget_ms > 0 and opts.budget_ms or nil,
    reply = opts.reply,
    jobs = {}, queue = {}, waiting = {},
  }, Console)
end

return M
