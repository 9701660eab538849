--- A self-contained flame graph: SVG, or an HTML page holding it, with
-- no script and nothing loaded from elsewhere. Each frame is a box as
-- wide as the bytes charged under it, the root at the bottom; its
-- `<title>` (the browser's tooltip) gives the frame, its site and its
-- bytes. Used by `profile:flamegraph(path)`.
-- @module memprobe.flame

local M = {}

local WIDTH, ROW, FONT = 1200, 17, 12
local CHAR = FONT * 0.6  -- average glyph width of the monospace font

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;",
                                       [">"] = "&gt;", ['"'] = "&quot;" }))
end

-- A warm colour from the name, so a function keeps its colour.
local function colour(name)
  local h = 0
  for i = 1, #name do h = (h * 31 + name:byte(i)) % 65536 end
  return ("rgb(%d,%d,%d)"):format(205 + h % 50, 80 + math.floor(h / 7) % 120,
                                  40 + math.floor(h / 3) % 50)
end

-- The call tree: children by label, bytes summed, root first.
local function tree(stacks, label)
  local root = { name = "all", bytes = 0, kids = {}, order = {} }
  for _, s in ipairs(stacks) do
    root.bytes = root.bytes + s.bytes
    local node = root
    for i = #s.frames, 1, -1 do
      local name = label(s.frames[i])
      local kid = node.kids[name]
      if not kid then
        kid = { name = name, bytes = 0, kids = {}, order = {} }
        node.kids[name] = kid
        node.order[#node.order + 1] = kid
      end
      kid.bytes = kid.bytes + s.bytes
      node = kid
    end
  end
  return root
end

local function depth(node)
  local d = 0
  for _, k in ipairs(node.order) do d = math.max(d, depth(k)) end
  return d + 1
end

-- Appends the boxes of node and its children at (x, level).
local function boxes(out, node, x, level, scale, total, height)
  local w = node.bytes * scale
  if w < 0.5 then return end
  local y = height - (level + 1) * ROW
  local pct = total > 0 and node.bytes * 100 / total or 0
  local text = ""
  local fits = math.floor((w - 6) / CHAR)
  if fits >= 3 then
    text = #node.name <= fits and node.name or node.name:sub(1, fits - 2) .. ".."
  end
  out[#out + 1] = ('<g><title>%s (%d bytes, %.2f%%)</title>' ..
    '<rect x="%.1f" y="%d" width="%.1f" height="%d" rx="2" fill="%s"/>' ..
    '<text x="%.1f" y="%d">%s</text></g>'):format(esc(node.name), node.bytes, pct,
    x, y, w, ROW - 1, colour(node.name), x + 3, y + ROW - 5, esc(text))
  table.sort(node.order, function(a, b) return a.bytes > b.bytes end)
  for _, k in ipairs(node.order) do
    boxes(out, k, x, level + 1, scale, total, height)
    x = x + k.bytes * scale
  end
end

--- Renders stacks as a flame graph.
-- @tparam table stacks `{ bytes, frames = { leaf first } }` rows
-- @tparam table opts `title`, `svg` (true: a bare SVG document), `label`
-- (function(frame) -> the box's name)
-- @treturn string the document
function M.render(stacks, opts)
  local root = tree(stacks, opts.label)
  local levels = depth(root)
  local height = (levels + 1) * ROW + 30
  local out = {}
  out[#out + 1] = ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" ' ..
    'font-family="monospace" font-size="%d">'):format(WIDTH, height, FONT)
  out[#out + 1] = ('<text x="4" y="16" font-size="14">%s</text>'):format(esc(opts.title or ""))
  if root.bytes > 0 then
    boxes(out, root, 0, 0, WIDTH / root.bytes, root.bytes, height)
  else
    out[#out + 1] = '<text x="4" y="40">no samples</text>'
  end
  out[#out + 1] = "</svg>"
  local svg = table.concat(out, "\n")
  if opts.svg then return '<?xml version="1.0" encoding="UTF-8"?>\n' .. svg .. "\n" end
  return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>%s</title>' ..
    '<style>body{margin:8px;font-family:sans-serif}rect:hover{stroke:#000}</style>' ..
    '</head><body>\n%s\n</body></html>\n'):format(esc(opts.title or "flame graph"), svg)
end

return M
