-- slabinfo() against a plain open/read/close of /proc/slabinfo in C and
-- against preads of a kept fd until EOF (the kernel's cost of the file,
-- which dominates). The file is 0400: without root the rows say so.
return function(B)
  local m = B.memprobe
  local n = math.max(1, math.floor(B.N / 40))
  local what = ("slabinfo() (%d calls)"):format(n)
  local f = io.open("/proc/slabinfo")
  local ok = f ~= nil and m.slabinfo() ~= nil
  if f then f:close() end
  if not ok then
    return { { what, nil, "C open/read/close slabinfo", nil, "ns",
               note = "skipped: /proc/slabinfo needs root (or CAP_DAC_READ_SEARCH)" } }
  end
  local ours = B.timen(n, m.slabinfo)
  local raw = B.raw("/proc/slabinfo", false, n)
  local floor = B.raw("/proc/slabinfo", "all", n)
  local lines = 0
  for _ in io.lines("/proc/slabinfo") do lines = lines + 1 end
  return {
    { what, ours, "C open/read/close slabinfo", raw, "ns", lower = true },
    { what, ours, "C pread to EOF, kept fd (floor)", floor, "ns", lower = true },
    { ("  per cache (%d lines)"):format(lines - 2), ours and (ours - floor) / (lines - 2),
      "(parse and table, over the floor)", nil, "ns" },
  }
end
