#!/usr/bin/env lua
-- A game server's tick loop that watches memory every tick without
-- creating garbage: rss() and meminfo(into) refill what they are given.
-- A watch samples once a second of game time and raises an alert when a
-- series grows steadily.
--
--   lua examples/game_server.lua [TICKS]
--
-- Prints one line per alert and a summary; exits 0.

local memprobe = require "memprobe"

local ticks = tonumber(arg and arg[1]) or 300
local tick_rate = 30                       -- ticks per game second
local mem = {}                             -- refilled every tick
local world = { players = {} }             -- the "game state"

local watch = memprobe.watch{ sources = { "meminfo" } }
local alerts = 0
local max_rss = 0

for tick = 1, ticks do
  -- per tick: cheap, allocation-free reads
  local rss = memprobe.rss()
  memprobe.meminfo(mem)
  if rss > max_rss then max_rss = rss end

  -- the game: players join, and a bug keeps every chat line forever
  local p = world.players[tick % 50 + 1] or { chat = {} }
  world.players[tick % 50 + 1] = p
  p.chat[#p.chat + 1] = string.rep("gg ", 40)

  if tick % tick_rate == 0 then          -- once per game second
    watch:sample()
    local r = watch:report()
    local s = (r.growing or {})[1]
    if s then
      alerts = alerts + 1
      print(string.format("tick %d: ALERT %s grows %.0f B/min (r2 %.2f)",
        tick, s.name, s.rate or s.bytes_per_minute or 0, s.r2 or 0))
    end
  end
end

print(string.format("ticks %d  max rss %d  MemAvailable %d  alerts %d",
  ticks, max_rss, mem.MemAvailable or -1, alerts))
