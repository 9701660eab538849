local H = require "spec.helper"
local memprobe = require "memprobe"

local function have(cmd)
  return H.status("command -v " .. cmd) == 0
end

-- Two modules of known weight, and a table that grows between two
-- snapshots.
local function mk(n)
  local t = {}
  for i = 1, n do t[i] = { i, "s" .. i } end
  return t
end

local function chromium(dir, args, url)
  return H.run(("timeout 120 chromium --headless --disable-gpu --no-sandbox " ..
    "--hide-scrollbars --user-data-dir='%s/chrome' %s '%s'"):format(dir, args, url))
end

describe("snap:save(path, 'html')", function()
  local dir, old, new
  setup(function()
    dir = H.tmpdir()
    package.loaded.spec_inventory = { items = mk(3000) }
    package.loaded.spec_sessions = { live = mk(1000) }
    old = memprobe.snapshot()
    local items = package.loaded.spec_inventory.items
    for i = 1, 1500 do items[#items + 1] = { i } end
    new = memprobe.snapshot()
  end)
  teardown(function()
    old:close()
    new:close()
    package.loaded.spec_inventory, package.loaded.spec_sessions = nil, nil
    H.rmdir(dir)
  end)

  it("writes a self-contained page: the modules, the retainers, what grew", function()
    local path = dir .. "/r.html"
    assert.is_true(new:save(path, "html", { older = old, title = "spec report" }))
    local page = H.slurp(path)
    assert.is_truthy(page:match("^<!DOCTYPE html>"))
    -- nothing from elsewhere: no URL, no external script, style or image
    assert.is_nil(page:find("https?://"))
    assert.is_nil(page:find("<link", 1, true))
    assert.is_nil(page:find(" src=", 1, true))
    assert.is_truthy(page:find("<title>spec report</title>", 1, true))
    for _, id in ipairs{ "treemap", "retainers", "modules", "grew", "growmap", "grown" } do
      assert.is_truthy(page:find('id="' .. id .. '"', 1, true), id)
    end
    assert.is_truthy(page:find("package.loaded.spec_inventory.items", 1, true))
  end)

  it("renders in headless Chromium, whose DOM names the modules", function()
    if not have("chromium") then pending("chromium is not installed") return end
    local path = dir .. "/r.html"
    assert.is_true(new:save(path, "html", { older = old }))
    local dom = chromium(dir, "--dump-dom", "file://" .. path)
    assert.is_truthy(dom, "chromium printed nothing")
    local map = dom:match('<div class="map" id="treemap">(.-)<h2')
    assert.is_truthy(map, "no treemap in the DOM")
    -- a box each, the heavier module first (the layout is largest first)
    local a = map:find('<span class="name">spec_inventory</span>', 1, true)
    local b = map:find('<span class="name">spec_sessions</span>', 1, true)
    assert.is_truthy(a, "no box for spec_inventory")
    assert.is_truthy(b, "no box for spec_sessions")
    assert.is_true(a < b)
    -- what grew, as boxes: the path where the entries were added
    local grow = dom:match('<div class="map grow" id="growmap">(.-)<h3')
    assert.is_truthy(grow, "no map of what grew")
    assert.is_truthy(grow:find("package.loaded.spec_inventory.items[*]", 1, true), grow)
    -- the grown table, by the entries it gained
    local grown = dom:match('<table id="grown">(.-)</table>')
    assert.is_truthy(grown)
    assert.is_truthy(grown:find("package.loaded.spec_inventory.items", 1, true), grown)
    assert.is_truthy(grown:find('data-v="1500"', 1, true), grown)
    -- and a screenshot, kept under build/ to look at
    local shot = ("%s/build/htmlreport-%s.png"):format(
      H.run("pwd"):match("[^\n]+"), H.rt)
    os.remove(shot)
    chromium(dir, "--window-size=1280,1600 --screenshot='" .. shot .. "'", "file://" .. path)
    local png = H.slurp(shot)
    assert.is_truthy(png, "no screenshot")
    assert.are.equal("\137PNG", png:sub(1, 4))
    assert.is_true(#png > 20000, #png)  -- a blank page is about 5 KB
  end)

  it("returns nil, message, errno when the file cannot be written", function()
    local ok, msg, errno = new:save(dir .. "/no/such/r.html", "html")
    assert.is_nil(ok)
    assert.is_truthy(msg:find("No such file or directory", 1, true), msg)
    assert.are.equal(2, errno)
  end)

  it("raises on misuse", function()
    assert.has_error(function() new:save(dir .. "/x.html", "html", { older = 1 }) end,
      "bad argument #3 to 'save' (older: userdata expected, got number)")
    assert.has_error(function() new:save(dir .. "/x.html", "html", { max_ms = 2 }) end,
      "bad argument #3 to 'save' (unknown option 'max_ms')")
  end)
end)

describe("memprobe.treemap.layout", function()
  local layout = require("memprobe.treemap").layout
  it("gives each item an area in proportion, inside the box, none overlapping", function()
    local items = {}
    for i, b in ipairs{ 500, 300, 120, 50, 20, 7, 2, 1 } do items[i] = { bytes = b, id = i } end
    local rects = layout(items, 10, 20, 600, 400)
    assert.are.equal(8, #rects)
    local area = 0
    for _, r in ipairs(rects) do
      assert.is_near(r.item.bytes / 1000 * 600 * 400, r.w * r.h, 1e-6)
      assert.is_true(r.x >= 10 - 1e-9 and r.y >= 20 - 1e-9)
      assert.is_true(r.x + r.w <= 610 + 1e-9 and r.y + r.h <= 420 + 1e-9)
      area = area + r.w * r.h
    end
    assert.is_near(600 * 400, area, 1e-6)
    for i = 1, #rects do
      for j = i + 1, #rects do
        local p, q = rects[i], rects[j]
        local ox = math.min(p.x + p.w, q.x + q.w) - math.max(p.x, q.x)
        local oy = math.min(p.y + p.h, q.y + q.h) - math.max(p.y, q.y)
        assert.is_false(ox > 1e-9 and oy > 1e-9, "overlap")
      end
    end
    -- squarified: the largest is no thinner than 1:3 here
    local big = rects[1]
    assert.is_true(math.max(big.w / big.h, big.h / big.w) < 3)
  end)

  it("skips empty items and lays out nothing in an empty box", function()
    assert.are.same({}, layout({ { bytes = 0 } }, 0, 0, 10, 10))
    assert.are.same({}, layout({ { bytes = 5 } }, 0, 0, 0, 10))
  end)
end)
