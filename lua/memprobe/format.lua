--- Turning memprobe's tables into text for people: sizes, aligned columns.
-- Everything here returns strings (but `process`, which names a process's
-- figures for the CLI and the console alike); nothing prints.
-- @module memprobe.format

local M = {}

local units = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" }

--- A byte count for people: `1536` gives `"1.5KiB"`; nil gives `"-"`.
-- @tparam ?number n bytes
-- @treturn string
function M.size(n)
  if n == nil then return "-" end
  local neg = n < 0
  local v, i = math.abs(n), 1
  while v >= 1024 and i < #units do
    v, i = v / 1024, i + 1
  end
  local s
  if i == 1 then
    -- bytes may be a fraction (a rate of 0.4 B/min is a slow leak, not 0)
    s = v == math.floor(v) and string.format("%d", v) .. "B"
      or string.format("%.1fB", v)
  elseif v >= 100 then
    s = string.format("%.0f%s", v, units[i])
  else
    s = string.format("%.1f%s", v, units[i])
  end
  return neg and "-" .. s or s
end

--- Lays rows out in aligned columns, numbers right-aligned.
-- @tparam ?{string,...} header column titles, or nil for no header line
-- @tparam {{string|number,...},...} rows cells (already formatted)
-- @treturn string lines joined with "\n", no trailing newline
function M.columns(header, rows)
  local ncol = header and #header or (rows[1] and #rows[1] or 0)
  local width, right = {}, {}
  for i = 1, ncol do width[i] = header and #header[i] or 0 end
  local function cell(row, i)
    local v = row[i]
    if type(v) == "number" and v == math.floor(v) and math.abs(v) < 2^53 then
      return string.format("%d", v)  -- 5.3+ floats that are counts: no ".0"
    end
    return v == nil and "" or tostring(v)
  end
  for _, row in ipairs(rows) do
    for i = 1, ncol do
      local c = cell(row, i)
      if #c > width[i] then width[i] = #c end
      if i > 1 and (type(row[i]) == "number" or c:match("^%-?[%d%.]+%a*%%?$")) then
        right[i] = true
      end
    end
  end
  local function line(row)
    local out = {}
    for i = 1, ncol do
      local c = cell(row, i)
      local pad = string.rep(" ", width[i] - #c)
      out[i] = right[i] and pad .. c or c .. pad
    end
    return (table.concat(out, "  "):gsub("%s+$", ""))
  end
  local lines = {}
  if header then lines[1] = line(header) end
  for _, row in ipairs(rows) do lines[#lines + 1] = line(row) end
  return table.concat(lines, "\n")
end

-- free's unit flags: bytes per unit, binary (-k -m -g) or decimal (--si).
local free_units = { b = 1, k = 2^10, m = 2^20, g = 2^30, t = 2^40, p = 2^50 }
local free_si = { b = 1, k = 1e3, m = 1e6, g = 1e9, t = 1e12, p = 1e15 }

-- procps' -h: the first unit, from bytes up, in which the figure fits in
-- 4 characters ("9.1M", "25G") or, binary, 5 ("8.6Mi", "23Gi"): one
-- decimal (rounded) when it fits, else the whole part (truncated, as
-- procps does: 23.9GiB is "23Gi").
local function free_human(n, si)
  if n == nil then return "-" end
  local sign = n < 0 and "-" or ""
  local bytes = math.floor(math.abs(n))
  local text = ("%d"):format(bytes) .. "B"
  if #text <= 4 then return sign .. text end
  local base, width = si and 1000 or 1024, si and 4 or 5
  for i, letter in ipairs({ "K", "M", "G", "T", "P" }) do
    local unit = letter .. (si and "" or "i")
    local v = bytes / base ^ i
    text = ("%.1f"):format(v) .. unit
    if #text <= width then return sign .. text end
    text = ("%d"):format(math.floor(v)) .. unit
    if #text <= width then return sign .. text end
  end
  return sign .. text
end

--- The table `free` prints, from a `memprobe.free()` result, as procps
-- free(1) does: KiB by default.
-- @tparam table f result of `memprobe.free()`
-- @param[opt] how `true` (or `{ unit = "h" }`) for sizes for people, else a
-- table `{ unit = "b"|"k"|"m"|"g"|"t"|"p"|"h", si = boolean, wide =
-- boolean, total = boolean }` (`wide`: buffers and cache in two columns,
-- as `free -w`; `total`: a Total line, RAM plus swap, as `free -t`)
-- @treturn string
function M.free(f, how)
  if how == true then how = { unit = "h" } end
  how = type(how) == "table" and how or {}
  local unit = how.unit or "k"
  local fmt
  if unit == "h" then
    fmt = function(n) return free_human(n, how.si) end
  else
    local div = (how.si and free_si or free_units)[unit]
    fmt = function(n) return n == nil and "-" or ("%d"):format(math.floor(n / div)) end
  end
  local header = { "", "total", "used", "free", "shared", "buff/cache", "available" }
  local mem = { "Mem:", fmt(f.total), fmt(f.used), fmt(f.free), fmt(f.shared),
                fmt(f.buff_cache), fmt(f.available) }
  if how.wide then
    header = { "", "total", "used", "free", "shared", "buffers", "cache", "available" }
    mem = { "Mem:", fmt(f.total), fmt(f.used), fmt(f.free), fmt(f.shared),
            fmt(f.buffers), fmt(f.cache), fmt(f.available) }
  end
  local rows = { mem, { "Swap:", fmt(f.swap_total), fmt(f.swap_used), fmt(f.swap_free) } }
  if how.total then
    local function sum(a, b) return a and b and a + b end
    rows[3] = { "Total:", fmt(sum(f.total, f.swap_total)), fmt(sum(f.used, f.swap_used)),
                fmt(sum(f.free, f.swap_free)) }
  end
  return M.columns(header, rows)
end

--- One process's figures in memprobe's vocabulary (see docs/console.md),
-- from `memprobe.process()` and `memprobe.smaps()` results: `pid name rss
-- peak_rss virtual swap pss uss anon file shmem`. The CLI and the console
-- both print these names.
-- @tparam table p result of `memprobe.process(pid)`
-- @tparam[opt] table sm result of `memprobe.smaps(pid)`
-- @treturn table
function M.process(p, sm)
  sm = sm or {}
  return { pid = p.Pid, name = p.Name, rss = p.VmRSS, peak_rss = p.VmHWM,
           virtual = p.VmSize, swap = p.VmSwap or sm.swap, pss = sm.pss,
           uss = sm.uss, anon = p.RssAnon, file = p.RssFile, shmem = p.RssShmem }
end

local function pct(x)
  return x and string.format("%.1f%%", x * 100) or "-"
end

--- The reconciliation of `memprobe.report()` as text, at most 80 columns.
-- Each level ends with the part the next level down does not explain.
-- @tparam table r result of `memprobe.report()`
-- @treturn string
function M.report(r)
  local size = M.size
  local out = {}
  local function add(...) out[#out + 1] = table.concat({ ... }) end
  -- one layout for every level: label, then the size right-aligned
  local function row(label, value)
    add(string.format("  %-40s %10s", label, value))
  end
  local function level(title, t, rows)
    if #out > 0 then add("") end
    add("== ", title)
    if t.error then add("  (", t.error, ")") return false end
    if t.skipped then
      add("  (", type(t.skipped) == "string" and t.skipped or "skipped", ")")
      return false
    end
    for _, x in ipairs(rows) do
      if x[2] ~= nil then row(x[1], type(x[2]) == "number" and size(x[2]) or x[2]) end
    end
    return true
  end
  local k = r.kernel
  local kp = k.parts or {}
  level("kernel (free)", k, {
    { "total", k.total }, { "used (total - available)", k.used },
    { "available", k.available }, { "buff/cache", k.buff_cache },
    { "anon pages", kp.anon }, { "shmem", kp.shmem },
    { "slab unreclaimable", kp.slab_unreclaimable }, { "vmalloc", kp.vmalloc },
    { "page tables", kp.page_tables }, { "kernel stacks", kp.kernel_stack },
    { "percpu", kp.percpu }, { "hugetlb", kp.hugetlb },
    { "cache kept back (watermarks)", kp.held_back },
    { "used, not explained by the above", k.unexplained },
  })
  local c = r.cgroup
  level((c.error or c.skipped) and "cgroup" or ("cgroup v" .. tostring(c.version) .. " " ..
        tostring(c.path)), c, {
    { "usage", c.usage }, { "working set", c.working_set },
    { "limit", c.limit or "unlimited" }, { "headroom", c.headroom },
  })
  local p = r.process
  level(p.pid and "process " .. p.pid or "process", p, {
    { "rss", p.rss }, { "pss", p.pss }, { "uss", p.uss }, { "swap", p.swap },
    { "share of kernel used", p.share_of_used and pct(p.share_of_used) },
  })
  local h = r.c_heap
  level("C heap (mallinfo2)", h, {
    { "in use", h.in_use }, { "free in heap", h.free_in_heap },
    { "obtained from the OS", h.from_os },
    { "rss not explained by the C heap", h.unexplained },
  })
  local l = r.lua
  level("Lua heap", l, {
    { "collectgarbage(\"count\")", l.gc }, { "tracked", l.tracked },
    { "C heap not explained by Lua", l.unexplained },
  })
  local m = r.modules
  if not m.skipped then
    local rows = {}
    for i = 1, math.min(#(m.rows or {}), 10) do
      rows[i] = { tostring(m.rows[i].name), m.rows[i].exclusive }
    end
    rows[#rows + 1] = { "Lua heap not explained by modules", m.unexplained }
    level("modules (bytes only they hold)", m, rows)
  end
  return table.concat(out, "\n")
end

local function kib(n) return n == nil and "-" or string.format("%.2fK", n / 1024) end

local function share(a, b)
  return b ~= nil and b > 0 and string.format("%.1f%%", 100 * a / b) or "-"
end

--- The screen `slabtop -o` prints, from a `memprobe.slabinfo()` result:
-- the five header lines, then one line per cache, at most 80 columns.
-- @tparam table s result of `memprobe.slabinfo()`
-- @treturn string
function M.slabinfo(s)
  local t = s.totals
  local lines = {
    (" Active / Total Objects (%% used)    : %d / %d (%s)"):format(
      t.active_objs, t.num_objs, share(t.active_objs, t.num_objs)),
    (" Active / Total Slabs (%% used)      : %d / %d (%s)"):format(
      t.active_slabs, t.num_slabs, share(t.active_slabs, t.num_slabs)),
    (" Active / Total Caches (%% used)     : %d / %d (%s)"):format(
      t.active_caches, t.num_caches, share(t.active_caches, t.num_caches)),
    (" Active / Total Size (%% used)       : %s / %s (%s)"):format(
      kib(t.active_size), kib(t.total_size), share(t.active_size, t.total_size)),
    (" Minimum / Average / Maximum Object : %s / %s / %s"):format(
      kib(t.min_objsize), kib(t.avg_objsize), kib(t.max_objsize)),
    "",
    ("%8s %8s %4s %8s %6s %8s %10s %s"):format("OBJS", "ACTIVE", "USE",
      "OBJ SIZE", "SLABS", "OBJ/SLAB", "CACHE SIZE", "NAME"),
  }
  for _, c in ipairs(s.caches) do
    lines[#lines + 1] = ("%8d %8d %3d%% %7.2fK %6d %8d %9dK %s"):format(
      c.num_objs, c.active_objs, c.use, c.objsize / 1024, c.num_slabs,
      c.objperslab, math.floor(c.size / 1024), c.name:sub(1, 20))
  end
  return table.concat(lines, "\n")
end

local function cut(s, n)
  return #s > n and s:sub(1, n - 1) .. "~" or s
end

--- vmalloc areas summed by caller, module or kind, from a
-- `memprobe.vmallocinfo()` result.
-- @tparam table v result of `memprobe.vmallocinfo()`
-- @tparam[opt] string by "caller" (default), "module" or "kind"
-- @treturn string
function M.vmalloc(v, by)
  local rows, header = {}
  local function sums(e)
    return e.count, M.size(e.virtual), e.pages, M.size(e.bytes)
  end
  if by == "kind" then
    header = { "KIND", "AREAS", "VIRTUAL", "PAGES", "MEMORY" }
    local kinds = {}
    for k in pairs(v.by_kind) do kinds[#kinds + 1] = k end
    table.sort(kinds, function(a, b) return v.by_kind[a].virtual > v.by_kind[b].virtual end)
    for _, k in ipairs(kinds) do rows[#rows + 1] = { k, sums(v.by_kind[k]) } end
  elseif by == "module" then
    header = { "MODULE", "AREAS", "VIRTUAL", "PAGES", "MEMORY" }
    for _, e in ipairs(v.by_module) do rows[#rows + 1] = { cut(e.module, 30), sums(e) } end
  else
    header = { "CALLER", "MODULE", "AREAS", "VIRTUAL", "PAGES", "MEMORY" }
    for _, e in ipairs(v.by_caller) do
      rows[#rows + 1] = { cut(e.caller, 32), cut(e.module, 14), sums(e) }
    end
  end
  local t = v.totals
  return ("vmalloc: %d areas, %s of address space; %s in %d pages\n"):format(
    t.count, M.size(t.virtual), M.size(t.bytes), t.pages)
    .. M.columns(header, rows)
end

--- The ranking of a `watch` report: fastest growers first.
-- @tparam table r a watcher's `report()`
-- @tparam[opt] number top at most this many lines (default 20)
-- @treturn string
function M.watch(r, top)
  local rows = {}
  for i, e in ipairs(r.series) do
    if i > (top or 20) then break end
    rows[#rows + 1] = { e.source:sub(1, 4), cut(e.name, 32), M.size(e.slope) .. "/min",
                        string.format("%.2f", e.r2), M.size(e.delta),
                        e.monotonic and r.samples >= 3 and "GROWS" or "" }
  end
  local out = { ("%d samples over %.1fs; %d series changed, %d only grew"):format(
    r.samples, r.seconds, r.changed or #r.series, #r.flagged) }
  for src, err in pairs(r.errors) do out[#out + 1] = src .. ": " .. err end
  out[#out + 1] = M.columns({ "SRC", "NAME", "RATE", "R2", "DELTA", "" }, rows)
  return table.concat(out, "\n")
end

--- What grew and shrank, from a `memprobe.diff()` result.
-- @tparam table d result of `memprobe.diff()`
-- @tparam[opt] number top lines per side (default 10)
-- @treturn string
function M.diff(d, top)
  if d.added and d.grown then return M.heapdiff(d, top) end
  local rows = {}
  for _, side in ipairs({ d.grew, d.shrank }) do
    for i, e in ipairs(side) do
      if i > (top or 10) then break end
      rows[#rows + 1] = { cut(e.name, 40), M.size(e.before), M.size(e.after),
                          (e.delta > 0 and "+" or "") .. M.size(e.delta) }
    end
  end
  return M.columns({ d.source, "BEFORE", "AFTER", "DELTA" }, rows)
end

--- A heap diff (`snap2:diff(snap1)`) for a console: what was added, by
-- path pattern, the tables that grew, what was freed. `M.diff` calls it
-- for heap diffs.
-- @tparam table d result of `snap2:diff(snap1)`
-- @tparam[opt] number n rows per section (default 10)
-- @treturn string
function M.heapdiff(d, n)
  n = n or 10
  local out = {}
  local function section(title, list, row, header)
    local rows = {}
    for i = 1, math.min(n, #list) do rows[i] = row(list[i]) end
    out[#out + 1] = title
    out[#out + 1] = #rows > 0 and M.columns(header, rows) or "(none)"
  end
  section(("== added %s"):format(M.size(d.added_bytes)), d.added,
    function(g) return { M.size(g.bytes), g.count, g.path } end,
    { "bytes", "objects", "path" })
  section("== grown", d.grown,
    function(g) return { "+" .. g.entries, g.before, g.after, g.path } end,
    { "entries", "before", "after", "path" })
  section(("== freed %s"):format(M.size(d.freed_bytes)), d.freed,
    function(g) return { M.size(g.bytes), g.count, g.path } end,
    { "bytes", "objects", "path" })
  return table.concat(out, "\n")
end

return M
