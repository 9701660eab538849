--- Turning memprobe's tables into text for people: sizes, aligned columns.
-- Everything here returns strings; nothing prints.
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
    s = string.format("%dB", v)
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

--- The table `free` prints, from a `memprobe.free()` result.
-- @tparam table f result of `memprobe.free()`
-- @tparam[opt] boolean human sizes for people instead of bytes
-- @treturn string
function M.free(f, human)
  local fmt = human and M.size or function(n) return n == nil and "-" or
    string.format("%d", n) end
  local rows = {
    { "Mem:", fmt(f.total), fmt(f.used), fmt(f.free), fmt(f.shared),
      fmt(f.buff_cache), fmt(f.available) },
    { "Swap:", fmt(f.swap_total), fmt(f.swap_used), fmt(f.swap_free) },
  }
  return M.columns({ "", "total", "used", "free", "shared", "buff/cache",
                     "available" }, rows)
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
  local function level(title, t, rows)
    add("== ", title)
    if t.error then add("  (", t.error, ")") return end
    if t.skipped then add("  (skipped)") return end
    local cells = {}
    for _, row in ipairs(rows) do
      if row[2] ~= nil then cells[#cells + 1] = { "  " .. row[1], size(row[2]) } end
    end
    add(M.columns(nil, cells))
  end
  local k = r.kernel
  level("kernel (free)", k, {
    { "total", k.total }, { "used (total - available)", k.used },
    { "available", k.available }, { "buff/cache", k.buff_cache },
    { "anon pages", k.parts and k.parts.anon },
    { "shmem", k.parts and k.parts.shmem },
    { "slab unreclaimable", k.parts and k.parts.slab_unreclaimable },
    { "vmalloc", k.parts and k.parts.vmalloc },
    { "page tables", k.parts and k.parts.page_tables },
    { "kernel stacks", k.parts and k.parts.kernel_stack },
    { "percpu", k.parts and k.parts.percpu },
    { "cache kept back (watermarks)", k.parts and k.parts.held_back },
    { "used, not explained by the above", k.unexplained },
  })
  local c = r.cgroup
  if c.error then
    add("== cgroup\n  (", c.error, ")")
  else
    level("cgroup v" .. tostring(c.version) .. " " .. tostring(c.path), c, {
      { "usage", c.usage }, { "working set", c.working_set },
      { "limit", c.limit }, { "headroom", c.headroom },
    })
    if not c.limit then add("  limit                              unlimited") end
  end
  local p = r.process
  level("process", p, {
    { "rss", p.rss }, { "pss", p.pss }, { "uss", p.uss }, { "swap", p.swap },
  })
  if p.share_of_used then add("  share of kernel used:  ", pct(p.share_of_used)) end
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
    local cells = {}
    if not m.error then
      for i = 1, math.min(#m.rows, 10) do
        local row = m.rows[i]
        cells[#cells + 1] = { "  " .. tostring(row.name), size(row.exclusive) }
      end
      cells[#cells + 1] = { "  Lua heap not explained by modules", size(m.unexplained) }
    end
    add("== modules (exclusive bytes)")
    if m.error then add("  (", m.error, ")") else add(M.columns(nil, cells)) end
  end
  return table.concat(out, "\n")
end

return M
