local H = require "spec.helper"

-- The interpreter running this spec, to run the examples with.
local function interpreter()
  local i = -1
  while arg and arg[i - 1] do i = i - 1 end
  return arg and arg[i] or "lua"
end

describe("examples/openresty", function()
  it("serves /memz and /metrics from nginx with lua-nginx-module", function()
    if not H.run("command -v nginx") then pending("nginx not installed") return end
    math.randomseed(os.time())
    local port = math.random(20000, 29999)
    local out = H.run("sh examples/openresty/run.sh " .. port .. " 2>&1; echo rc=$?")
    if out:match("rc=77") then pending("lua-nginx-module not installed") return end
    assert.matches("rc=0", out, 1, true)
    assert.matches("== /memz\nsys used ", out, 1, true)
    assert.matches("Mem: ", out, 1, true)
    local metrics = out:match("== /metrics\n(.-)rc=0")
    assert.matches('memprobe_meminfo_bytes{field="MemTotal"}', metrics, 1, true)
    if H.run("command -v promtool") then
      local path = os.tmpname()
      local f = assert(io.open(path, "wb"))
      f:write(metrics)
      f:close()
      local res = H.run("promtool check metrics < " .. path .. " 2>&1; echo rc=$?")
      os.remove(path)
      assert.matches("rc=0", res, 1, true)
    end
  end)
end)

return interpreter
