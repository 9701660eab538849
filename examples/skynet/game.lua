-- A game service with memprobe behind the debug console: it keeps a
-- table of players and, every second, leaks a little into a cache that
-- nothing clears. `dbgcmd ADDR MEMPROBE modules` names it.
local skynet = require "skynet"
local probe = require "memprobe_debug"

-- a service that must not pause runs the collector incrementally: in
-- generational mode a major collection holds it for a walk of its whole
-- heap, memprobe or not (docs/hosts.md)
collectgarbage("incremental")

local players, cache = {}, {}
-- the zone's map: enough state for a heap walk to take several ticks
local map = {}
for i = 1, 30000 do map[i] = { x = i % 317, y = i % 211 } end
local CMD = {}

function CMD.login(name)
  players[name] = { name = name, inventory = {}, since = skynet.now() }
  return true
end

function CMD.tiles()
  return #map
end

function CMD.count()
  local n = 0
  for _ in pairs(players) do n = n + 1 end
  return n, #cache
end

local function tick()
  for i = 1, 50 do cache[#cache + 1] = { skynet.now(), i } end
  skynet.timeout(100, tick)
end

skynet.start(function()
  probe.start()
  skynet.dispatch("lua", function(_, _, cmd, ...)
    skynet.ret(skynet.pack(CMD[cmd](...)))
  end)
  for i = 1, 200 do CMD.login("player" .. i) end
  skynet.timeout(100, tick)
end)
