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
--          Lua's own library does (the documented acceptance);
--          "raises": it raises "bad argument #arity+1"
--   proc   true when the function reads /proc or /sys: on a malformed
--          tree it must return a result or nil, msg, errno, never raise
--   fault  false to keep it out of the fault-injection sweep
--   volatile  true when two good calls differ (live figures): results are
--          compared by type only
--   aggregate  true when read failures land inside the result (report)
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

-- Readings for diff(): a meminfo() and a slabinfo() result, minimal.
local mi = { MemTotal = 1024, MemFree = 512 }
local si = { caches = {}, totals = {} }

-- Options tables every opts-taking reader must refuse.
local function bad_opts(extra)
  local r = not_a_table()
  for _, o in ipairs({ { bogus = 1 }, { top = -1 }, { top = "x" } }) do
    r[#r + 1] = { 1, A(o) }
  end
  for _, o in ipairs(extra or {}) do r[#r + 1] = { 1, A(o) } end
  return r
end

-- Readers without parameters refuse any argument.
local function noargs()
  return { ok = { A() }, bad = { { 1, A(5) }, { 1, A({}) }, { 2, A(nil, 5) } },
           arity = 0, extra = "raises", proc = true }
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
  zoneinfo = noargs(),
  buddyinfo = noargs(),
  numa = noargs(),
  overcommit = noargs(),
  shm = noargs(),
  swaps = noargs(),
  slabinfo = { ok = { A(), A({}), A({ sort = "c", top = 3 }) },
               bad = bad_opts({ { sort = "zz" } }), arity = 1, extra = "ignored",
               proc = true },
  slab_detail = { ok = { A("dentry") },
                  bad = { { 1, A() }, { 1, A(true) }, { 1, A({}) }, { 1, A("a/b") },
                          { 1, A("..") } },
                  arity = 1, extra = "ignored", proc = true },
  vmallocinfo = { ok = { A(), A({}), A({ sort = "pages", top = 3 }) },
                  bad = bad_opts({ { sort = "zz" } }), arity = 1, extra = "ignored",
                  proc = true },
  allocinfo = { ok = { A(), A({ top = 3 }) }, bad = bad_opts(), arity = 1,
                extra = "ignored", proc = true },
  -- Writes /proc/sys/vm/drop_caches: no good call is run from here.
  drop_caches = { ok = {},
                  bad = { { 1, A() }, { 1, A(0) }, { 1, A(4) }, { 1, A("x") },
                          { 1, A({}) } },
                  arity = 1, fault = false },
  diff = { ok = { A(mi, mi) },
           bad = { { 1, A(5, mi) }, { 1, A(nil, mi) }, { 1, A({}, mi) }, { 2, A(mi, 5) },
                   { 2, A(mi, si) } },
           arity = 2, extra = "ignored" },
  -- Unknown options are ignored (documented acceptance).
  report = { ok = { A(), A({}) }, bad = not_a_table(), arity = 1, extra = "ignored",
             proc = true, volatile = true, aggregate = true },
  watch = { ok = { A(), A({}) }, bad = bad_opts(), arity = 1, extra = "ignored",
            volatile = true },
  cgroup = noargs(),
  rss = noargs(),
  process = { ok = { A(), A(nil, {}) },
              bad = { { 1, A("x") }, { 1, A(true) }, { 1, A(-1) }, { 1, A(0) },
                      { 1, A(1.5) }, { 2, A(nil, 5) }, { 2, A(nil, "x") } },
              arity = 2, extra = "ignored", proc = true },
  smaps = { ok = { A() },
            bad = { { 1, A("x") }, { 1, A(true) }, { 1, A({}) }, { 1, A(-1) }, { 1, A(0) },
                    { 1, A(1.5) } },
            arity = 1, extra = "ignored", proc = true },
  mallinfo = { ok = { A(), A({}) }, bad = { { 1, A(5) }, { 1, A("x") }, { 1, A(true) } },
               arity = 1, extra = "ignored", volatile = true },
  -- The Lua-state functions below take no arguments and ignore any
  -- (documented acceptance). Those that install or change the allocator
  -- hook stay out of the fault sweep, which has its own allocator.
  account_requires = { ok = { A() }, bad = {}, arity = 0, extra = "ignored", fault = false },
  requires = { ok = { A() }, bad = {}, arity = 0, extra = "ignored", volatile = true },
  ledger = { ok = { A() }, bad = {}, arity = 0, extra = "ignored", volatile = true },
  tracker = { ok = { A() }, bad = {}, arity = 0, extra = "ignored", volatile = true,
              fault = false },
  -- profile() stops the profile before it: each good call starts one.
  profile = { ok = { A(), A({ rate = 65536 }) },
              bad = { { 1, A(5) }, { 1, A("x") }, { 1, A(true) }, { 1, A({ bogus = 1 }) },
                      { 1, A({ rate = 0 }) }, { 1, A({ rate = "x" }) } },
              arity = 1, extra = "ignored", volatile = true, fault = false,
              -- a profile left running would sample every later spec
              cleanup = function(p) if type(p) == "table" then p:stop() end end },
  track = { ok = { A(), A({}) },
            bad = { { 1, A(5) }, { 1, A("x") }, { 1, A(true) }, { 1, A({ bogus = 1 }) } },
            arity = 1, extra = "ignored", volatile = true, fault = false },
  -- The heap walk: whole-heap calls, too slow to sweep allocation by
  -- allocation (fault = false); opts must be a table.
  heap = { ok = { A(), A({}) }, bad = not_a_table(), arity = 1, extra = "ignored",
           volatile = true, fault = false },
  modules = { ok = { A() }, bad = not_a_table(), arity = 1, extra = "ignored",
              volatile = true, fault = false },
  snapshot = { ok = { A() }, bad = not_a_table(), arity = 1, extra = "ignored",
               volatile = true, fault = false },
  calibrate = { ok = { A() }, bad = not_a_table(), arity = 1, extra = "ignored",
                volatile = true, fault = false },
  path = { ok = { A({}) }, bad = { { 1, A() }, { 1, A(5) }, { 2, A({}, 5) } },
           arity = 2, extra = "ignored", volatile = true, fault = false },
  clock = { ok = { A() }, bad = {}, arity = 0, extra = "ignored", volatile = true },
  -- Internal of memprobe.export.textfile: writes files, no good call here
  -- (spec/22-export_spec.lua runs it).
  _replace_file = { ok = {},
                    bad = { { 1, A() }, { 1, A({}) }, { 1, A("") }, { 1, A("a\0b", "x") },
                            { 2, A("/nonexistent/x") }, { 2, A("/nonexistent/x", {}) } },
                    arity = 2, fault = false },
  -- Internal of the profile's flame graph (spec/95-review_spec.lua runs it).
  _write_file = { ok = {},
                  bad = { { 1, A() }, { 1, A({}) }, { 1, A("") }, { 1, A("a\0b", "x") },
                          { 2, A("/nonexistent/x") }, { 2, A("/nonexistent/x", {}) } },
                  arity = 2, fault = false },
  -- lists the proc root's directory names: it reads no file to fail on
  pids = { ok = { A() }, bad = { { 1, A(5) }, { 1, A({}) }, { 2, A(nil, 5) } },
           arity = 0, extra = "raises", volatile = true },
  -- scope(tag, fn, ...) passes the rest on to fn: no "extra" row. It
  -- installs the tracker when none is there: out of the fault sweep.
  scope = { ok = { A("spec", function() return 1 end) }, fault = false,
            bad = { { 1, A(nil, print) }, { 1, A(true, print) }, { 2, A("t") },
                    { 2, A("t", 5) } } },
}

-- Results as compared by the specs: by type only for a volatile row.
local function shape(row, list)
  if not row.volatile then return list end
  local t = {}
  for i, v in pairs(list) do t[i] = type(v) end
  return t
end

return { rows = rows, A = A, unpack = unpack, shape = shape }
