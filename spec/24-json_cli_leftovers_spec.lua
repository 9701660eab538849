local H = require "spec.helper"

describe("export.collect() as JSON", function()
  it("encodes an empty map as {}, not []: errors, a module row's by_type", function()
    local export = require "memprobe.export"
    local json = require "memprobe.json"
    local ok = pcall(json.encode, {})
    if not ok or not json.encode({}) then pending("no JSON library") return end
    package.loaded.spec_number = 42  -- a row that holds no object
    local t = export.collect{ slab = false, vmalloc = false, modules = true }
    package.loaded.spec_number = nil
    local s = assert(json.encode(t))
    -- before: "errors":[] and "by_type":[] for rows without objects
    assert.is_nil(s:find('"errors":[]', 1, true), s:sub(1, 200))
    assert.is_nil(s:find('"by_type":[]', 1, true))
    local back = H.json_decode(s)
    assert.are.equal("table", type(back.errors))
  end)
end)

describe("bin/memprobe", function()
  it("quotes an unknown command without its control bytes", function()
    local out = H.lua("bin/memprobe 'x\27]0;pwned\7y'")
    -- before: the escape went to the operator's terminal as typed
    assert.matches("^memprobe: unknown command 'x%?%]0;pwned%?y'\n", out)
    assert.is_nil(out:find("\27", 1, true))
    assert.matches("exit 2\n$", out)
  end)
end)
