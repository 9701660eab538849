local H = require "spec.helper"

-- Every module the rockspec installs, each required in a fresh interpreter
-- (so that nothing loaded by the specs hides a global it would create).
local modules = {}
for name in H.slurp("rockspec/memprobe-scm-1.rockspec"):gmatch('%["(memprobe[%w._]*)"%]%s*=') do
  modules[#modules + 1] = name
end

describe("every memprobe module", function()
  it("is listed in the rockspec", function()
    assert.is_true(#modules >= 10)
  end)

  for _, name in ipairs(modules) do
    it(name .. " does not create globals, also when used", function()
      local code = ([[
        local before = {}
        for k in pairs(_G) do before[k] = true end
        local m = require "%s"
        if "%s" == "memprobe" then m.free() m.meminfo() m.report() end
        for k in pairs(_G) do
          if not before[k] then io.write("new global: ", tostring(k), "\n") end
        end
        io.write("done\n")
      ]]):format(name, name)
      local p = io.popen(("env LUA_PATH='%s' LUA_CPATH='%s' %s -e '%s' 2>&1")
        :format(package.path, package.cpath, H.interpreter(), code:gsub("'", "'\\''")))
      local out = p:read("*a")
      p:close()
      assert.are.equal("done\n", out)
    end)
  end
end)
