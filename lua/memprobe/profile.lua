--- The sampled allocation-site profiler: `memprobe.profile{ rate = BYTES }`.
--
-- The C core (csrc/profile.c) samples one allocation per `rate` bytes on
-- average (a Poisson process over allocated bytes) and charges each
-- sample to the Lua stack at the next instruction the VM runs; this
-- layer turns its rows into the reports: `top`, `folded`, `pprof` and
-- `flamegraph`. docs/profile.md says what a sample is charged to.
-- @module memprobe.profile

local core = require "memprobe.core"

local M = {}
-- The profile that samples now, if any (weak: a dropped one may go).
local current = setmetatable({}, { __mode = "v" })

--- The default rate, bytes per sample on average (docs/profile.md says
-- why this value).
M.DEFAULT_RATE = 64 * 1024

local Profile = {}
Profile.__index = Profile

-- LuaJIT: 'precise' allows no side trace of its own (maxside=0: a hot
-- exit gets a stub that goes back to the interpreter). LuaJIT has no call
-- that reads a parameter, so the ones the program sets through
-- jit.opt.start are noted here, to be put back; one never set has
-- LuaJIT's default. (A hotexit past 255, the exit counter's limit, was
-- tried before: a hot exit of a pairs() loop then never got its side
-- trace, and the loop re-entered the trace for ever.)
local DEFAULT_MAXSIDE = 100
local jit_params, jit_start = {}, nil
if jit and jit.opt and jit.opt.start then
  local reg = debug.getregistry()
  local noted = reg["memprobe.jitparams"]  -- one wrapper per state
  if not noted then
    local opt = require "jit.opt"
    local start = opt.start
    noted = { params = {}, start = start }
    reg["memprobe.jitparams"] = noted
    opt.start = function(...)
      start(...)  -- raises on a bad one: nothing is noted then
      for i = 1, select("#", ...) do
        local a = select(i, ...)
        if type(a) == "string" then
          local k, v = a:match("^(%w+)=(%d+)$")
          if k then noted.params[k] = tonumber(v) end
        end
      end
    end
  end
  jit_params, jit_start = noted.params, noted.start
end

-- Puts back the parameter 'precise' changed.
local function unprecise()
  jit_start("maxside=" .. (jit_params.maxside or DEFAULT_MAXSIDE))
end

local KINDS = { live = true, alloc = true }

-- Methods check their self as the C objects do (a dot-call gives this).
local function check_self(self, name)
  if getmetatable(self) ~= Profile then
    error(("bad argument #1 to '%s' (memprobe.Profile expected, got %s)")
      :format(name, type(self)), 3)
  end
end

local function check_kind(name, kind, arg)
  if kind == nil then return "live" end
  if not KINDS[kind] then
    error(("bad argument #%d to '%s' (kind must be \"live\" or \"alloc\")")
      :format(arg, name), 3)
  end
  return kind
end

local function round(x)
  return math.floor(x + 0.5)
end

