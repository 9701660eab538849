-- Types commands into skynet's debug console and prints the answers:
--   lua client.lua PORT 'list' 'dbgcmd {game} MEMPROBE heap' ...
-- {game} stands for the address of the game service (from `list`);
-- `sleep N` waits N seconds.
local socket = require "socket"

local port = assert(tonumber(arg[1]), "usage: client.lua PORT command...")
local conn = assert(socket.connect("127.0.0.1", port))
conn:settimeout(30)
assert(conn:receive("*l"))  -- Welcome to skynet console

-- Sends a line; returns the answer's lines up to <CMD OK> or <CMD Error>.
local function cmd(line)
  assert(conn:send(line .. "\n"))
  local out = {}
  repeat
    local l, err = conn:receive("*l")
    if not l then error("console: " .. err) end
    out[#out + 1] = l
  until l == "<CMD OK>" or l == "<CMD Error>"
  return out
end

local game
for _, l in ipairs(cmd("list")) do
  game = game or l:match("^(:%x+)\tsnlua game")
end
for i = 2, #arg do
  local line = arg[i]:gsub("{game}", game or "?")
  local secs = line:match("^sleep (%d+)$")
  if secs then
    socket.sleep(tonumber(secs))
  else
    print("> " .. line)
    print(table.concat(cmd(line), "\n"))
  end
end
conn:close()
