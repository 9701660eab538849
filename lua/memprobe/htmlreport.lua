--- `snap:save(path, "html")`: a self-contained page (inline CSS and a few
-- lines of script, nothing loaded from elsewhere) that shows where a
-- snapshot's bytes are: a treemap of the modules, each split into its
-- largest subtrees; the largest retainers; the module rows; and, given an
-- older snapshot, what grew since. Retained sizes come from
-- `snap:retained(n)` where the snapshot has it, else the largest
-- containers by their own size stand in (the page says which).
-- @module memprobe.htmlreport

local format = require "memprobe.format"
local treemap = require "memprobe.treemap"

local M = {}

local size = format.size
local concat, floor = table.concat, math.floor

local WIDTH, HEIGHT = 1160, 520    -- the treemap, in CSS pixels
local KIDS = 8                     -- subtrees drawn inside a module

local function esc(s)
  return (tostring(s):gsub("[&<>\"']", { ["&"] = "&amp;", ["<"] = "&lt;",
    [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }))
end

-- A colour per name (hue from a hash), so a module keeps its colour
-- from one report to the next; light for the subtrees inside it.
local function hue(name)
  local h = 0
  for i = 1, #name do h = (h * 31 + name:byte(i)) % 360 end
  return h
end

-- The text of a path, whether it came as a string or as edges.
local function path_text(p)
  if type(p) == "table" then return require("memprobe.heap").pattern(p) end
  return tostring(p)
end

-- Does path p lie under the root path of module row name? The roots'
-- paths are memprobe.heap's: package.loaded.NAME, _G, registry, thread.
local function under(p, root)
  if p:sub(1, #root) ~= root then return false end
  local c = p:sub(#root + 1, #root + 1)
  return c == "" or c == "." or c == "[" or c == ":"
end

local special = { ["(globals)"] = "_G", ["(registry)"] = "registry",
                  ["(stack)"] = "thread" }
local function root_of(name)
  if special[name] then return special[name] end
  if name:match("^[%a_][%w_]*$") then return "package.loaded." .. name end
  return ("package.loaded[%q]"):format(name)
end

--- The figures a report shows, gathered from a finished snapshot.
-- @param snap a finished snapshot
-- @tparam[opt] table opts `older` (a finished snapshot: the diff),
-- `modules` (rows of `modules()`; default: a `modules()` walk now),
-- `top` (rows per table, default 20), `title`
-- @treturn table `{ title, runtime, total, objects, retained_kind,
-- modules, largest, diff }`
function M.gather(snap, opts)
  opts = opts or {}
  local top = opts.top or 20
  local census = snap:census(top)
  local rows = opts.modules or require("memprobe").modules{ retained = true }
  local largest, kind = {}, "self"
  if type(snap.retained) == "function" then
    kind = "retained"
    for _, r in ipairs(snap:retained(math.max(top, 200))) do
      largest[#largest + 1] = { path = path_text(r.path), type = r.type,
                                self = r.self, retained = r.retained }
    end
  else
    for _, r in ipairs(snap:census(math.max(top, 200)).largest) do
      largest[#largest + 1] = { path = path_text(r.path), type = r.type,
                                self = r.bytes, retained = r.bytes }
    end
  end
  local modules = {}
  for _, r in ipairs(rows) do
    modules[#modules + 1] = { name = r.name, exclusive = r.exclusive or 0,
      shared = r.shared or 0, objects = r.objects or 0, retained = r.retained }
  end
  return {
    title = opts.title or "memprobe heap report",
    runtime = jit and jit.version or _VERSION,
    date = os.date("!%Y-%m-%d %H:%M:%S UTC"),
    total = census.total, objects = census.objects,
    retained_kind = kind, top = top,
    modules = modules, largest = largest,
    diff = opts.older and snap:diff(opts.older, { top = top }) or nil,
  }
end

-- The treemap's items: a module each (its retained bytes, else its
-- exclusive ones), holding its largest subtrees that do not lie inside
-- one already taken, and the rest.
local function items_of(m)
  local items = {}
  for _, row in ipairs(m.modules) do
    local bytes = row.retained or row.exclusive
    if bytes > 0 then
      local root, kids, sum = root_of(row.name), {}, 0
      for _, r in ipairs(m.largest) do
        if #kids >= KIDS then break end
        local inside = false
        for _, k in ipairs(kids) do
          if under(r.path, k.name) then inside = true break end
        end
        if not inside and r.path ~= root and under(r.path, root) then
          kids[#kids + 1] = { name = r.path, bytes = r.retained, type = r.type }
          sum = sum + r.retained
        end
      end
      if sum > bytes then  -- shared objects: retained can exceed exclusive
        for _, k in ipairs(kids) do k.bytes = k.bytes * bytes / sum end
        sum = bytes
      end
      if bytes - sum > 0 then
        kids[#kids + 1] = { name = "(rest of " .. row.name .. ")", bytes = bytes - sum,
                            rest = true }
      end
      items[#items + 1] = { name = row.name, bytes = bytes, kids = kids }
    end
  end
  return items
end

-- A rectangle of a map of w x h, placed in percentages of it.
local function box(out, r, style, label, tip, w, h)
  w, h = w or WIDTH, h or HEIGHT
  out[#out + 1] = ('<div class="%s" style="left:%.2f%%;top:%.2f%%;width:%.2f%%;' ..
    'height:%.2f%%;%s" title="%s">%s</div>'):format(style.class,
    r.x * 100 / w, r.y * 100 / h, r.w * 100 / w, r.h * 100 / h,
    style.css, esc(tip), label)
end

local function treemap_html(m, out)
  local items = items_of(m)
  local total = 0
  for _, it in ipairs(items) do total = total + it.bytes end
  out[#out + 1] = '<div class="map" id="treemap">'
  for _, r in ipairs(treemap.layout(items, 0, 0, WIDTH, HEIGHT)) do
    local it, h = r.item, hue(r.item.name)
    local pct = total > 0 and it.bytes * 100 / total or 0
    local head = r.h > 34 and 18 or 0  -- room for the module's name
    box(out, r, { class = "mod", css = ("background:hsl(%d,55%%,42%%)"):format(h) },
      (r.w > 50 and r.h > 14) and ('<span class="name">%s</span> <span class="sz">%s</span>')
        :format(esc(it.name), size(it.bytes)) or "",
      ("%s: %s (%.1f%%)"):format(it.name, size(it.bytes), pct))
    if head > 0 and r.w > 8 then
      for _, k in ipairs(treemap.layout(it.kids, r.x + 2, r.y + head, r.w - 4, r.h - head - 2)) do
        local kit = k.item
        local name = kit.rest and kit.name or kit.name:sub(#root_of(it.name) + 1)
        if name == "" then name = kit.name end
        box(out, k, { class = kit.rest and "kid rest" or "kid",
          css = ("background:hsl(%d,60%%,%d%%)"):format(h, kit.rest and 78 or 64) },
          (k.w > 40 and k.h > 14) and esc(name) or "",
          ("%s: %s"):format(kit.name, size(kit.bytes)))
      end
    end
  end
  out[#out + 1] = "</div>"
end

local function table_html(out, id, header, rows, numeric)
  out[#out + 1] = ('<table id="%s"><thead><tr>'):format(id)
  for i, h in ipairs(header) do
    out[#out + 1] = ('<th%s>%s</th>'):format(numeric[i] and ' class="num"' or "", esc(h))
  end
  out[#out + 1] = "</tr></thead><tbody>"
  for _, row in ipairs(rows) do
    out[#out + 1] = "<tr>"
    for i, cell in ipairs(row) do
      if numeric[i] then
        out[#out + 1] = ('<td class="num" data-v="%s">%s</td>'):format(
          esc(cell[1]), esc(cell[2]))
      else
        out[#out + 1] = ("<td>%s</td>"):format(esc(cell))
      end
    end
    out[#out + 1] = "</tr>"
  end
  if #rows == 0 then
    out[#out + 1] = ('<tr><td colspan="%d">(none)</td></tr>'):format(#header)
  end
  out[#out + 1] = "</tbody></table>"
end

local function bytes_cell(n) return { floor(n or 0), size(n) } end
local function count_cell(n) return { floor(n or 0), tostring(floor(n or 0)) } end

-- What was added, as a treemap of the path patterns (the largest top).
local function growmap_html(d, top, out)
  local items = {}
  for i = 1, math.min(top, #d.added) do
    local g = d.added[i]
    items[i] = { name = g.path, bytes = g.bytes, count = g.count }
  end
  out[#out + 1] = '<div class="map grow" id="growmap">'
  for _, r in ipairs(treemap.layout(items, 0, 0, WIDTH, HEIGHT / 2)) do
    local it = r.item
    box(out, r, { class = "mod", css = ("background:hsl(%d,60%%,45%%)"):format(hue(it.name)) },
      (r.w > 60 and r.h > 14) and ('<span class="name">%s</span> <span class="sz">+%s</span>')
        :format(esc(it.name), size(it.bytes)) or "",
      ("%s: +%s in %d objects"):format(it.name, size(it.bytes), it.count), WIDTH, HEIGHT / 2)
  end
  out[#out + 1] = "</div>"
end

local function diff_html(d, top, out)
  out[#out + 1] = ('<h2 id="grew">What grew</h2><p class="note">added %s, freed %s ' ..
    'since the older snapshot; each box is a path where objects were added, as ' ..
    'large as their bytes</p>'):format(size(d.added_bytes), size(d.freed_bytes))
  if #d.added > 0 then growmap_html(d, top, out) end
  local rows = {}
  for i = 1, math.min(top, #d.added) do
    local g = d.added[i]
    rows[i] = { bytes_cell(g.bytes), count_cell(g.count), g.path }
  end
  out[#out + 1] = "<h3>Added, by path</h3>"
  table_html(out, "added", { "bytes", "objects", "path" }, rows, { true, true })
  rows = {}
  for i = 1, math.min(top, #d.grown) do
    local g = d.grown[i]
    rows[i] = { count_cell(g.entries), count_cell(g.before), count_cell(g.after), g.path }
  end
  out[#out + 1] = "<h3>Tables that grew</h3>"
  table_html(out, "grown", { "entries", "before", "after", "path" }, rows,
    { true, true, true })
  rows = {}
  for i = 1, math.min(top, #d.freed) do
    local g = d.freed[i]
    rows[i] = { bytes_cell(g.bytes), count_cell(g.count), g.path }
  end
  out[#out + 1] = "<h3>Freed, by path</h3>"
  table_html(out, "freed", { "bytes", "objects", "path" }, rows, { true, true })
end

local STYLE = [[
body{margin:16px 20px;font:14px/1.4 system-ui,sans-serif;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;margin:22px 0 6px}
h3{font-size:14px;margin:14px 0 4px}.note{color:#666;margin:2px 0 8px}
.map{position:relative;width:100%;max-width:1160px;aspect-ratio:1160/520;
background:#ddd;border:1px solid #999;overflow:hidden}
.map.grow{aspect-ratio:1160/260;max-width:1160px}
.mod,.kid{position:absolute;box-sizing:border-box;overflow:hidden;
white-space:nowrap;text-overflow:ellipsis}
.mod{border:1px solid #fff;color:#fff;padding:1px 4px;font-weight:600;font-size:13px}
.mod .sz{font-weight:400;opacity:.85}
.kid{border:1px solid rgba(255,255,255,.7);color:#111;font-weight:400;font-size:11px;
padding:1px 3px}.kid.rest{color:#555;font-style:italic}
.mod:hover,.kid:hover{outline:2px solid #000;z-index:2}
table{border-collapse:collapse;margin:4px 0 10px;min-width:640px}
th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:left}
th{background:#eee;cursor:pointer}td.num,th.num{text-align:right;
font-variant-numeric:tabular-nums}tbody tr:hover{background:#f0f0ff}
td:last-child{font-family:ui-monospace,monospace;font-size:12px}
]]

-- Sorts a table by a column on a click on its header.
local SCRIPT = [[
document.querySelectorAll('th').forEach(function (th, _) {
  th.addEventListener('click', function () {
    var tb = th.closest('table').tBodies[0], i = th.cellIndex;
    var num = th.classList.contains('num'), up = th.dataset.up !== '1';
    th.dataset.up = up ? '1' : '0';
    Array.from(tb.rows).sort(function (a, b) {
      var x = a.cells[i], y = b.cells[i];
      var d = num ? (+x.dataset.v) - (+y.dataset.v)
                  : x.textContent.localeCompare(y.textContent);
      return up ? -d : d;
    }).forEach(function (r) { tb.appendChild(r); });
  });
});
]]

--- Renders the figures `gather` returns as a page.
-- @tparam table m the figures
-- @treturn string the page
function M.render(m)
  local out = {}
  out[#out + 1] = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">' ..
    '<title>%s</title><style>%s</style></head><body>'):format(esc(m.title), STYLE)
  out[#out + 1] = ('<h1>%s</h1><p class="note">%s, %s: %s in %d objects.</p>')
    :format(esc(m.title), esc(m.runtime), esc(m.date), size(m.total), m.objects)
  out[#out + 1] = ('<h2>Modules and their largest subtrees</h2><p class="note">' ..
    'Each box is a module, as large as its %s bytes; inside, its largest %s.</p>')
    :format(m.modules[1] and m.modules[1].retained and "retained" or "exclusive",
      m.retained_kind == "retained" and "retained subtrees"
        or "containers by their own size (no retained sizes in this snapshot)")
  treemap_html(m, out)
  out[#out + 1] = ('<h2>Top retainers</h2><p class="note">%s</p>'):format(
    m.retained_kind == "retained" and "The objects whose loss would free the most."
      or "The largest containers, by their own size.")
  local rows, ret = {}, m.retained_kind == "retained"
  for i = 1, math.min(m.top, #m.largest) do
    local r = m.largest[i]
    rows[i] = ret and { bytes_cell(r.retained), bytes_cell(r.self), r.type or "", r.path }
      or { bytes_cell(r.self), r.type or "", r.path }
  end
  table_html(out, "retainers", ret and { "retained", "self", "type", "path" }
    or { "self", "type", "path" }, rows, { true, ret })
  out[#out + 1] = "<h2>Modules</h2>"
  rows = {}
  local mret = m.modules[1] and m.modules[1].retained ~= nil
  for i = 1, math.min(#m.modules, 200) do
    local r = m.modules[i]
    rows[i] = { bytes_cell(r.exclusive), bytes_cell(r.shared), count_cell(r.objects) }
    if mret then rows[i][4] = bytes_cell(r.retained) end
    rows[i][#rows[i] + 1] = r.name
  end
  table_html(out, "modules", mret and { "exclusive", "shared", "objects", "retained",
    "module" } or { "exclusive", "shared", "objects", "module" }, rows,
    { true, true, true, mret })
  if m.diff then diff_html(m.diff, m.top, out) end
  out[#out + 1] = ("<script>%s</script></body></html>\n"):format(SCRIPT)
  return concat(out, "\n")
end

--- Gathers and renders the report of a snapshot, and writes it.
-- @param snap a finished snapshot
-- @tparam string path the file to write
-- @tparam[opt] table opts as `gather` takes them
-- @treturn ?boolean true, or nil, message, errno
function M.save(snap, path, opts)
  local page = M.render(M.gather(snap, opts))
  return require("memprobe.core")._write_file(path, page)
end

return M
