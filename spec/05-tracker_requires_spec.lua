local memprobe = require "memprobe"
local H = require "spec.helper"

local KiB = 1024
local fixtures = "spec/fixtures/modules/?.lua;"

-- After full collections until the count stops moving (caches shrink a
-- step per cycle).
local function count()
  H.settle_gc()
  return collectgarbage("count") * KiB
end

-- The bytes of a string of length n that the collector does not count:
-- on 5.5 string.rep's results over 1 KiB are external strings, whose
-- n + 1 bytes come from the allocator.
local function external(n)
  return H.since("5.5") and n + 1 or 0
end

local function within(want, got, pct, what)
  assert.is_true(math.abs(got - want) <= want * pct / 100,
                 string.format("%s: %d vs %d", what, got, want))
end

local function row(name)
  for _, r in ipairs(memprobe.requires()) do
    if r.name == name then return r end
  end
end

local function forget(...)
  for _, name in ipairs{ ... } do package.loaded[name] = nil end
end

describe("memprobe.account_requires()", function()
  local path
  setup(function()
    path = package.path
    package.path = fixtures .. package.path
    if jit then jit.off() end
  end)
  teardown(function()
    memprobe.account_requires(false)
    package.path = path
    if jit then jit.on() end
  end)
  before_each(function()
    forget("mp_fix_leaf", "mp_fix_parent", "mp_fix_err", "mp_fix_errmsg")
  end)

  it("charges nested requires to the child and agrees with the collector", function()
    -- The truth: collector deltas around plain requires, once the VM's
    -- shared caches (string table, LuaJIT's buffers) are warm, plus the
    -- external strings the modules keep.
    require "mp_fix_parent"
    forget("mp_fix_leaf", "mp_fix_parent")
    local c0 = count()
    require "mp_fix_leaf"
    local leaf_plain = count() - c0 + external(200000)
    c0 = count()
    require "mp_fix_parent"
    local own_plain = count() - c0 + external(100000)
    forget("mp_fix_leaf", "mp_fix_parent")
    memprobe.account_requires()
    c0 = count()
    local parent = require "mp_fix_parent"
    local c1 = count() + external(100000) + external(200000)
    local p, l = row("mp_fix_parent"), row("mp_fix_leaf")
    assert.is_table(p)
    assert.is_table(l)
    assert.are.equal(100000, #parent.data)
    assert.are.equal(200000, #parent.leaf.data)
    assert.is_true(l.retained >= 200000 and p.retained >= 100000)
    within(leaf_plain, l.retained, 5, "leaf retained")
    assert.are.equal(l.retained, l.inclusive)
    within(own_plain, p.retained, 5, "parent retained")
    within(c1 - c0, p.inclusive, 5, "parent inclusive vs collectgarbage")
    within(p.retained + l.inclusive, p.inclusive, 0.01, "inclusive = own + child")
    assert.is_true(p.peak >= p.inclusive)
    assert.is_true(l.peak >= l.retained)
    assert.is_true(p.allocs > l.allocs and l.allocs > 0)
    assert.is_true(p.seconds >= 0 and l.seconds >= 0)
  end)

  it("tags modules so that ledger() shows their live bytes", function()
    memprobe.account_requires()
    local leaf = require "mp_fix_leaf"
    collectgarbage()
    collectgarbage()
    within(200000, memprobe.ledger().mp_fix_leaf, 5, "ledger")
    assert.are.equal(200000, #leaf.data)
  end)

  it("returns what the plain require returns for loaded modules", function()
    memprobe.account_requires()
    assert.are.equal(string, require "string")
    assert.are.equal(memprobe, require "memprobe")
  end)

  it("propagates loader errors unchanged", function()
    memprobe.account_requires()
    local n = #memprobe.requires()
    local ok, err = pcall(require, "mp_fix_err")
    assert.is_false(ok)
    assert.are.same({ code = 42 }, err)
    local ok2, msg = pcall(require, "mp_fix_errmsg")
    memprobe.account_requires(false)
    forget("mp_fix_errmsg")
    local ok3, plain = pcall(require, "mp_fix_errmsg")
    assert.is_false(ok2)
    assert.is_false(ok3)
    assert.are.equal(plain, msg)
    assert.matches("fixture failed to load 50000", msg)
    assert.are.equal(n, #memprobe.requires())
  end)

  it("puts the plain require back with account_requires(false)", function()
    local plain = require
    memprobe.account_requires()
    assert.are_not.equal(plain, require)
    memprobe.account_requires()
    memprobe.account_requires(false)
    assert.are.equal(plain, require)
  end)

  it("does not create globals", function()
    local before = H.globals()
    memprobe.account_requires()
    require "mp_fix_leaf"
    memprobe.requires()
    memprobe.account_requires(false)
    for k in pairs(_G) do assert.is_true(before[k], k) end
  end)
end)
