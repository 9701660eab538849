--- Exporting memprobe's figures: Prometheus text exposition (for a
-- `/metrics` endpoint or node_exporter's textfile collector) and plain
-- tables ready for JSON.
-- @module memprobe.export

local check = require("memprobe.options").check
local json = require "memprobe.json"

local M = {}

-- The options of collect and prometheus.
local spec = { slab = "boolean", vmalloc = "boolean", modules = "boolean",
               top = "count", labels = "table", pid = "count", process = "boolean" }

-- meminfo keys that are counts of huge pages, not sizes.
local counts = { HugePages_Total = true, HugePages_Free = true,
                 HugePages_Rsvd = true, HugePages_Surp = true }

-- A label value as valid UTF-8 (what the exposition format requires):
-- each byte that does not start a well-formed sequence becomes U+FFFD.
local function utf8_valid(v)
  if not v:find("[\128-\255]") then return v end
  local out, i, n = {}, 1, #v
  while i <= n do
    local c = v:byte(i)
    local len, lo, hi = 0, 0x80, 0xBF
    if c < 0x80 then len = 1
    elseif c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    end
    local ok = len > 0 and i + len - 1 <= n
    for j = 2, ok and len or 0 do
      local b = v:byte(i + j - 1)
      if j == 2 and (b < lo or b > hi) or (b < 0x80 or b > 0xBF) then ok = false break end
    end
    if ok then
      out[#out + 1] = v:sub(i, i + len - 1)
      i = i + len
    else
      out[#out + 1] = "\239\191\189"
      i = i + 1
    end
  end
  return table.concat(out)
end

local function escape(v)
  return (utf8_valid(tostring(v)):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- A metric family: HELP, TYPE, then its samples, each `{ labels, value }`.
-- Samples whose label sets are the same once escaped (a slab cache the
-- kernel lists twice, two names made equal by the UTF-8 repair) are
-- summed into one series: Prometheus rejects a scrape with duplicates.
local function family(out, name, help, samples)
  if #samples == 0 then return end
  out[#out + 1] = "# HELP " .. name .. " " .. help
  out[#out + 1] = "# TYPE " .. name .. " gauge"
  local order, sum = {}, {}
  for _, s in ipairs(samples) do
    local labels = {}
    for _, k in ipairs(sorted_keys(s[1])) do
      labels[#labels + 1] = k .. '="' .. escape(s[1][k]) .. '"'
    end
    local l = #labels > 0 and "{" .. table.concat(labels, ",") .. "}" or ""
    if sum[l] == nil then order[#order + 1] = l end
    sum[l] = (sum[l] or 0) + s[2]
  end
  for _, l in ipairs(order) do
    out[#out + 1] = string.format("%s%s %.17g", name, l, sum[l])
  end
end

local function top(list, key, n)
  table.sort(list, function(a, b) return (a[key] or 0) > (b[key] or 0) end)
  local r = {}
  for i = 1, math.min(n, #list) do r[i] = list[i] end
  return r
end

-- Calls a reader; on failure records its message under errors[source].
local function read(errors, source, fn, ...)
  local v, err = fn(...)
  if v == nil then errors[source] = tostring(err or "not available") end
  return v
end

--- Collects the figures as plain tables, ready for a JSON encoder.
-- @tparam[opt] table opts `slab` (default true), `vmalloc` (default true),
-- `modules` (default false: walks the Lua heap), `top` (rows per list,
-- default 20), `labels` (label = value pairs for the series of this
-- process and its Lua state, such as `{ worker = ngx.worker.id() }`: the
-- workers of one server then make distinct series), `pid` (the process
-- series describe that process; the Lua series, which are this state's,
-- are left out), `process = false` (neither process nor Lua series: a
-- command-line tool describing the machine)
-- @treturn table `{ meminfo, free, slab, vmalloc, numa, process, cgroup,
-- lua, modules, errors }`; a part that could not be read is absent and
-- `errors[part]` holds the reader's message
function M.collect(opts)
  opts = check("collect", opts, spec, 1, 3)
  local mp = require "memprobe"
  local n = opts.top or 20
  local e = {}
  local t = { errors = e }
  t.meminfo = read(e, "meminfo", mp.meminfo)
  t.free = read(e, "free", mp.free)
  if opts.slab ~= false then
    local s = read(e, "slab", mp.slabinfo, { sort = "c", top = n })
    t.slab = s and s.caches
  end
  if opts.vmalloc ~= false then
    local v = read(e, "vmalloc", mp.vmallocinfo)
    t.vmalloc = v and v.by_caller and top(v.by_caller, "bytes", n)
  end
  t.numa = mp.numa()
  local own = opts.process ~= false and not opts.pid
  if opts.pid then
    local p = read(e, "process", mp.process, opts.pid)
    local sm = mp.smaps(opts.pid) or {}
    t.process = p and { rss = p.VmRSS, pss = sm.pss, uss = sm.uss, swap = sm.swap }
  elseif own then
    local rss = read(e, "process", mp.rss)
    local sm = mp.smaps() or {}
    t.process = rss and { rss = rss, pss = sm.pss, uss = sm.uss, swap = sm.swap }
  end
  t.cgroup = mp.cgroup()
  t.lua = own and { gc = math.floor(collectgarbage("count") * 1024) } or nil
  if opts.modules and own then
    t.modules = mp.modules()
    -- maps: {} in JSON when empty, as when not
    for _, r in ipairs(t.modules) do
      if type(r.by_type) == "table" then json.map(r.by_type) end
    end
  end
  json.map(e)
  return t
end

-- The sources whose read errors are exported, in order.
local sources = { "meminfo", "free", "slab", "vmalloc", "process" }

--- Prometheus text exposition (version 0.0.4) of the figures.
-- Families: `memprobe_up` (1: meminfo was read),
-- `memprobe_source_read_error{source}` (1 when that source could not be
-- read, e.g. slab or vmalloc without root), `memprobe_meminfo_bytes{field}`,
-- `memprobe_meminfo_hugepages{field}` (HugePages_* counts),
-- `memprobe_free_bytes{field}`, `memprobe_slab_bytes{cache}`,
-- `memprobe_slab_active_objects{cache}`, `memprobe_vmalloc_bytes{caller,module}`
-- (pages mapped, not address space), `memprobe_numa_node_bytes{node,field}`,
-- `memprobe_process_{rss,pss,uss,swap}_bytes`, `memprobe_cgroup_usage_bytes`,
-- `memprobe_cgroup_limit_bytes`, `memprobe_lua_heap_bytes` and, with
-- `modules = true`, `memprobe_module_bytes{module}`; the process, Lua heap
-- and module series also carry `opts.labels`. Label values are made valid
-- UTF-8; samples with the same labels are summed.
-- @tparam[opt] table opts as for `collect`
-- @treturn string the exposition, ending with a newline
function M.prometheus(opts)
  local t = M.collect(opts)
  local out = {}
  local labels = opts and opts.labels or {}
  local function own(extra)  -- the labels of a series of this process
    local l = {}
    for k, v in pairs(labels) do l[k] = v end
    for k, v in pairs(extra or {}) do l[k] = v end
    return l
  end
  family(out, "memprobe_up", "1 when memprobe read /proc/meminfo.",
         { { {}, t.meminfo and 1 or 0 } })
  local errs = {}
  for _, src in ipairs(sources) do
    if t.errors[src] or t[src] then
      errs[#errs + 1] = { { source = src }, t.errors[src] and 1 or 0 }
    end
  end
  family(out, "memprobe_source_read_error",
         "1 when a source could not be read (its families are then absent).", errs)
  if t.meminfo then
    local bytes, cnt = {}, {}
    for _, k in ipairs(sorted_keys(t.meminfo)) do
      local list = counts[k] and cnt or bytes
      list[#list + 1] = { { field = k }, t.meminfo[k] }
    end
    family(out, "memprobe_meminfo_bytes", "/proc/meminfo sizes in bytes.", bytes)
    family(out, "memprobe_meminfo_hugepages",
           "/proc/meminfo HugePages_* counts, in huge pages.", cnt)
  end
  if t.free then
    local s = {}
    for _, k in ipairs({ "total", "used", "free", "shared", "buff_cache",
                         "available", "swap_total", "swap_used", "swap_free" }) do
      if t.free[k] then s[#s + 1] = { { field = k }, t.free[k] } end
    end
    family(out, "memprobe_free_bytes", "Memory as procps free shows it.", s)
  end
  if t.slab then
    local sz, obj = {}, {}
    for _, c in ipairs(t.slab) do
      sz[#sz + 1] = { { cache = c.name }, c.size }
      obj[#obj + 1] = { { cache = c.name }, c.active_objs }
    end
    family(out, "memprobe_slab_bytes", "Slab cache size (slabtop CACHE SIZE).", sz)
    family(out, "memprobe_slab_active_objects", "Active objects per slab cache.", obj)
  end
  if t.vmalloc then
    local s = {}
    for _, c in ipairs(t.vmalloc) do
      s[#s + 1] = { { caller = c.caller or c.name, module = c.module or "" }, c.bytes }
    end
    family(out, "memprobe_vmalloc_bytes",
           "Memory in vmalloc areas by caller: mapped pages, not address space.", s)
  end
  if t.numa and t.numa.nodes then
    local s = {}
    for _, node in ipairs(t.numa.nodes) do
      local mi = node.meminfo or {}
      for _, k in ipairs({ "MemTotal", "MemFree", "MemUsed" }) do
        if mi[k] then s[#s + 1] = { { node = node.node, field = k }, mi[k] } end
      end
    end
    family(out, "memprobe_numa_node_bytes", "Per NUMA node memory.", s)
  end
  if t.process then
    for _, k in ipairs({ "rss", "pss", "uss", "swap" }) do
      if t.process[k] then
        family(out, "memprobe_process_" .. k .. "_bytes",
               "This process's " .. k:upper() .. ".", { { own(), t.process[k] } })
      end
    end
  end
  if t.cgroup then
    local c = t.cgroup
    family(out, "memprobe_cgroup_usage_bytes", "Own cgroup's memory usage.",
           c.usage and { { {}, c.usage } } or {})
    local lim = c.effective_limit or c.limit
    family(out, "memprobe_cgroup_limit_bytes", "Own cgroup's effective limit.",
           lim and { { {}, lim } } or {})
  end
  if t.lua then
    family(out, "memprobe_lua_heap_bytes", "Lua heap (collectgarbage count).",
           { { own(), t.lua.gc } })
  end
  if t.modules then
    local s = {}
    for _, r in ipairs(t.modules) do s[#s + 1] = { own{ module = r.name }, r.exclusive or 0 } end
    family(out, "memprobe_module_bytes", "Live bytes held only by a module.", s)
  end
  return table.concat(out, "\n") .. "\n"
end

--- Writes the exposition atomically for node_exporter's textfile
-- collector: a temporary file created exclusively in the same directory,
-- written, flushed to disk and closed, each step checked, then renamed
-- over `path`. On any error the temporary file is removed and `path` keeps
-- its previous content.
-- @tparam string path e.g. `/var/lib/node_exporter/memprobe.prom`
-- @tparam[opt] table opts as for `collect`
-- @treturn ?boolean true, or nil, message, errno
function M.textfile(path, opts)
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'textfile' (path expected, got " .. type(path) .. ")", 2)
  end
  return require("memprobe.core")._replace_file(path, M.prometheus(opts))
end

return M
