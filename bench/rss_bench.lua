-- rss() against a plain open/read/close of /proc/self/statm in C.
return function(B)
  local m = B.memprobe
  local raw = B.raw("/proc/self/statm")
  local ours = m.rss and B.time(m.rss) or nil
  local rows = {
    { "rss()", ours, "C open/read/close statm", raw, "ns", goal = 0.5, lower = true },
    { "C pread statm, kept fd", B.raw("/proc/self/statm", true), "C open/read/close statm",
      raw, "ns", lower = true },
  }
  if B.has_valgrind and m.rss then
    rows[#rows + 1] = { "rss() instructions", B.instr_lua("m.rss()"),
      "(user space)", nil, "instr" }
  end
  return rows
end
