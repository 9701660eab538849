#!/usr/bin/env lua
-- Leak hunt: a child process holds thousands of sockets open, as a
-- leaking service would; memprobe.watch() samples the slab caches while
-- it does and names the caches that grew and never shrank. The leaker then
-- lets go and the caches shrink back.
--
--   lua examples/slab_leak_hunt.lua [SOCKETS_PER_STEP [STEPS]]
--
-- Needs root (or CAP_DAC_READ_SEARCH) for /proc/slabinfo, and python3 for
-- the leaker. Exit status: 0 when a socket cache is the top grower.

local memprobe = require "memprobe"
local format = require "memprobe.format"

local per_step = tonumber(arg[1]) or 2500
local steps = tonumber(arg[2]) or 4

local probe, err = memprobe.slabinfo()
if not probe then
  io.stderr:write("slab_leak_hunt: ", err, "\n")
  os.exit(1)
end

-- The leaker: opens per_step TCP sockets each time a go<k> file appears
-- in the control directory, and closes them all when 'release' appears.
local leaker = [[
import os, socket, sys, time
n, steps, ctl = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def wait(name):
    while not os.path.exists(os.path.join(ctl, name)):
        time.sleep(0.01)
held = []
for k in range(1, steps + 1):
    wait("go%d" % k)
    held += [socket.socket() for _ in range(n)]
    print("held %d" % len(held), flush=True)
wait("release")
for s in held:
    s.close()
print("released", flush=True)
]]

local ctl = os.tmpname()
os.remove(ctl)
assert(os.execute("mkdir -m 700 '" .. ctl .. "'"))
local function touch(name) assert(io.open(ctl .. "/" .. name, "w")):close() end
local f = assert(io.open(ctl .. "/leaker.py", "w"))
f:write(leaker)
f:close()

local child = assert(io.popen(("ulimit -n %d 2>/dev/null; exec python3 '%s/leaker.py' %d %d '%s'")
  :format(per_step * steps + 64, ctl, per_step, steps, ctl), "r"))

local w = memprobe.watch{ sources = { "slabinfo" }, samples = steps + 1, interval = 1 }

-- Sockets closed just before (an earlier run) are freed after an RCU grace
-- period: wait until the slab total stops moving, so the first sample is
-- not taken while other caches still shrink.
local function settle()
  local last = memprobe.slabinfo().totals.total_size
  for _ = 1, 20 do
    w.sleep(0.5)
    local now = memprobe.slabinfo().totals.total_size
    if math.abs(now - last) < 256 * 1024 then return end
    last = now
  end
end
settle()
local before = memprobe.slabinfo()
w:sample()
local ok = true
for k = 1, steps do
  w.sleep(w.interval)
  touch("go" .. k)
  local line = child:read("*l")
  if not line or not line:match("^held") then
    io.stderr:write("slab_leak_hunt: the leaker stopped (python3 missing?)\n")
    ok = false
    break
  end
  w:sample()
  io.write(("step %d: leaker holds %s sockets\n"):format(k, line:match("%d+")))
end
local during = memprobe.slabinfo()
local report = w:report()
touch("release")
child:read("*l")
child:close()
os.execute("rm -rf '" .. ctl .. "'")
if not ok then os.exit(1) end

io.write("\n", format.watch(report, 8), "\n")

local top = report.flagged[1]
if not top then
  io.write("\nno slab cache grew monotonically\n")
  os.exit(1)
end
local detail = memprobe.slab_detail(top.name)
io.write(("\ntop grower: %s (%s/min, r2=%.2f, %s over %d samples)\n"):format(
  top.name, format.size(top.slope), top.r2, format.size(top.delta), report.samples))
if detail and detail.alias_names and #detail.alias_names > 1 then
  io.write("  merged with: ", table.concat(detail.alias_names, " "), "\n")
end
for _, e in ipairs(report.flagged) do
  if e.name == "sock_inode_cache" then
    io.write(("sock_inode_cache grew %s: %d sockets held\n"):format(
      format.size(e.delta), per_step * steps))
  end
end

-- What letting go gave back (freeing is RCU-deferred: it may lag a little).
w.sleep(1)
local after = memprobe.slabinfo()
local d = memprobe.diff(during, after)
io.write("\nafter the leaker let go:\n", format.diff(d, 4), "\n")
local grew = memprobe.diff(before, during)
io.write(("\nslab total: %s before, %s while leaking, %s after\n"):format(
  format.size(before.totals.size), format.size(during.totals.size),
  format.size(after.totals.size)))

local sockety = { sock_inode_cache = true, TCP = true, UDP = true, UNIX = true,
                  RAW = true, PING = true }
local named = sockety[top.name]
for _, a in ipairs(detail and detail.alias_names or {}) do
  named = named or sockety[a]
end
os.exit((named and grew.grew[1]) and 0 or 1)
