-- Heap walk throughput: bench/heap.lua in a child interpreter (its heap of
-- a million objects and the calibration's tracker stay out of the other
-- benchmarks), against a full collection of the same heap, the
-- collector's own walk over it.
return function(B)
  local objects = tonumber(os.getenv("BENCH_HEAP_OBJECTS")) or 1000000
  local lua = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
  local out = B.sh(("LUA_PATH=%q LUA_CPATH=%q %s bench/heap.lua %d rows")
    :format(package.path, package.cpath, lua, objects))
  local v = {}
  for k, x in out:gmatch("([%w_]+) (%S+)") do v[k] = tonumber(x) end
  local ref = "collectgarbage() same heap"
  local function rate(ns)
    return ns and ("%.2f M obj/s"):format(1e3 / ns) or "n/a"
  end
  return {
    { ("heap() census, %s"):format(rate(v.census_ns)), v.census_ns, ref, v.gc_ns, "ns/obj",
      lower = true },
    { ("snapshot(), %s"):format(rate(v.snapshot_ns)), v.snapshot_ns, ref, v.gc_ns, "ns/obj",
      lower = true },
    { "snapshot() bookkeeping/object", v.bookkeeping, "", nil, "B/obj" },
    { "snapshot{max_ms=2} longest step", v.slice_ms, "the 2 ms budget", 2e0, "ms",
      lower = true },
    { "C buffers after snap:close()", v.buffers, "", nil, "B", goal = 0 },
  }
end
