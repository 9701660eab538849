-- Tracker, ledger and profiler overhead in callgrind instructions:
-- bench/tracker.lua (an allocation-heavy loop) without the hook, with
-- track(), with every block under a scope tag, and with a profile at the
-- default rate or stopped (against track() alone), on Lua 5.4 and LuaJIT. Per-iteration
-- counts are a run of n iterations minus a run of none, so start-up and
-- loading cancel out. bench/tracker.sh (make bench-tracker) is the same
-- with longer loops.
return function(B)
  if not B.has_valgrind then
    return { { "track() overhead", nil, "no hook", nil, "instr",
               note = "skipped: valgrind is not installed" } }
  end
  local n = tonumber(os.getenv("BENCH_TRACKER_N")) or 20000
  local lpath = "lua/?.lua;lua/?/init.lua;;"
  local rows = {}
  for _, rt in ipairs({ { "5.4", "lua5.4" }, { "jit", "luajit" } }) do
    local function per_iter(mode)
      -- malloc without its per-size caches: with them, its work per
      -- iteration followed where the blocks fell (docs/performance.md)
      local env = ("LUA_PATH=%q LUA_CPATH=%q GLIBC_TUNABLES=%s"):format(lpath,
        "build/" .. rt[1] .. "/?.so;;", "glibc.malloc.mxfast=0:glibc.malloc.tcache_count=0")
      local cmd = ("%s bench/tracker.lua %s %%d"):format(rt[2], mode)
      local a, b = B.callgrind(cmd:format(0), env), B.callgrind(cmd:format(n), env)
      return a and b and (b - a) / n or nil
    end
    local none = per_iter("none")
    local ref = ("%s, no hook (instr/iteration)"):format(rt[2])
    rows[#rows + 1] = { ("track() on %s"):format(rt[2]), per_iter("track"), ref, none,
      "instr", lower = true }
    rows[#rows + 1] = { ("track()+scope() ledger on %s"):format(rt[2]), per_iter("ledger"),
      ref, none, "instr", lower = true }
    -- the profiler against tracking alone: at the default rate, and stopped
    local track = rows[#rows - 1][2]
    local tref = ("%s, track() alone (instr/iteration)"):format(rt[2])
    rows[#rows + 1] = { ("profile() at the default rate on %s"):format(rt[2]),
      per_iter("profile"), tref, track, "instr", lower = true, goal = 1.03 }
    rows[#rows + 1] = { ("profile() stopped on %s"):format(rt[2]), per_iter("stopped"),
      tref, track, "instr", lower = true, goal = 1.01 }  -- 0, within callgrind's noise
  end
  return rows
end