--- Starts sampling the running state (tracking it first if needed). One
-- profile samples a state at a time: the one before is stopped, and its
-- figures stay as they were.
-- @tparam[opt] table opts `rate` (bytes per sample on average, default
-- `DEFAULT_RATE`), `seed` (a number: the same draws every run),
-- `precise` (LuaJIT, default true: no new side traces while the profile
-- runs, so that compiled code returns to the interpreter at every exit
-- and samples are charged to the function that made them; `false`
-- leaves the JIT's parameters alone; docs/profile.md)
-- @treturn Profile the running profile
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'profile' (table expected, got " .. type(opts) .. ")", 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "rate" and k ~= "seed" and k ~= "precise" then
      error(("bad argument #1 to 'profile' (unknown option '%s')"):format(tostring(k)), 2)
    end
  end
  local rate = opts.rate or M.DEFAULT_RATE
  if type(rate) ~= "number" or rate < 1 or rate ~= rate or rate >= 2^53 then
    error("bad argument #1 to 'profile' (rate must be 1 byte or more)", 2)
  end
  if opts.precise ~= nil and type(opts.precise) ~= "boolean" then
    error("bad argument #1 to 'profile' (precise must be a boolean)", 2)
  end
  local seed = opts.seed
  if seed ~= nil and (type(seed) ~= "number" or seed < 0 or seed >= 2^53 or seed % 1 ~= 0) then
    error("bad argument #1 to 'profile' (seed must be an integer from 0 to 2^53 - 1)", 2)
  end
  local before = current[1]
  if before and before.precise then before:stop() end
  local self = setmetatable({ core = core.profile(rate, opts.seed), rate = rate }, Profile)
  current[1] = self
  if opts.precise ~= false and jit_start then
    -- Compiled code reaches the count hook only where it returns to the
    -- interpreter; side traces linked to other traces skip that, and
    -- carry samples into the code that runs next. Without new side
    -- traces (and with the old ones flushed) every exit goes through the
    -- interpreter. maxside is put back at stop().
    -- (a finalizer may not flush: LuaJIT refuses it during a collection,
    -- and the traces linked already stay until the next flush)
    pcall(jit.flush)
    jit_start("maxside=0")
    self.precise = true
    -- a profile dropped unstopped puts the parameter back too
    local undo = newproxy(true)
    getmetatable(undo).__gc = function()
      if self.precise then self.precise = nil; unprecise() end
    end
    self.undo = undo
  end
  return self
end

--- Stops sampling. The live view still follows frees of sampled blocks.
-- @return nothing
function Profile:stop()
  check_self(self, "stop")
  self.core:stop()
  if self.precise then
    self.precise = nil
    unprecise()
  end
end

--- Forgets every sample; a running profile goes on sampling.
-- @return nothing
function Profile:reset()
  check_self(self, "reset")
  self.core:reset()
end

--- The profile's own counters.
-- @treturn table `{ rate, samples, dropped, pending, live_blocks,
-- running, attached }`
function Profile:info()
  check_self(self, "info")
  return self.core:info()
end

-- The stacks with frames resolved: { bytes, count, frames = {...} } for
-- the kind, leaf first, nonzero only.
local function stacks(self, kind)
  local raw = self.core:rows()
  local frames, out = raw.frames, {}
  local bi, ni = 1, 2
  if kind == "live" then bi, ni = 3, 4 end
  for _, s in ipairs(raw.stacks) do
    local bytes, count = round(s[bi]), round(s[ni])
    if bytes > 0 and count > 0 then
      local fr = {}
      for i = 5, #s do
        local f = frames[s[i]]
        local site = f[2] >= 0 and ("%s:%d"):format(f[1], f[2]) or f[1]
        fr[#fr + 1] = { site = site, func = f[6], what = f[4] }
      end
      out[#out + 1] = { bytes = bytes, count = count, frames = fr }
    end
  end
  return out
end

local function label(f)
  return ("%s (%s)"):format(f.func, f.site)
end

--- The largest allocation sites, by estimated bytes. A site is the line
-- the sampled allocations were charged to; `stack` is its heaviest
-- stack, leaf first.
-- @tparam[opt] number n rows, a whole number >= 0 (default 10;
-- `math.huge` for all)
-- @tparam[opt] string kind `"live"` (sampled blocks not freed: the leak
-- view, default) or `"alloc"` (everything sampled since the start)
-- @treturn table rows `{ site, func, stack, bytes, count }`, largest first
function Profile:top(n, kind)
  check_self(self, "top")
  if n ~= nil and (type(n) ~= "number" or n ~= n or n < 0 or
                   (n ~= math.huge and n % 1 ~= 0)) then
    error("bad argument #1 to 'top' (number of rows expected: a whole number >= 0, got "
      .. tostring(n) .. ")", 2)
  end
  kind = check_kind("top", kind, 2)
  local by, rows = {}, {}
  for _, s in ipairs(stacks(self, kind)) do
    local leaf = s.frames[1] or { site = "?", func = "?" }
    local r = by[leaf.site]
    if not r then
      r = { site = leaf.site, func = leaf.func, bytes = 0, count = 0, best = -1 }
      by[leaf.site] = r
      rows[#rows + 1] = r
    end
    r.bytes, r.count = r.bytes + s.bytes, r.count + s.count
    if s.bytes > r.best then
      r.best = s.bytes
      local st = {}
      for i, f in ipairs(s.frames) do st[i] = label(f) end
      r.stack = st
    end
  end
  table.sort(rows, function(a, b)
    if a.bytes ~= b.bytes then return a.bytes > b.bytes end
    return a.site < b.site
  end)
  local out = {}
  for i = 1, math.min(n or 10, #rows) do
    local r = rows[i]
    r.best = nil
    out[i] = r
  end
  return out
end

-- Folded-stack frame names: no ';' (the separator) nor newline.
local function folded_name(f)
  return (label(f):gsub("[;\n]", "_"))
end

--- Folded stacks: one line per stack, `root;...;leaf bytes`, the text
-- flamegraph.pl, inferno and speedscope read.
-- @tparam[opt] string kind `"live"` (default) or `"alloc"`
-- @treturn string the lines, largest first
function Profile:folded(kind)
  check_self(self, "folded")
  kind = check_kind("folded", kind, 1)
  local lines = {}
  local all = stacks(self, kind)
  table.sort(all, function(a, b) return a.bytes > b.bytes end)
  for _, s in ipairs(all) do
    local names = {}
    for i = #s.frames, 1, -1 do names[#names + 1] = folded_name(s.frames[i]) end
    if #names == 0 then names[1] = "(no stack)" end
    lines[#lines + 1] = table.concat(names, ";") .. " " .. s.bytes
  end
  return table.concat(lines, "\n") .. (#lines > 0 and "\n" or "")
end

--- Writes a gzip'd pprof `profile.proto` with the sample types
-- `alloc_objects`, `alloc_space`, `inuse_objects` and `inuse_space`
-- (`go tool pprof`, Pyroscope and Grafana read it).
-- @tparam string path the file to write
-- @tparam[opt] string kind the default sample type: `"live"` (inuse_space,
-- default) or `"alloc"` (alloc_space)
-- @treturn true|nil true, or nil, message, errno
function Profile:pprof(path, kind)
  check_self(self, "pprof")
  if type(path) ~= "string" then
    error("bad argument #1 to 'pprof' (string expected, got " .. type(path) .. ")", 2)
  end
  kind = check_kind("pprof", kind, 2)
  return self.core:pprof(path, kind)
end

--- Writes a self-contained flame graph (SVG, or HTML with the SVG in it
-- when path does not end in .svg) that a browser opens.
-- @tparam string path the file to write
-- @tparam[opt] string kind `"live"` (default) or `"alloc"`
-- @treturn true|nil true, or nil, message, errno
function Profile:flamegraph(path, kind)
  check_self(self, "flamegraph")
  if type(path) ~= "string" then
    error("bad argument #1 to 'flamegraph' (string expected, got " .. type(path) .. ")", 2)
  end
  kind = check_kind("flamegraph", kind, 2)
  local doc = require("memprobe.flame").render(stacks(self, kind), {
    title = ("memprobe %s bytes (rate %d)"):format(kind, self.rate),
    svg = path:match("%.svg$") ~= nil,
    label = label,
  })
  return core._write_file(path, doc)  -- checked to the close; no FIFO
end

function Profile:__tostring()
  return tostring(self.core)
end

M.Profile = Profile

return M
