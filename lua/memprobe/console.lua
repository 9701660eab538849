--- An admin console for games and servers: `console:run(line)` takes what
-- an operator typed (`mem slab 10`, `slab 10`, `json free` ...) and returns
-- text to print, at most 80 columns wide. It never raises on bad input:
-- unknown commands and garbage get a hint.
-- @module memprobe.console

local format = require "memprobe.format"
local json = require "memprobe.json"

local M = {}
local Console = {}
Console.__index = Console

local size = format.size

--- Parses a size like `512M`, `1.5G`, `64k` or `1048576` into bytes.
-- @tparam string s
-- @treturn ?integer bytes, or nil when s is not a size
function M.parse_size(s)
  local num, unit = tostring(s):match("^%s*(%d+%.?%d*)%s*([kKmMgGtT]?)[iI]?[bB]?%s*$")
  if not num then return nil end
  local mult = ({ [""] = 1, k = 2^10, m = 2^20, g = 2^30, t = 2^40 })[unit:lower()]
  return math.floor(tonumber(num) * mult)
end

local commands, help = {}, {}

local function def(name, usage, fn)
  commands[name] = fn
  help[#help + 1] = { name, usage }
end

local function need(r, err)
  if r == nil then error({ hint = err }, 0) end
  return r
end

def("help", "this list", function()
  local rows = {}
  for _, h in ipairs(help) do rows[#rows + 1] = { h[1], h[2] } end
  return "commands (a leading 'mem' is optional):\n" .. format.columns(nil, rows)
end)

def("mem", "summary: system, process, Lua heap", function(self)
  local mp = self.mp
  local f = need(mp.free())
  local rss = mp.rss and mp.rss()
  local lua = math.floor(collectgarbage("count") * 1024)
  local data = { used = f.used, available = f.available, total = f.total,
                 rss = rss, lua = lua }
  local text = string.format("sys used %s of %s (%s available)  rss %s  lua %s",
    size(f.used), size(f.total), size(f.available), size(rss), size(lua))
  return text, data
end)

def("sys", "memory as free -h shows it (also: free)", function(self)
  local f = need(self.mp.free())
  return format.free(f, true), f
end)
commands.free = commands.sys

def("slab", "[N] [sort a|b|c|l|v|n|o|p|s|u]: largest slab caches", function(self, n, sort)
  local top = tonumber(n) or 10
  if sort == nil and n and not tonumber(n) then sort = n end
  local s = need(self.mp.slabinfo{ top = top, sort = sort or "c" })
  return format.slabinfo(s), s
end)

def("vmalloc", "[N]: vmalloc use by caller", function(self, n)
  local v = need(self.mp.vmallocinfo{ top = tonumber(n) or 10 })
  return format.vmalloc(v, "caller"), v
end)

def("proc", "this process: rss, pss, uss, C heap", function(self)
  local mp = self.mp
  local p = need(mp.process())
  local sm = mp.smaps() or {}
  local mi = mp.mallinfo and mp.mallinfo() or {}
  local data = { rss = p.VmRSS, hwm = p.VmHWM, vsize = p.VmSize,
                 pss = sm.pss, uss = sm.uss, swap = sm.swap,
                 c_heap = mi.uordblks and (mi.uordblks + (mi.hblkhd or 0)) }
  return format.columns(nil, {
    { "rss", size(data.rss) }, { "peak rss", size(data.hwm) },
    { "virtual", size(data.vsize) }, { "pss", size(data.pss) },
    { "uss", size(data.uss) }, { "swap", size(data.swap) },
    { "C heap in use", size(data.c_heap) },
  }), data
end)

def("lua", "Lua heap: GC count and tracker figures", function(self)
  local data = { gc = math.floor(collectgarbage("count") * 1024) }
  local rows = { { "collectgarbage", size(data.gc) } }
  local t = self.tracker
  if t then
    local s = t:stats()
    data.tracker = s
    rows[#rows + 1] = { "tracked live", size(s.live) }
    rows[#rows + 1] = { "tracked peak", size(s.peak) }
    rows[#rows + 1] = { "allocs / frees", s.allocs .. " / " .. s.frees }
    rows[#rows + 1] = { "refused", s.failed }
  else
    rows[#rows + 1] = { "tracker", "off ('track on' to start)" }
  end
  return format.columns(nil, rows), data
end)

def("modules", "[N]: live bytes per package.loaded entry", function(self, n)
  local rows = need(self.mp.modules())
  table.sort(rows, function(a, b) return (a.exclusive or 0) > (b.exclusive or 0) end)
  local cells = {}
  for i = 1, math.min(#rows, tonumber(n) or 15) do
    local r = rows[i]
    cells[#cells + 1] = { r.name, size(r.exclusive), size(r.shared), r.objects }
  end
  return format.columns({ "module", "exclusive", "shared", "objects" }, cells), rows
end)

def("heap", "census of the Lua heap by type", function(self)
  local h = need(self.mp.heap())
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

-- What the mark/diff pair compares; each source may be unreadable.
local function observe(mp)
  local o = {}
  o.slab = mp.slabinfo and mp.slabinfo() or nil
  if mp.modules then
    o.modules = {}
    for _, r in ipairs(mp.modules() or {}) do o.modules[r.name] = r.exclusive end
  end
  -- live bytes, read last and after a collection: garbage (the heap walk's
  -- results, or whatever the collector had not reached yet) is no growth
  collectgarbage("collect")
  o.lua = math.floor(collectgarbage("count") * 1024)
  return o
end

def("mark", "remember the present, for 'diff'", function(self)
  self.marked = observe(self.mp)
  return "marked: " .. os.date("%H:%M:%S"), { ok = true }
end)

def("diff", "what grew since 'mark': slab, Lua, modules", function(self)
  local old = self.marked
  if not old then return "no mark yet: type 'mark' first", {} end
  local now = observe(self.mp)
  local lines = { "lua heap " .. size(now.lua - old.lua) }
  local data = { lua = now.lua - old.lua }
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
end)

def("gc", "full collection; shows what it freed", function()
  local before = collectgarbage("count")
  collectgarbage("collect")
  local freed = math.floor((before - collectgarbage("count")) * 1024)
  return "collected: freed " .. size(freed), { freed = freed }
end)

def("track", "on|off: the allocator tracker", function(self, what)
  if what == "on" then
    self.tracker = self.mp.track()
    return "tracking: live " .. size(self.tracker:stats().live), { on = true }
  elseif what == "off" then
    if self.tracker then self.tracker:untrack() end
    self.tracker = nil
    return "tracking off", { on = false }
  end
  return "usage: track on|off", nil
end)

def("limit", "<size like 512M>|off: cap the Lua heap", function(self, what)
  if not self.tracker then return "the limit needs the tracker: 'track on' first", nil end
  if what == "off" then
    self.tracker:limit(nil)
    return "limit off", { limit = false }
  end
  local bytes = M.parse_size(what or "")
  if not bytes then return "usage: limit <size like 512M>|off", nil end
  self.tracker:limit(bytes)
  return "limit " .. size(bytes), { limit = bytes }
end)

def("watch", "take a sample; rank growth once there are 3", function(self)
  if not self.watcher then
    self.watcher = self.mp.watch{ sources = { "meminfo", "slabinfo" } }
  end
  self.watcher:sample()
  local r = self.watcher:report()
  return format.watch(r, 10), r
end)

def("drop", "<1|2|3>: drop caches (if the host allows it)", function(self, level)
  if not self.allow_drop_caches then
    return "drop is disabled on this console (allow_drop_caches = false)", nil
  end
  local n = tonumber(level)
  if n ~= 1 and n ~= 2 and n ~= 3 then return "usage: drop 1|2|3", nil end
  local ok, r = self.mp.drop_caches(n)
  if not ok then error({ hint = r }, 0) end
  return "dropped: freed " .. size(r.freed), r
end)

def("json", "<command>: the command's figures as JSON", function(self, ...)
  local args = { ... }
  local name = table.remove(args, 1)
  if name == nil or name == "json" or not commands[name] then
    return "usage: json <command>", nil
  end
  local _, data = self:call(name, args)
  if data == nil then return "no figures for '" .. name .. "'", nil end
  local s, err = json.encode(data)
  return s or err, data
end)

local function words(line)
  local w = {}
  for word in tostring(line):gmatch("%S+") do w[#w + 1] = word end
  if w[1] == "mem" and #w > 1 then table.remove(w, 1) end
  return w
end

-- Runs a command by name; errors become hints, never escape.
function Console:call(name, args)
  local ok, text, data = pcall(commands[name], self, (table.unpack or unpack)(args))
  if ok then return text, data end
  if type(text) == "table" and text.hint then
    return "cannot: " .. tostring(text.hint), nil
  end
  return "failed: " .. tostring(text), nil
end

--- Runs one line typed by an operator.
-- @tparam string line e.g. `"mem slab 10"` or `"slab 10"`
-- @treturn string text to print (never raises)
-- @treturn ?table the figures behind the text, for scripts
function Console:run(line)
  local w = words(line)
  local name = table.remove(w, 1)
  if name == nil then return "type 'help' for the commands", nil end
  if not commands[name] then
    return "unknown command '" .. name:sub(1, 40) .. "': type 'help'", nil
  end
  return self:call(name, w)
end

--- Creates a console.
-- @tparam[opt] table opts `allow_drop_caches` (default false): whether
-- `drop` may write /proc/sys/vm/drop_caches
-- @treturn table a console with `run(line)`
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  return setmetatable({
    mp = require "memprobe",
    allow_drop_caches = opts.allow_drop_caches == true,
  }, Console)
end

return M
