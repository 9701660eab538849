#!/usr/bin/env lua
-- A standalone leak probe for cron or CI: samples memory for a while and
-- exits non-zero when a threshold is crossed.
--
--   lua examples/leak_probe.lua [--samples N] [--interval S]
--       [--max-rss BYTES] [--min-available BYTES] [--max-slab-growth BYTES]
--
-- Exit status: 0 healthy, 1 a threshold was crossed, 2 bad usage,
-- 3 the data could not be read.

local memprobe = require "memprobe"

local opts = { samples = 3, interval = 1, max_rss = nil, min_available = nil,
               max_slab_growth = nil }
local i = 1
while arg[i] do
  local key = arg[i]:match("^%-%-([%w-]+)$")
  local val = tonumber(arg[i + 1])
  if not key or not val then
    io.stderr:write("usage: leak_probe.lua [--samples N] [--interval S] ",
      "[--max-rss BYTES] [--min-available BYTES] [--max-slab-growth BYTES]\n")
    os.exit(2)
  end
  opts[key:gsub("-", "_")] = val
  i = i + 2
end

local function sleep(s)
  if s > 0 then os.execute("sleep " .. tonumber(s)) end
end

local first_slab = memprobe.slabinfo and memprobe.slabinfo()
local failed = {}
local f, rss
for n = 1, opts.samples do
  local err
  f, err = memprobe.free()
  if not f then io.stderr:write(err, "\n") os.exit(3) end
  rss = memprobe.rss()
  if n < opts.samples then sleep(opts.interval) end
end

if opts.max_rss and rss > opts.max_rss then
  failed[#failed + 1] = ("rss %d > %d"):format(rss, opts.max_rss)
end
if opts.min_available and f.available < opts.min_available then
  failed[#failed + 1] = ("available %d < %d"):format(f.available, opts.min_available)
end
if opts.max_slab_growth and first_slab then
  local d = memprobe.diff(first_slab, memprobe.slabinfo())
  local top = d.grew[1]
  if top and top.delta > opts.max_slab_growth then
    failed[#failed + 1] = ("slab cache %s grew %d > %d"):format(top.name, top.delta,
      opts.max_slab_growth)
  end
end

print(("rss %d  available %d  used %d"):format(rss, f.available, f.used))
for _, msg in ipairs(failed) do print("FAIL " .. msg) end
os.exit(#failed == 0 and 0 or 1)
