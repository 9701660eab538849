-- Runs every bench/*_bench.lua and prints one table. Each bench file
-- returns a function(B) giving a list of rows:
--   { what, ours, ref_name, ref, unit, goal = ratio limit or nil,
--     lower = true when ours/ref must be <= goal (else ref/ours >= goal) }
-- B offers timers that all measure CPU time per call, so a run of memprobe
-- and a run of its reference are taken side by side in one go. Units:
-- "ns" (per call), "instr" (callgrind), "B", "B/obj", "ns/obj", "ms".
-- A row may carry a note (why it has no figure), printed after the table.
-- usage: lua5.4 bench/run.lua path/to/rawread
local memprobe = require "memprobe"

local B = { memprobe = memprobe, rawread = arg[1] or "build/bench/rawread",
            N = tonumber(os.getenv("BENCH_N")) or 20000 }

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("*a")
  p:close()
  return out
end
B.sh = sh

--- CPU ns per call of fn(...), best of 5 runs of B.N calls.
function B.time(fn, ...)
  return B.timen(B.N, fn, ...)
end

--- The same with n calls per run, for slow calls.
function B.timen(n, fn, ...)
  for _ = 1, math.min(100, n) do fn(...) end
  local best
  for _ = 1, 5 do
    local t0 = os.clock()
    for _ = 1, n do fn(...) end
    local t = (os.clock() - t0) / n * 1e9
    if not best or t < best then best = t end
  end
  return best
end

--- CPU ns per open/read/close of path in C; with pread = true, per
-- pread of a kept fd (the kernel's own cost of the file); with pread =
-- "all", preads until EOF (a file longer than a page). n defaults to B.N.
function B.raw(path, pread, n)
  local mode = pread == "all" and " preadall" or pread and " pread" or ""
  return tonumber(sh(("%s %s %d%s 2>/dev/null"):format(B.rawread, path, n or B.N, mode)))
end

--- CPU ns per call of a Python expression (after the given imports).
function B.python(imports, expr)
  local code = ([[
import time
%s
%s
best = None
for _ in range(5):
    t0 = time.process_time()
    for _ in range(%d):
        %s
    t = (time.process_time() - t0) / %d * 1e9
    best = t if best is None or t < best else best
print(best)]]):format(imports, expr, B.N, expr, B.N)
  -- The Debian interpreter: python3-psutil is installed for it.
  return tonumber(sh("/usr/bin/python3 -c '" .. code .. "' 2>/dev/null"))
end

--- Lua heap bytes allocated per call once warm, GC stopped.
function B.bytes(fn, ...)
  for _ = 1, 10 do fn(...) end
  if jit then jit.off() end
  collectgarbage("collect")
  collectgarbage("stop")
  local before = collectgarbage("count")
  for _ = 1, 1000 do fn(...) end
  local after = collectgarbage("count")
  collectgarbage("restart")
  if jit then jit.on() end
  return (after - before) * 1024 / 1000
end

--- Instructions of a whole run of cmd under callgrind (user space only);
-- env is an optional prefix of variable assignments for the run.
function B.callgrind(cmd, env)
  local out = sh(("%s valgrind --tool=callgrind --callgrind-out-file=/dev/null %s 2>&1")
    :format(env or "", cmd))
  return tonumber(out:match("Collected : (%d+)"))
end

--- Instructions per call: a run with n calls minus a run with none,
-- divided by n. cmd has a %d for n.
local function instr(cmd)
  local a, b = B.callgrind(cmd:format(0)), B.callgrind(cmd:format(1000))
  return a and b and (b - a) / 1000 or nil
end

B.has_valgrind = sh("command -v valgrind") ~= ""

--- Instructions per call of a Lua snippet (memprobe is `m`, `t` a table).
function B.instr_lua(snippet)
  local lua = jit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(("package.path = %q; package.cpath = %q\n"):format(package.path, package.cpath),
    "local m = require 'memprobe'\nlocal t = {}\n", snippet, "\n",
    "for _ = 1, tonumber(arg[1]) do ", snippet, " end\n")
  f:close()
  local v = instr(lua .. " " .. path .. " %d")
  os.remove(path)
  return v
end

--- Instructions per open/read/close of path in C (5 reps of n reads).
function B.instr_raw(path)
  local v = instr(("%s %s %%d"):format(B.rawread, path))
  return v and v / 5
end

--- Instructions per evaluation of a Python expression.
function B.instr_python(imports, expr)
  local code = "%s\n%s\nimport sys\nfor _ in range(int(sys.argv[1])): %s"
  return instr(("/usr/bin/python3 -c '" .. code .. "' %%d"):format(imports, expr, expr))
end

local rows = {}
local files = sh("ls bench/*_bench.lua")
for file in files:gmatch("[^\n]+") do
  io.stderr:write("bench: ", file, "\n")
  for _, r in ipairs(dofile(file)(B)) do rows[#rows + 1] = r end
end

local function num(v, unit)
  if v == nil then return "n/a" end
  if unit == "B" then return ("%.0f B"):format(v) end
  if unit == "B/obj" then return ("%.1f B"):format(v) end
  if unit == "instr" then return ("%.0f"):format(v) end
  if unit == "ns/obj" then return ("%.0f ns"):format(v) end
  if unit == "ms" then return ("%.2f ms"):format(v) end
  return ("%.2f us"):format(v / 1000)
end

print(("memprobe bench on %s, %d calls per timing, best of 5 (CPU time)")
  :format(jit and jit.version or _VERSION, B.N))
local fmt = "%-32s %10s  %-32s %10s  %7s  %-9s %s"
print(fmt:format("what", "memprobe", "reference", "ref", "ratio", "goal", ""))
local failed = 0
for _, r in ipairs(rows) do
  local what, ours, refname, ref, unit = r[1], r[2], r[3], r[4], r[5]
  local ratio, goal, ok = "", "", ""
  if ours and ref and ref ~= 0 then
    if r.lower then
      ratio = ("%.2fx"):format(ours / ref)
      if r.goal then goal = ("<= %.2fx"):format(r.goal); ok = ours / ref <= r.goal end
    else
      ratio = ("%.1fx"):format(ref / ours)
      if r.goal then goal = (">= %.1fx"):format(r.goal); ok = ref / ours >= r.goal end
    end
  elseif r.goal and unit == "B" and ours then
    goal = ("= %d B"):format(r.goal)
    ok = ours <= r.goal
  end
  if ok == false then failed = failed + 1 end
  print(fmt:format(what, num(ours, unit), refname or "", ref and num(ref, unit) or "",
    ratio, goal, ok == true and "met" or ok == false and "MISSED" or ""))
end
for _, r in ipairs(rows) do
  if r.note then print(("note: %s: %s"):format(r[1], r.note)) end
end
print(failed == 0 and "all goals met" or ("%d goal(s) missed"):format(failed))
