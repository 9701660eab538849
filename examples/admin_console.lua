#!/usr/bin/env lua
-- The memprobe admin console over TCP, as a game server would offer it to
-- its operators: connect with `nc 127.0.0.1 7788` and type `mem slab 10`.
--
--   lua examples/admin_console.lua [--port N] [--clients N] [--allow-drop]
--
-- Listens on 127.0.0.1 only. Serves one client at a time; after N clients
-- (default: no limit) it exits 0. `quit` ends a session.

local socket = require "socket"
local console = require "memprobe.console"

local port, clients, allow_drop = 7788, nil, false
local i = 1
while arg[i] do
  if arg[i] == "--port" then port = tonumber(arg[i + 1]); i = i + 2
  elseif arg[i] == "--clients" then clients = tonumber(arg[i + 1]); i = i + 2
  elseif arg[i] == "--allow-drop" then allow_drop = true; i = i + 1
  else
    io.stderr:write("usage: admin_console.lua [--port N] [--clients N] [--allow-drop]\n")
    os.exit(2)
  end
end
if not port then io.stderr:write("admin_console: --port needs a number\n") os.exit(2) end

local server = assert(socket.bind("127.0.0.1", port))
-- One console for every session: 'mark' in one and 'diff' in the next work.
local c = console.new{ allow_drop_caches = allow_drop }
io.write("memprobe console on 127.0.0.1:", port, "\n")
io.stdout:flush()

local PROMPT = "mem> "
local served = 0
while not clients or served < clients do
  local client = server:accept()
  client:settimeout(300)  -- an idle operator is dropped after 5 minutes
  client:send("memprobe console: type 'help', 'quit' to leave\n" .. PROMPT)
  while true do
    local line, err = client:receive("*l")
    if not line then
      if err ~= "closed" then client:send("\nbye (" .. tostring(err) .. ")\n") end
      break
    end
    line = line:gsub("\r$", "")
    if line == "quit" or line == "exit" then client:send("bye\n") break end
    client:send((c:run(line)) .. "\n" .. PROMPT)
  end
  client:close()
  served = served + 1
end
server:close()
