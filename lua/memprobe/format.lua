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
-- @tparam {string,...} header column titles
-- @tparam {{string|number,...},...} rows cells (already formatted)
-- @treturn string lines joined with "\n", no trailing newline
function M.columns(header, rows)
  local width, right = {}, {}
  for i, h in ipairs(header) do width[i] = #h end
  for _, row in ipairs(rows) do
    for i = 1, #header do
      local cell = tostring(row[i] == nil and "-" or row[i])
      if #cell > width[i] then width[i] = #cell end
      if type(row[i]) == "number" or cell:match("^%-?[%d%.]+%a*$") then
        right[i] = true
      end
    end
  end
  local function line(cells)
    local out = {}
    for i = 1, #header do
      local cell = tostring(cells[i] == nil and "-" or cells[i])
      local pad = string.rep(" ", width[i] - #cell)
      out[i] = right[i] and pad .. cell or cell .. pad
    end
    return (table.concat(out, "  "):gsub("%s+$", ""))
  end
  local lines = { line(header) }
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

return M
