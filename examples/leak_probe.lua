#!/usr/bin/env lua
-- A standalone leak probe for cron or CI: samples memory for a while and
-- exits non-zero when a threshold is crossed.
--
--   lua examples/leak_probe.lua [--samples N] [--interval S]
--       [--max-rss SIZE] [--min-available SIZE] [--max-slab-growth SIZE]
--
-- SIZE is bytes or a size like 100M, 1.5G, 64K (below 2^63 bytes).
-- Exit status: 0 healthy, 1 a threshold was crossed, 2 bad usage,
-- 3 the data could not be read (then nothing was checked: not healthy).

local memprobe = require "memprobe"
local parse_size = require("memprobe.console").parse_size

local USAGE = "usage: leak_probe.lua [--samples N] [--interval S] [--max-rss SIZE] " ..
              "[--min-available SIZE] [--max-slab-growth SIZE]\n"

local function exit(code, msg)
  if msg then io.stderr:write("leak_probe: ", msg, "\n") end
  if code == 2 then io.stderr:write(USAGE) end
  os.exit(code)
end

-- Each option and how its value is read; nil for a bad value.
local readers = {
  samples = function(v)
    local n = tonumber(v)
    return n and n >= 1 and n == math.floor(n) and n < 1e6 and n or nil
  end,
  interval = function(v)
    local n = tonumber(v)
    return n and n >= 0 and n <= 3600 and n or nil
  end,
}
-- bytes (1e9 included) or a size with a unit (100M), below 2^63 (past it
-- no integer holds it, and no machine has that much)
local function size(v)
  local n = tonumber(v)
  n = parse_size(v) or (n and n >= 0 and n)
  return n and n < 2^63 and math.floor(n) or nil
end
readers.max_rss, readers.min_available, readers.max_slab_growth = size, size, size

local opts, given = { samples = 3, interval = 1 }, {}
local i = 1
while arg[i] do
  if arg[i] == "--help" or arg[i] == "-h" then
    io.stdout:write(USAGE)
    os.exit(0)
  end
  local key = arg[i]:match("^%-%-([%w-]+)$")
  key = key and key:gsub("-", "_")
  if not key or not readers[key] then exit(2, "unknown option '" .. arg[i] .. "'") end
  if given[key] then exit(2, arg[i] .. " given twice") end
  local v = arg[i + 1] and readers[key](arg[i + 1])
  if v == nil then exit(2, "bad value for " .. arg[i] .. ": " .. tostring(arg[i + 1])) end
  opts[key], given[key] = v, true
  i = i + 2
end

local function sleep(s)
  if s > 0 then os.execute(("sleep %.3f"):format(s)) end
end

local first_slab
if opts.max_slab_growth then
  local err
  first_slab, err = memprobe.slabinfo()
  if not first_slab then exit(3, err) end
end
local failed = {}
local f, rss, err
for n = 1, opts.samples do
  f, err = memprobe.free()
  if not f then exit(3, err) end
  rss, err = memprobe.rss()
  if not rss then exit(3, err) end
  if n < opts.samples then sleep(opts.interval) end
end

if opts.max_rss and rss > opts.max_rss then
  failed[#failed + 1] = ("rss %d > %d"):format(rss, opts.max_rss)
end
if opts.min_available and f.available < opts.min_available then
  failed[#failed + 1] = ("available %d < %d"):format(f.available, opts.min_available)
end
if first_slab then
  local now
  now, err = memprobe.slabinfo()
  if not now then exit(3, err) end
  local top = memprobe.diff(first_slab, now).grew[1]
  if top and top.delta > opts.max_slab_growth then
    failed[#failed + 1] = ("slab cache %s grew %d > %d"):format(top.name, top.delta,
      opts.max_slab_growth)
  end
end

print(("rss %d  available %d  used %d"):format(rss, f.available, f.used))
for _, msg in ipairs(failed) do print("FAIL " .. msg) end
os.exit(#failed == 0 and 0 or 1)
