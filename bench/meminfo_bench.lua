-- meminfo() and free() against psutil.virtual_memory() and against a
-- plain open/read/close of /proc/meminfo in C.
return function(B)
  local m = B.memprobe
  local t, f = {}, {}
  -- meminfo(t) and the kernel floor in turns, the best of each: on a
  -- shared machine the load changes between two timings taken apart
  local ours, floor = math.huge, math.huge
  for _ = 1, 5 do
    ours = math.min(ours, B.time(m.meminfo, t))
    floor = math.min(floor, B.raw("/proc/meminfo", true) or math.huge)
  end
  if floor == math.huge then floor = nil end
  local free = B.time(m.free, f)
  local psutil = B.python("import psutil", "psutil.virtual_memory()")
  local raw = B.raw("/proc/meminfo")
  local nopsutil = not psutil and "no psutil for /usr/bin/python3 (python3-psutil)" or nil
  local rows = {
    { "meminfo(t)", ours, "psutil.virtual_memory()", psutil, "ns", goal = 6, note = nopsutil },
    { "free(t)", free, "psutil.virtual_memory()", psutil, "ns", goal = 6 },
    { "meminfo(t)", ours, "C open/read/close meminfo", raw, "ns", goal = 1, lower = true },
    { "meminfo(t)", ours, "C pread, kept fd (kernel floor)", floor, "ns", goal = 1.3,
      lower = true },
    { "psutil.virtual_memory()", psutil, "C pread, kept fd (kernel floor)", floor, "ns",
      lower = true },
  }
  if B.has_valgrind then
    -- User-space instructions only: the kernel's work is not counted.
    local py = B.instr_python("import psutil", "psutil.virtual_memory()")
    rows[#rows + 1] = { "meminfo(t) instructions", B.instr_lua("m.meminfo(t)"),
      "psutil.virtual_memory()", py, "instr" }
    rows[#rows + 1] = { "free(t) instructions", B.instr_lua("m.free(t)"),
      "psutil.virtual_memory()", py, "instr" }
    rows[#rows + 1] = { "C open/read/close instructions", B.instr_raw("/proc/meminfo"),
      "(user space; parsing not included)", nil, "instr" }
  end
  return rows
end
