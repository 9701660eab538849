-- The planted leak: one line keeps every string it makes, another line
-- churns ten times as many bytes and lets them go. Prints the profile's
-- top live and alloc sites and the truth: the bytes freed when the kept
-- strings are dropped. spec/30-profile_spec.lua runs it on every runtime.
-- Both make tables: no runtime interns or caches them (strings made
-- from numbers would leave interned short strings and a grown string
-- table behind, which the truth does not count).
-- Usage: lua bench/profile_leak.lua [rounds] [rate|-] [phased] [imprecise]
-- "phased" runs all the leaking rounds, then all the churning ones;
-- "imprecise" is precise = false (LuaJIT: the JIT's parameters as they are).
-- luacheck: no max line length (each site is one line)
local memprobe = require "memprobe"
local rounds, rate = tonumber(arg and arg[1]) or 300, tonumber(arg and arg[2])
local flags = {}
for i = 3, arg and #arg or 0 do flags[arg[i]] = true end
local phased = flags.phased

local keep, ring = {}, {} -- luacheck: ignore ring
local function leak(n) for i = 1, n do keep[#keep + 1] = { i, i, i, i } end end
local function churn(n) for i = 1, 5 * n do ring[i % 64 + 1] = { i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i } end end

-- Writes over the stack slots the loops' frames used: a register left
-- holding the last churned table would keep it alive (the collector
-- marks a frame's whole register window).
local function scrub()
  local a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t = -- luacheck: no unused
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
end
-- The thread's stack grows in whatever frame needs room, and each
-- collection shrinks it: its last growth while the loops ran is charged
-- to one of them and stays live. A deep call before the last collection
-- grows it further, and the shrink gives the newest growth back first.
local function deep(n) if n > 0 then return deep(n - 1) + 1 end return 0 end
local function full_gc() deep(200) scrub() collectgarbage() collectgarbage() end

-- Warm up: the stack, call frames and the ring's slots are made before
-- the profile starts (they outlive the churn and are not the leak).
churn(16)
leak(16)
keep = {}
local tracker = memprobe.track()
full_gc()
local p = memprobe.profile{ rate = rate, precise = not flags.imprecise }
if phased then
  for _ = 1, rounds do leak(1000) end
  for _ = 1, rounds do churn(1000) end
else
  for _ = 1, rounds do
    leak(1000)
    churn(1000)
  end
end
ring = {}
full_gc()
p:stop()
local live, alloc = p:top(5, "live"), p:top(5, "alloc")
local total, live_all = 0, p:top(1e9, "live")
for _, r in ipairs(live_all) do total = total + r.bytes end
local before = tracker:stats().live
keep = nil
full_gc()
local truth = before - tracker:stats().live

local function show(kind, rows)
  for i, r in ipairs(rows) do
    print(("%-5s %d %-28s %-8s %12d B %10d"):format(kind, i, r.site, r.func, r.bytes, r.count))
  end
end
show("live", live)
show("alloc", alloc)
local est = live[1] and live[1].bytes or 0
print(("truth %d B, top live site %d B (%+.1f%%), all live sites %d B (%+.1f%%)"):format(
  truth, est, (est / truth - 1) * 100, total, (total / truth - 1) * 100))
print(("%d samples, rate %d, churn/leak alloc bytes %.1f"):format(p:info().samples,
  p:info().rate, (alloc[1] and alloc[2]) and alloc[1].bytes / alloc[2].bytes or 0))
-- "Absent from live": the churn's tables are all gone. What may stay is
-- the VM's own structures the churn's frames grew (a CallInfo, a slice
-- of the stack), one sample at most, far below 1% of the leak.
local churn_live = false
for _, r in ipairs(live_all) do
  if r.func == "churn" and r.bytes > truth / 100 then churn_live = true end
end
print(("result live1=%s live1_bytes=%d alloc1=%s churn_live=%s truth=%d total=%d"):format(
  live[1] and live[1].func or "-", est, alloc[1] and alloc[1].func or "-",
  tostring(churn_live), truth, total))
return { live = live, alloc = alloc, truth = truth, total = total, info = p:info() }
