#!/usr/bin/env lua
-- A game server's tick loop that watches memory every tick without
-- creating garbage: rss() and meminfo(into) refill what they are given.
-- Once per game second a watch samples the Lua heap and the process, and
-- the server raises an alert when a series grows steadily.
--
--   lua examples/game_server.lua [TICKS]
--
-- Prints one line per alert and a summary; exits 0.

local memprobe = require "memprobe"

local ticks = tonumber(arg and arg[1]) or 900
local tick_rate = 30                       -- ticks per game second
local mem = {}                             -- refilled every tick
local world = { players = {} }             -- the "game state"

local watch = memprobe.watch{ sources = { "lua", "process" } }
local alerted = {}
local alerts, max_rss, read_garbage = 0, 0, 0

memprobe.meminfo(mem)                      -- warm: creates the keys once
if jit then jit.off() end                  -- traces live in the Lua heap

for tick = 1, ticks do
  -- per tick: cheap reads; prove they allocate nothing
  collectgarbage("stop")
  local before = collectgarbage("count")
  local rss = memprobe.rss()
  memprobe.meminfo(mem)
  read_garbage = read_garbage + (collectgarbage("count") - before) * 1024
  collectgarbage("restart")
  if rss > max_rss then max_rss = rss end

  -- the game: players chat, and a bug keeps every chat line forever
  local p = world.players[tick % 50 + 1] or { chat = {} }
  world.players[tick % 50 + 1] = p
  p.chat[#p.chat + 1] = string.rep("gg ", 40) .. tick

  if tick % tick_rate == 0 then            -- once per game second
    watch:sample(tick / tick_rate)         -- game time, in seconds
    local r = watch:report()
    for _, s in ipairs(r.flagged) do
      if r.samples >= 5 and s.r2 > 0.9 and not alerted[s.name] then
        alerted[s.name] = true
        alerts = alerts + 1
        print(string.format("tick %d: ALERT %s %s grows %.0f B/min (r2 %.2f)",
          tick, s.source, s.name, s.slope, s.r2))
      end
    end
  end
end

print(string.format("ticks %d  max rss %d  MemAvailable %d  alerts %d  " ..
  "bytes allocated by the per-tick reads %d", ticks, max_rss,
  mem.MemAvailable or -1, alerts, read_garbage))
