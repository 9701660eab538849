--- Exporting memprobe's figures: Prometheus text exposition (for a
-- `/metrics` endpoint or node_exporter's textfile collector) and plain
-- tables ready for JSON.
-- @module memprobe.export

local check = require("memprobe.options").check

local M = {}

-- The options of collect and prometheus.
local spec = { slab = "boolean", vmalloc = "boolean", modules = "boolean",
               top = "count", labels = "table", pid = "count", process = "boolean" }

-- meminfo keys that are counts, not sizes.
local counts = { HugePages_Total = true, HugePages_Free = true,
                 HugePages_Rsvd = true, HugePages_Surp = true }

local function escape(v)
  return (tostring(v):gsub("\\", "\\\\"):gsub("\n", "\\n"):gsub('"', '\\"'))
end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- A metric family: HELP, TYPE, then its samples.
local function family(out, name, help, samples)
  if #samples == 0 then return end
  out[#out + 1] = "# HELP " .. name .. " " .. help
  out[#out + 1] = "# TYPE " .. name .. " gauge"
  for _, s in ipairs(samples) do
    local labels = {}
    for _, k in ipairs(sorted_keys(s[1])) do
      labels[#labels + 1] = k .. '="' .. escape(s[1][k]) .. '"'
    end
    local l = #labels > 0 and "{" .. table.concat(labels, ",") .. "}" or ""
    out[#out + 1] = string.format("%s%s %.17g", name, l, s[2])
  end
end

local function top(list, key, n)
  table.sort(list, function(a, b) return (a[key] or 0) > (b[key] or 0) end)
  local r = {}
  for i = 1, math.min(n, #list) do r[i] = list[i] end
  return r
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
-- @treturn table `{ meminfo, free, slab, vmalloc, numa, process, cgroup, lua, modules }`;
-- parts that could not be read are absent
function M.collect(opts)
  opts = check("collect", opts, spec, 1, 3)
  local mp = require "memprobe"
  local n = opts.top or 20
  local t = { meminfo = mp.meminfo(), free = mp.free() }
  if opts.slab ~= false and mp.slabinfo then
    local s = mp.slabinfo{ sort = "c", top = n }
    t.slab = s and s.caches
  end
  if opts.vmalloc ~= false and mp.vmallocinfo then
    local v = mp.vmallocinfo()
    t.vmalloc = v and v.by_caller and top(v.by_caller, "size", n)
  end
  t.numa = mp.numa and mp.numa() or nil
  local own = opts.process ~= false and not opts.pid
  if opts.pid then
    local p = mp.process(opts.pid)
    local sm = mp.smaps(opts.pid) or {}
    t.process = p and { rss = p.VmRSS, pss = sm.pss, uss = sm.uss, swap = sm.swap }
  elseif own and mp.rss then
    local sm = mp.smaps and mp.smaps() or {}
    t.process = { rss = mp.rss(), pss = sm.pss, uss = sm.uss, swap = sm.swap }
  end
  t.cgroup = mp.cgroup and mp.cgroup() or nil
  t.lua = own and { gc = math.floor(collectgarbage("count") * 1024) } or nil
  if opts.modules and own and mp.modules then t.modules = mp.modules() end
  return t
end

--- Prometheus text exposition (version 0.0.4) of the figures.
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
  if t.meminfo then
    local bytes, cnt = {}, {}
    for _, k in ipairs(sorted_keys(t.meminfo)) do
      local list = counts[k] and cnt or bytes
      list[#list + 1] = { { field = k }, t.meminfo[k] }
    end
    family(out, "memprobe_meminfo_bytes", "/proc/meminfo sizes in bytes.", bytes)
    family(out, "memprobe_meminfo_pages", "/proc/meminfo counts (huge pages).", cnt)
  end
  if t.free then
    local s = {}
    for _, k in ipairs({ "total", "used", "free", "shared", "buff_cache",
                         "available", "swap_total", "swap_used", "swap_free" }) do
      if t.free[k] then s[#s + 1] = { { kind = k }, t.free[k] } end
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
      s[#s + 1] = { { caller = c.caller or c.name, module = c.module or "" }, c.size }
    end
    family(out, "memprobe_vmalloc_bytes", "vmalloc areas by caller.", s)
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
-- collector: a temporary file in the same directory, then a rename.
-- @tparam string path e.g. `/var/lib/node_exporter/memprobe.prom`
-- @tparam[opt] table opts as for `collect`
-- @treturn ?boolean true, or nil, message
function M.textfile(path, opts)
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'textfile' (path expected, got " .. type(path) .. ")", 2)
  end
  local text = M.prometheus(opts)
  local tmp = path .. ".tmp" .. tostring(os.time()) .. tostring(math.random(1e6))
  local f, err = io.open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(text)
  f:close()
  if not ok then os.remove(tmp) return nil, werr end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp) return nil, rerr end
  return true
end

return M
