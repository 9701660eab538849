-- A tracked skynet service for spec/22-skynet_spec.lua: it requires
-- memprobe, calls track() at start and answers the spec's calls, which
-- come through skynet's debug console (`call ADDR "grow", 200`).
local skynet = require "skynet"
local memprobe = require "memprobe"
local settle = require("memprobe.settle").settle
local probe = require "memprobe_debug"

local mode = ...
local tracker
local data = {}
-- made under the tracker and alive until the service dies: on Lua 5.5
-- strings from a buffer over 1 KiB are external, and free through the
-- allocator that was current when they were made, in lua_close too
local ballast
local CMD = {}

function CMD.ping()
  return #ballast == 2 and "pong"
end

-- n records, each a small table and a string of `size` bytes (over 1 KiB
-- they are external strings on Lua 5.5)
function CMD.grow(n, size)
  for i = 1, n do
    data[#data + 1] = { i, string.rep("x", size or 2048) .. i }
  end
  return #data
end

function CMD.drop()
  data = {}
  settle()
  return #data
end

-- The tracker's live bytes, the collector's count at the same instant,
-- and the collector's count once the stats table exists. The collector
-- stops until `resume`, so that skynet's own counter, read by the
-- console in between, sees the same heap plus that table.
function CMD.live()
  collectgarbage("stop")
  local st = tracker:stats()
  return st.live, st.gc, math.floor(collectgarbage("count") * 1024)
end

function CMD.resume()
  collectgarbage("restart")
  return true
end

-- The census: its total, the shared code row (bytes, prototypes,
-- strings), the collector's count.
function CMD.heap()
  local c = memprobe.heap()
  local sc = c.shared_code
  local protos, strings = sc.by_type.proto or {}, sc.by_type.string or {}
  return math.floor(c.total), math.floor(sc.bytes), protos.count or 0,
         strings.count or 0, c.gc_bytes
end

function CMD.modules()
  local rows = memprobe.modules()
  for _, row in ipairs(rows) do
    if row.name == "(shared code)" then
      return math.floor(row.shared), math.floor(rows.total), row.exclusive
    end
  end
  return 0, math.floor(rows.total)
end

-- Runs until skynet's `signal ADDR` breaks it.
function CMD.busy()
  local n = 0
  while true do n = n + 1 end
end

function CMD.abort()
  require("skynet.manager").abort()
end

skynet.start(function()
  skynet.dispatch("lua", function(_, _, cmd, ...)
    skynet.ret(skynet.pack(CMD[cmd](...)))
  end)
  if mode ~= "untracked" then tracker = memprobe.track() end
  ballast = { string.rep("a", 3000), string.rep("b", 5000) }
  -- the example's console behind `dbgcmd ADDR MEMPROBE ...`
  probe.start{ track = false }
end)
