--- Sampling memory sources over time and ranking what grows.
-- A watcher reads its sources at each `sample()`; `report()` fits a
-- least-squares line through every series and ranks them by slope in
-- bytes per minute, with r² telling steady growth from noise.
-- @module memprobe.watch

local diff = require "memprobe.diff"
local check = require("memprobe.options").check

local M = {}

local Watch = {}
Watch.__index = Watch

-- Each source reads one set of named byte series, or nil, message.
local known = {
  meminfo = function(mp) return mp.meminfo() end,
  slabinfo = function(mp) return mp.slabinfo() end,
  vmallocinfo = function(mp) return mp.vmallocinfo() end,
  -- the process and the Lua state, for a program watching itself
  process = function(mp)
    local rss, err = mp.rss()
    return rss and { rss = rss }, err
  end,
  lua = function()
    return { heap = math.floor(collectgarbage("count") * 1024) }
  end,
}

-- Samples are timed on the core's monotonic clock: os.time() has
-- one-second steps (rates twice wrong, sub-second samples 0 B/min).
local function sleeper()
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" and socket.sleep then return socket.sleep end
  return function(s) os.execute(("sleep %.3f"):format(s)) end
end

--- Makes a watcher. Nothing is read until `sample()` or `run()`.
-- @tparam[opt] table opts `interval` seconds between samples in `run()`
-- (default 1), `samples` how many `run()` takes (default 10, at least 2),
-- `sources` a list of "meminfo", "slabinfo", "vmallocinfo", "process"
-- (the process's rss) and "lua" (the Lua heap) (default the first
-- three), `clock` (default `memprobe.clock`, monotonic seconds) and
-- `sleep` (default lua-socket's when installed, else the sleep command).
-- @treturn table a watcher
function M.new(opts)
  opts = check("watch", opts, { interval = "number", samples = "count",
    sources = "table", clock = "function", sleep = "function" }, 1, 3)
  local function bad(msg) error("bad argument #1 to 'watch' (" .. msg .. ")", 3) end
  if opts.samples and opts.samples < 2 then bad("samples must be an integer >= 2") end
  if opts.sources then
    if #opts.sources == 0 then bad("sources must be a non-empty list") end
    local seen = {}
    for _, s in ipairs(opts.sources) do
      if not known[s] then bad(("unknown source '%s'"):format(tostring(s))) end
      if seen[s] then bad(("source '%s' given twice"):format(s)) end
      seen[s] = true
    end
  end
  local w = setmetatable({
    interval = 1, samples = 10,
    sources = { "meminfo", "slabinfo", "vmallocinfo" },
    clock = require("memprobe.core").clock, sleep = sleeper(),
    times = {}, data = {}, errors = {}, n = 0,
  }, Watch)
  for k, v in pairs(opts) do w[k] = v end
  return w
end

--- Reads every source once.
-- A source that cannot be read (no permission) is left out and its
-- message kept in `w.errors`.
-- @tparam[opt] number t the time of the sample in seconds (default: the clock)
-- @treturn number how many samples have been taken
function Watch:sample(t)
  local memprobe = require "memprobe"
  local n = self.n + 1
  if t ~= nil and (type(t) ~= "number" or t ~= t or t == math.huge or t == -math.huge) then
    error("bad argument #1 to 'sample' (a finite number of seconds expected, got " ..
      (type(t) == "number" and tostring(t) or type(t)) .. ")", 2)
  end
  t = t or self.clock()
  -- every source is read before the sample counts: a sample cut short
  -- (memory ran out) would read as series falling to 0 and back
  local read, errs = {}, {}
  for i, src in ipairs(self.sources) do
    local r, err = known[src](memprobe)
    if r then
      read[i] = (src == "process" or src == "lua") and r or diff.series(r)
      for name in pairs(read[i]) do
        local d = self.data[src] or {}
        self.data[src] = d
        d[name] = d[name] or {}
      end
    else
      errs[src] = err
    end
  end
  self.times[n] = t
  for i, src in ipairs(self.sources) do
    for name, v in pairs(read[i] or {}) do self.data[src][name][n] = v end
  end
  for src, err in pairs(errs) do self.errors[src] = err end
  self.n = n
  return n
end

--- Takes `samples` samples, `interval` seconds apart.
-- @tparam[opt] function fn called as fn(watcher, n) after each sample
-- @treturn table the watcher's `report()`
function Watch:run(fn)
  for i = 1, self.samples do
    if i > 1 and self.interval > 0 then self.sleep(self.interval) end
    self:sample()
    if fn then fn(self, self.n) end
  end
  return self:report()
end

--- Least-squares slope (y per unit of x) and r² of the points (x[i], y[i]).
-- r² is 0 for a flat line.
-- @tparam {number,...} x
-- @tparam {number,...} y
-- @treturn number slope
-- @treturn number r2
function M.fit(x, y)
  local n, sx, sy = #x, 0, 0
  for i = 1, n do sx, sy = sx + x[i], sy + y[i] end
  local mx, my = sx / n, sy / n
  local sxx, syy, sxy = 0, 0, 0
  for i = 1, n do
    local dx, dy = x[i] - mx, y[i] - my
    sxx, syy, sxy = sxx + dx * dx, syy + dy * dy, sxy + dx * dy
  end
  if sxx == 0 then return 0, 0 end
  local slope = sxy / sxx
  local r2 = syy > 0 and (sxy * sxy) / (sxx * syy) or 0
  return slope, r2
end

--- Ranks the series by growth.
-- @tparam[opt] table opts `top` keeps the N fastest growers in `series`
-- @treturn table `{ samples, seconds, changed, series = {...},
-- flagged = {...}, errors }`. Each series entry is `{ source, name, slope, r2, first,
-- last, delta, monotonic }`, slope in bytes per minute; series are
-- sorted by slope, largest first; those that changed are listed.
-- `flagged` holds the entries that grew and never shrank between two
-- samples (monotonic growth; at least 3 samples).
function Watch:report(opts)
  opts = check("report", opts, { top = "count" }, 1, 3)
  local n, times = self.n, self.times
  local out, flagged = {}, {}
  for _, src in ipairs(self.sources) do
    for name, s in pairs(self.data[src] or {}) do
      local x, y, mono, grew = {}, {}, true, false
      for i = 1, n do
        local v = s[i] or 0  -- a cache or caller not there had no bytes
        x[i], y[i] = times[i] - times[1], v
        if i > 1 then
          if v < y[i - 1] then mono = false elseif v > y[i - 1] then grew = true end
        end
      end
      local first, last = y[1], y[n]
      if n >= 2 and last ~= first or (n >= 2 and not mono) then
        local slope, r2 = M.fit(x, y)
        local e = { source = src, name = name, slope = slope * 60, r2 = r2,
                    first = first, last = last, delta = last - first,
                    monotonic = mono and grew }
        out[#out + 1] = e
        if e.monotonic and n >= 3 then flagged[#flagged + 1] = e end
      end
    end
  end
  local function order(a, b)
    if a.slope ~= b.slope then return a.slope > b.slope end
    if a.source ~= b.source then return a.source < b.source end
    return a.name < b.name
  end
  table.sort(out, order)
  table.sort(flagged, order)
  local changed = #out
  if opts.top then
    for i = #out, opts.top + 1, -1 do out[i] = nil end
  end
  -- a map even when empty (JSON {}), marked as memprobe.json expects
  local errors = setmetatable({}, { __jsontype = "object" })
  for k, v in pairs(self.errors) do errors[k] = v end
  return { samples = n, seconds = n > 0 and times[n] - times[1] or 0,
           changed = changed, series = out, flagged = flagged, errors = errors }
end

return M
