-- Lua heap bytes allocated per call once warm: the refilling forms must
-- allocate nothing. Functions this build lacks show n/a.
return function(B)
  local m = B.memprobe
  local cases = {
    { "meminfo(t)", "meminfo", function(t) return { t } end },
    { "free(t)", "free", function(t) return { t } end },
    { "vmstat(t)", "vmstat", function(t) return { t } end },
    { "rss()", "rss", function() return {} end },
    { "process(nil, t)", "process", function(t) return { nil, t } end },
  }
  local rows = {}
  for _, c in ipairs(cases) do
    local fn, bytes = m[c[2]], nil
    if fn then
      local args = c[3]({})
      bytes = B.bytes(function() return fn(args[1], args[2]) end)
    end
    rows[#rows + 1] = { c[1] .. " heap bytes/call", bytes, "", nil, "B", goal = 0 }
  end
  return rows
end
