-- Fault injection: runs a function with the k-th allocation failing (and
-- every one after it), for k = 1, 2, ... until a run needs fewer than k
-- allocations. Each run must either succeed or raise "not enough memory",
-- and the state must work afterwards. The failing allocator is the test
-- module memprobe_testalloc (spec/c/testalloc.c), built next to
-- memprobe.core by `make testalloc`.
--
-- With a tracker, memprobe.track() is installed over the failing
-- allocator for the whole sweep, so that every refusal passes through the
-- hook; after each run the tracker must agree with the collector
-- (stats().live == stats().gc) and its `failed` count must have grown by
-- exactly the number of refusals. Every 32nd run is followed by a full
-- collection, so that frees pass through the hook too (one after every
-- run made the sweeps of big readers take a minute each).
local F = {}

local found, ta = pcall(require, "memprobe_testalloc")
F.available = found

local unpack = table.unpack or unpack

-- The tracker's verdict after a run that saw `refused` refusals: nil when
-- its counts are consistent, else what is wrong. `last` is the failed
-- count before the run.
local function tracker_check(tr, last, refused, k)
  if k % 32 == 1 then collectgarbage("collect") end
  local s = tr:stats()
  if s.live ~= s.gc then
    return ("tracker live %d ~= collector %d"):format(s.live, s.gc)
  elseif s.failed < last then
    return ("tracker failed went down from %d to %d"):format(last, s.failed)
  elseif s.failed - last ~= refused then
    return ("tracker counted %d failures, the allocator refused %d")
      :format(s.failed - last, refused)
  end
  return nil, s.failed
end

--- Sweeps k over fn(args); returns the number of allocations of a full run.
-- Raises with the value of k on an outcome other than success or
-- "not enough memory". With opts.tracker, checks the tracker's counts
-- after every run (see above); the tracker is removed afterwards.
function F.sweep(fn, args, max, opts)
  max = max or 5000
  args = args or {}
  local n = args.n or 0
  -- LuaJIT's trace compiler allocates in the same heap; keep it out.
  if jit then jit.off() end
  ta.install()
  local tr, last
  if opts and opts.tracker then
    tr = require("memprobe").track()
    last = tr:stats().failed
  end
  local result, unpack_ = nil, unpack
  for k = 1, max do
    -- Nothing may allocate between arm() and disarm() but the call.
    ta.arm(k)
    local ok, err = pcall(fn, unpack_(args, 1, n))
    local seen, refused = ta.disarm()
    if tr then
      local bad
      bad, last = tracker_check(tr, last, refused, k)
      if bad then
        result = ("k=%d: %s"):format(k, bad)
        break
      end
    end
    if not ok then
      if not tostring(err):find("not enough memory", 1, true) then
        result = ("k=%d: raised %s"):format(k, tostring(err))
        break
      end
    elseif refused == 0 then
      result = seen
      break
    end
  end
  if tr and not tr:untrack() then
    result = result or "the tracker could not be removed"
  end
  local removed = ta.remove()
  if jit then jit.on() end
  if not removed then
    error("another allocator hook was installed over the failing one; "
      .. "give the row fault = false", 2)
  end
  if type(result) ~= "number" then
    error(result or ("no run completed in %d allocations"):format(max), 2)
  end
  return result
end

return F
