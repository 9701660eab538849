--- JSON text from memprobe's plain tables, through a JSON library that
-- Debian packages (lua-cjson, else dkjson). No home-made encoder.
-- @module memprobe.json

local M = {}

local ok, cjson = pcall(require, "cjson")
local encoder
if ok then
  local c = cjson.new()
  c.encode_sparse_array(true)
  c.encode_invalid_numbers(false)
  encoder = c.encode
else
  local okd, dkjson = pcall(require, "dkjson")
  if okd then encoder = function(v) return dkjson.encode(v) end end
end

--- Encodes a value as JSON text.
-- @param v a table of strings, numbers, booleans and tables
-- @treturn ?string the text, or nil and a message when no JSON library is
-- installed (install lua-cjson or lua-dkjson)
function M.encode(v)
  if not encoder then
    return nil, "no JSON library: install lua-cjson or lua-dkjson"
  end
  local okc, s = pcall(encoder, v)
  if not okc then return nil, "cannot encode as JSON: " .. tostring(s) end
  return s
end

return M
