local memprobe = require "memprobe"
local H = require "spec.helper"

local KiB = 1024
-- busted runs a spec's chunk with an environment whose __index is Lua
-- code that allocates now and then (on LuaJIT, 1 run in 40 put 200-900
-- untagged bytes between two readings): the measured windows read no
-- globals.
local collectgarbage = collectgarbage

local function count()
  return collectgarbage("count") * KiB
end

local function build(n)
  local r = {}
  for i = 1, n do r[i] = { i } end
  return r
end

describe("memprobe.scope()", function()
  before_each(function() if jit then jit.off() end end)
  after_each(function()
    collectgarbage("restart")
    if jit then jit.on() end
  end)

  it("returns fn's results and charges its blocks to the tag, exactly", function()
    local a, b, c = memprobe.scope("spec.results", function(x, y) return y, x, nil end, 1, 2)
    assert.are.same({ 2, 1 }, { a, b })
    assert.is_nil(c)
    collectgarbage()
    collectgarbage("stop")
    memprobe.scope("spec.a", build, 1)       -- warm: call frames exist
    local base = memprobe.ledger()["spec.a"]
    local c0 = count()
    local r = memprobe.scope("spec.a", build, 1000)
    local c1 = count()
    local now = memprobe.ledger()["spec.a"]
    collectgarbage("restart")
    assert.are.equal(c1 - c0, now - base)
    assert.are.equal(1000, #r)
  end)

  it("keeps a block charged to its tag until it is freed, wherever", function()
    local r = memprobe.scope("spec.b", build, 2000)
    for _ = 1, 12 do collectgarbage() end
    local l0 = memprobe.ledger()["spec.b"]
    for _ = 1, 12 do collectgarbage() end
    local c0 = count()
    for i = 1001, 2000 do r[i] = nil end       -- freed outside the scope
    for _ = 1, 12 do collectgarbage() end
    local c1 = count()
    local l1 = memprobe.ledger()["spec.b"]
    assert.are.equal(c0 - c1, l0 - l1)
    assert.is_true(l0 - l1 > 1000 * 16)
    r = nil
    for _ = 1, 4 do collectgarbage() end
    assert.is_true(memprobe.ledger()["spec.b"] < 1000)
    assert.is_nil(r)
  end)

  it("stays exact over many blocks freed in any order", function()
    local r = memprobe.scope("spec.many", build, 50000)
    for _ = 1, 12 do collectgarbage() end
    local l0 = memprobe.ledger()["spec.many"]
    for _ = 1, 12 do collectgarbage() end
    local c0 = count()
    local x = 7
    for i = 1, 50000 do
      x = (x * 75 + 74) % 65537
      if x % 4 ~= 0 then r[i] = false end
    end
    for _ = 1, 12 do collectgarbage() end
    local c1 = count()
    local l1 = memprobe.ledger()["spec.many"]
    assert.are.equal(c0 - c1, l0 - l1)
    assert.is_true(l0 - l1 > 30000 * 16)
    r = nil
    for _ = 1, 4 do collectgarbage() end
    assert.is_true(memprobe.ledger()["spec.many"] < 1000)
    assert.is_nil(r)
  end)

  it("charges nested scopes to the innermost tag", function()
    collectgarbage("stop")
    local inner
    local outer = memprobe.scope("spec.outer", function()
      inner = memprobe.scope("spec.inner", function() return string.rep("i", 100000) end)
      return string.rep("o", 10000)
    end)
    local l = memprobe.ledger()
    collectgarbage("restart")
    -- string.rep's intermediate buffers are garbage not yet collected
    assert.is_true(l["spec.inner"] >= 100000)
    assert.is_true(l["spec.outer"] >= 10000 and l["spec.outer"] < 50000)
    assert.are.equal(110000, #inner + #outer)
  end)

  it("propagates errors unchanged and restores the outer tag", function()
    local e = {}
    local ok, err = pcall(memprobe.scope, "spec.err", function() error(e) end)
    assert.is_false(ok)
    assert.are.equal(e, err)
    collectgarbage("stop")
    local before = memprobe.ledger()["spec.err"]
    local keep = string.rep("x", 30000)
    local after = memprobe.ledger()["spec.err"]
    collectgarbage("restart")
    assert.are.equal(before, after)
    assert.are.equal(30000, #keep)
  end)

  it("raises on bad arguments", function()
    local cases = {
      { function() memprobe.scope(1, print) end, "bad argument #1 to 'scope'" },
      { function() memprobe.scope("t") end, "bad argument #2 to 'scope'" },
      { function() memprobe.scope("t", {}) end, "bad argument #2 to 'scope'" },
    }
    H.assert_raises(cases)
  end)

  it("does not create globals", function()
    local before = H.globals()
    memprobe.scope("spec.g", function() return {} end)
    memprobe.ledger()
    for k in pairs(_G) do assert.is_true(before[k], k) end
  end)
end)
