-- Shared by the specs: fixture roots, an independent reader of "Key: n kB"
-- files, and a way to run a shell command and read its output.
local H = {}

local root = "spec/fixtures/"

--- The config{} roots of fixture tree `name` (spec/fixtures/<name>).
function H.fixture(name)
  return { proc = root .. name .. "/proc", sys = root .. name .. "/sys" }
end

--- Reads a whole file, or nil.
function H.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

--- An independent parse of a meminfo-style file: { key = bytes or count }.
function H.parse_kv(path)
  local t = {}
  for line in assert(H.slurp(path), path):gmatch("[^\n]+") do
    local k, v, kb = line:match("^([^:]+):%s*(%d+)%s*(k?B?)%s*$")
    if k and t[k] == nil then
      t[k] = tonumber(v) * (kb == "kB" and 1024 or 1)
    end
  end
  return t
end

--- Output of a shell command, or nil when it failed.
function H.run(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  local out = p:read("*a")
  p:close()
  return out ~= "" and out or nil
end

--- Names of the globals, to check that a module creates none.
function H.globals()
  local g = {}
  for k in pairs(_G) do g[k] = true end
  return g
end

return H
