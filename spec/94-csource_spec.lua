local H = require "spec.helper"

-- The C files of memprobe.core, from the rockspec.
local files = {}
for path in H.slurp("rockspec/memprobe-scm-1.rockspec"):gmatch('"(csrc/[%w_]+%.c)"') do
  files[#files + 1] = path
end

-- Places that push nil and then a message within the next three lines:
-- a copy of the environment-failure result.
local function copies(text)
  local lines, found = {}, {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    if line:match("lua_pushnil%(L%);") then
      for j = i + 1, math.min(i + 3, #lines) do
        if lines[j]:match("lua_push%a*string%(") or lines[j]:match("lua_pushliteral%(") then
          found[#found + 1] = i
          break
        end
      end
    end
  end
  return found
end

describe("memprobe.core's C source", function()
  it("is listed in the rockspec", function()
    assert.is_true(#files >= 20)
  end)

  it("pushes nil, message, errno in one place: memprobe_result in procfs.c", function()
    local allowed = { ["csrc/procfs.c"] = 1 }
    for _, path in ipairs(files) do
      local n = #copies(H.slurp(path))
      assert(n == (allowed[path] or 0),
        ("%s: %d places push nil and a message (lines %s)"):format(path, n,
          table.concat(copies(H.slurp(path)), ", ")))
    end
    assert.matches("\nint memprobe_result %(lua_State %*L, int err, const char %*fmt, %.%.%.%)",
      H.slurp("csrc/procfs.c"))
  end)
end)
