--- The one checker of option tables. Every function that takes `opts`
-- declares the options it knows and what each must be; anything else is
-- misuse, raised as `bad argument #N to 'name' (...)` naming the function
-- and the option.
-- @module memprobe.options

local M = {}

-- What a value of each kind must be, as the message says it.
local kinds = {
  count = { "a positive integer", function(v)
    return type(v) == "number" and v >= 1 and v == math.floor(v) and v < 2^53
  end },
  number = { "a finite number >= 0", function(v)
    return type(v) == "number" and v >= 0 and v < math.huge
  end },
}
for _, t in ipairs({ "boolean", "string", "table", "function", "userdata" }) do
  kinds[t] = { t, function(v) return type(v) == t end }
end

local function allowed(set)
  local names = {}
  for k in pairs(set) do names[#names + 1] = k end
  table.sort(names)
  return "one of " .. table.concat(names, ", ")
end

--- Checks an option table against a spec.
-- @tparam string fname the function's name, as the caller knows it
-- @param opts the option table, or nil
-- @tparam table spec option name to a kind ("count", "number",
-- "boolean", "string", "table", "function", "userdata") or to a set of allowed
-- strings (`{ caller = true, module = true }`)
-- @tparam[opt] integer argn the argument's position (default 1)
-- @tparam[opt] integer level the stack level to blame (default 3: the
-- caller of the function that called check)
-- @treturn table opts, or a new empty table when opts is nil
function M.check(fname, opts, spec, argn, level)
  argn, level = argn or 1, level or 3
  local function fail(msg)
    error(("bad argument #%d to '%s' (%s)"):format(argn, fname, msg), level + 1)
  end
  if opts == nil then return {} end
  if type(opts) ~= "table" then fail("table expected, got " .. type(opts)) end
  for k, v in pairs(opts) do
    local kind = spec[k]
    if kind == nil then fail("unknown option '" .. tostring(k) .. "'") end
    if type(kind) == "table" then
      if not kind[v] then fail(("%s must be %s"):format(k, allowed(kind))) end
    else
      local want = kinds[kind]
      if want[1] == kind and not want[2](v) then
        fail(("%s: %s expected, got %s"):format(k, kind, type(v)))
      elseif not want[2](v) then
        fail(("%s must be %s"):format(k, want[1]))
      end
    end
  end
  return opts
end

return M
