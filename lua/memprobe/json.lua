--- JSON text from memprobe's plain tables, through a JSON library that
-- Debian packages (lua-cjson, else dkjson). No home-made encoder.
--
-- memprobe's empty tables are empty lists: they encode as `[]`, so that a
-- field's JSON type never depends on the data. A table that is a map
-- (watch's `errors`) carries dkjson's marker, a metatable with
-- `__jsontype = "object"` (`json.map(t)` sets it), and stays `{}`.
-- @module memprobe.json

local M = {}

local MAP = { __jsontype = "object" }  -- dkjson's marker of a map
local EMPTY = "\0[]"  -- stands for an empty list until the text is made

local ok, cjson = pcall(require, "cjson")
local encoder
local with_cjson = ok
if ok then
  local c = cjson.new()
  c.encode_sparse_array(true)
  c.encode_invalid_numbers(false)
  encoder = function(v)
    return (c.encode(v):gsub('"\\u0000%[%]"', "[]"))
  end
else
  local okd, dkjson = pcall(require, "dkjson")
  if okd then encoder = function(v) return dkjson.encode(v) end end
end

--- Marks a table as a map: empty, it encodes as `{}`.
-- @tparam table t
-- @treturn table t
function M.map(t)
  return setmetatable(t, MAP)
end

-- A copy of v in which the empty lists are EMPTY (cjson) or carry
-- dkjson's array type; the caller's tables are left alone.
local function prepare(v, depth)
  if type(v) ~= "table" then return v end
  if depth > 100 then error("nested too deeply", 0) end
  local mt = getmetatable(v)
  if next(v) == nil and not (mt and mt.__jsontype == "object") then
    return with_cjson and EMPTY or setmetatable({}, { __jsontype = "array" })
  end
  local t = setmetatable({}, mt and mt.__jsontype and MAP or nil)
  for k, x in pairs(v) do t[k] = prepare(x, depth + 1) end
  return t
end

--- Encodes a value as JSON text.
-- @param v a table of strings, numbers, booleans and tables
-- @treturn ?string the text, or nil and a message when no JSON library is
-- installed (install lua-cjson or lua-dkjson)
function M.encode(v)
  if not encoder then
    return nil, "no JSON library: install lua-cjson or lua-dkjson"
  end
  local okc, s = pcall(function() return encoder(prepare(v, 0)) end)
  if not okc then return nil, "cannot encode as JSON: " .. tostring(s) end
  return s
end

return M
