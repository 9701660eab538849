-- The example node: skynet's debug console on 127.0.0.1:CONSOLE_PORT and
-- a game service that carries memprobe behind it.
local skynet = require "skynet"

skynet.start(function()
  skynet.newservice("debug_console", "127.0.0.1", skynet.getenv("console_port"))
  local game = skynet.newservice("game")
  skynet.error(("game service %s: dbgcmd %s MEMPROBE help"):format(
    skynet.address(game), skynet.address(game)))
  skynet.exit()
end)
