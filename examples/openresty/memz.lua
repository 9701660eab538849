-- memprobe in an nginx worker (lua-nginx-module): /memz runs the admin
-- console, /metrics serves Prometheus text. Each worker is its own Lua
-- state, so each keeps its own console (mark/diff, watch and track go on
-- across requests) and labels its series with its worker id.
--
--   init_worker_by_lua_block { require("memz").init_worker() }
--   content_by_lua_block { require("memz").memz() }
--   content_by_lua_block { require("memz").metrics() }
local memprobe = require "memprobe"
local ngx = ngx  -- luacheck: ignore 113 (lua-nginx-module's global)

local M = {}

local console  -- this worker's, made at init_worker (or on first use)

--- Installs the allocator tracker in this worker and makes its console;
-- the console's `lua` and `limit` commands then see the tracker.
function M.init_worker()
  memprobe.track()
  console = memprobe.console.new()
end

--- /memz?cmd=slab%2010: the console's answer to the (decoded) command.
function M.memz()
  console = console or memprobe.console.new()
  local cmd = ngx.req.get_uri_args().cmd  -- URL-decoded, unlike ngx.var.arg_cmd
  if type(cmd) ~= "string" then cmd = "mem" end  -- absent, or given twice
  ngx.header["X-Memprobe-Worker"] = ngx.worker.id()
  ngx.say(console:run(cmd))
end

--- /metrics: the figures, the process and Lua series labelled with the
-- worker, so that a scrape reaching another worker makes other series.
function M.metrics()
  ngx.print(memprobe.export.prometheus{ labels = { worker = ngx.worker.id() } })
end

return M
