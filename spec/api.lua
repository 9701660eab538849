-- Every public function of memprobe, with what a good call looks like and
-- which calls are misuse. spec/90-badinput_spec.lua fails for a function
-- that has no row here, so a new function must bring its row; the
-- fault-injection spec (91) runs the good calls with allocations failing.
--
-- Row fields:
--   ok     list of argument lists that are valid calls (A(...) packs them)
--   bad    list of { argn, A(args) }: the call must raise
--          "bad argument #argn to '<name>'"
--   arity  the number of parameters
--   extra  "ignored": an argument after the last parameter is ignored, as
--          Lua's own library does (the documented acceptance)
--   proc   true when the function reads /proc or /sys: on a malformed
--          tree it must return a result or nil, msg, errno, never raise
--   fault  false to keep it out of the fault-injection sweep
local unpack = table.unpack or unpack

local function A(...)
  return { n = select("#", ...), ... }
end

local notable = { 5, "x", true, print, 0.5 }
-- Argument 1 given as each non-table value.
local function not_a_table()
  local rows = {}
  for _, v in ipairs(notable) do
    rows[#rows + 1] = { 1, A(v) }
  end
  return rows
end

local rows = {
  config = {
    ok = { A(), A(nil), A({}) },
    bad = {
      { 1, A(5) }, { 1, A("x") }, { 1, A(true) },
      { 1, A({ foo = "/x" }) }, { 1, A({ [1] = "/x" }) },
      { 1, A({ proc = 5 }) }, { 1, A({ sys = true }) },
      { 1, A({ proc = "" }) }, { 1, A({ proc = ("x"):rep(600) }) },
      { 1, A({ proc = "a\0b" }) },
    },
    arity = 1, extra = "ignored",
  },
  pagesize = { ok = { A() }, bad = {}, arity = 0, extra = "ignored" },
  meminfo = { ok = { A(), A({}) }, bad = not_a_table(), arity = 1, extra = "ignored",
              proc = true },
  free = { ok = { A(), A({}) }, bad = not_a_table(), arity = 1, extra = "ignored",
           proc = true },
  vmstat = { ok = { A(), A({}) }, bad = not_a_table(), arity = 1, extra = "ignored",
             proc = true },
}

return { rows = rows, A = A, unpack = unpack }
