#!/usr/bin/env lua
-- A game server's tick loop that watches memory every tick without
-- creating garbage: rss() and meminfo(into) refill what they are given.
-- Once per game second a watch samples the Lua heap and the process, and
-- the server raises an alert when a series grows steadily. At tick 400
-- a zone loads; at tick 450 an operator types `mem modules 5` and
-- `heap`: the console walks the heap as a job that each tick advances
-- within BUDGET_MS, and its reply function prints the answers when they
-- are ready.
--
--   lua examples/game_server.lua [TICKS]
--
-- Prints one line per alert, the operator's answers and a summary
-- (the longest console step, in CPU time); exits 0.

local memprobe = require "memprobe"
-- incremental collection (5.4 and 5.5 default to generational, whose
-- major collections hold the game for a walk of its whole heap)
pcall(collectgarbage, "incremental")

local ticks = tonumber(arg and arg[1]) or 900
local tick_rate = 30                       -- ticks per game second
local mem = {}                             -- refilled every tick
local world = { players = {} }             -- the "game state"
package.loaded["game.world"] = world       -- as a module of the game


local BUDGET_MS = 2                        -- the console's share of a tick
local answered = {}
local console                              -- made when first asked
local worst_step, first_call, console_ticks, over_twice = 0, 0, 0, 0
-- a step's CPU time, the longest so far and those over twice the budget
local function timed(dt)
  worst_step = math.max(worst_step, dt)
  if dt > 2 * BUDGET_MS / 1000 then over_twice = over_twice + 1 end
end

local watch = memprobe.watch{ sources = { "lua", "process" } }
local alerted = {}
local alerts, max_rss, read_garbage = 0, 0, 0

memprobe.meminfo(mem)                      -- warm: creates the keys once
collectgarbage("collect")                  -- the start-up's garbage goes
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

  -- a zone loads: a map of some size, for the walk to take many ticks
  if tick == 400 then
    world.map = {}
    for i = 1, 40000 do world.map[i] = { x = i % 317, y = i % 211 } end
  end
  -- the operator's commands, answered with progress at once; the first
  -- loads the console and the walk's code (timed apart)
  if tick == 450 then
    local t0 = os.clock()
    console = memprobe.console.new{
      budget_ms = BUDGET_MS,
      reply = function(line, text) answered[#answered + 1] = { line, text } end,
    }
    require("memprobe.heap").model()
    first_call = os.clock() - t0
    for _, line in ipairs({ "mem modules 5", "heap" }) do
      t0 = os.clock()
      print(("tick %d: > %s: %s"):format(tick, line, console:run(line)))
      timed(os.clock() - t0)
    end
  end
  -- the console's share of the tick: the walk goes on, within its budget
  if console then
    local t0 = os.clock()
    local idle = console:step(BUDGET_MS)
    timed(os.clock() - t0)
    if not idle then console_ticks = console_ticks + 1 end
  end
  for _, a in ipairs(answered) do
    print(("tick %d: answer to '%s':\n%s"):format(tick, a[1], a[2]))
  end
  answered = {}

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
print(string.format("console: %d ticks walking, longest step %.2f ms of a %d ms budget," ..
  " %d over twice it (its first use loaded the console, the walk and its size model" ..
  " in %.1f ms)", console_ticks, worst_step * 1000, BUDGET_MS, over_twice, first_call * 1000))
