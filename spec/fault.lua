-- Fault injection: runs a function with the k-th allocation failing (and
-- every one after it), for k = 1, 2, ... until a run needs fewer than k
-- allocations. Each run must either succeed or raise "not enough memory",
-- and the state must work afterwards. The failing allocator is the test
-- module memprobe_testalloc (spec/c/testalloc.c), built next to
-- memprobe.core by `make testalloc`.
local F = {}

local found, ta = pcall(require, "memprobe_testalloc")
F.available = found

local unpack = table.unpack or unpack

--- Sweeps k over fn(args); returns the number of allocations of a full run.
-- Raises with the value of k on an outcome other than success or
-- "not enough memory".
function F.sweep(fn, args, max)
  max = max or 5000
  args = args or {}
  local n = args.n or 0
  -- LuaJIT's trace compiler allocates in the same heap; keep it out.
  if jit then jit.off() end
  ta.install()
  local result, unpack_ = nil, unpack
  for k = 1, max do
    -- Nothing may allocate between arm() and disarm() but the call.
    ta.arm(k)
    local ok, err = pcall(fn, unpack_(args, 1, n))
    local seen, refused = ta.disarm()
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
