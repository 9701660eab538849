-- The node of spec/22-skynet_spec.lua: skynet's own debug console on the
-- port the spec chose (config: console_port); the spec starts the rest
-- through it.
local skynet = require "skynet"

skynet.start(function()
  skynet.newservice("debug_console", "127.0.0.1", skynet.getenv("console_port"))
  skynet.exit()
end)
