--- One reconciliation of where the memory went: kernel, cgroup, process,
-- C heap, Lua heap and modules, each level stating what the level below
-- it does not explain.
-- @module memprobe.report

local M = {}

-- Calls memprobe[name](...) when the function exists; a level that cannot
-- be read keeps its error message instead of failing the whole report.
local function try(mp, name, ...)
  local fn = mp[name]
  if fn == nil then return nil, name .. "() not available" end
  local ok, r, err = pcall(fn, ...)
  if not ok then return nil, tostring(r) end
  return r, err
end

local function sum(t, keys)
  local s, any = 0, false
  for _, k in ipairs(keys) do
    if t[k] then s, any = s + t[k], true end
  end
  return any and s or nil
end

local function minus(a, b)
  if a == nil or b == nil then return nil end
  return a - b
end

--- The kernel level: used memory and the kernel's own consumers.
local function kernel(mp)
  local f, err = try(mp, "free")
  if not f then return { error = err } end
  local m = try(mp, "meminfo") or {}
  local parts = {
    anon = m.AnonPages,
    shmem = m.Shmem,
    slab_unreclaimable = m.SUnreclaim,
    kernel_stack = m.KernelStack,
    page_tables = m.PageTables,
    vmalloc = m.VmallocUsed,
    percpu = m.Percpu,
    hugetlb = m.Hugetlb,
  }
  -- Memory the kernel could reclaim but does not count as available: it
  -- keeps part of the page cache and reclaimable slab back to stay above
  -- the zones' low watermarks (si_mem_available()).
  local reclaimable = sum(m, { "MemFree", "Active(file)", "Inactive(file)",
    "KReclaimable" })
  if reclaimable and m.KReclaimable == nil then
    reclaimable = reclaimable + (m.SReclaimable or 0)
  end
  local held = minus(reclaimable, f.available)
  parts.held_back = held and held > 0 and held or 0
  local explained = sum(parts, { "anon", "shmem", "slab_unreclaimable",
    "kernel_stack", "page_tables", "vmalloc", "percpu", "hugetlb",
    "held_back" })
  return {
    total = f.total, used = f.used, available = f.available,
    buff_cache = f.buff_cache, slab_reclaimable = m.SReclaimable,
    parts = parts,
    -- used = total - available: what neither the named consumers nor
    -- the reclaimable caches account for (driver pages, balloon, ...).
    unexplained = minus(f.used, explained),
  }
end

local function cgroup(mp)
  local cg, err = try(mp, "cgroup")
  if not cg then return { error = err } end
  local limit = cg.effective_limit or cg.limit
  return {
    version = cg.version, path = cg.path, usage = cg.usage,
    working_set = cg.working_set, limit = limit,
    headroom = minus(limit, cg.usage),
  }
end

local function process(mp, kern, pid)
  local rss, err
  if pid then
    local p
    p, err = try(mp, "process", pid)
    rss = p and p.VmRSS
    if p and not rss then err = "no VmRSS for pid " .. pid end
  else
    rss, err = try(mp, "rss")
  end
  if not rss then return { error = err } end
  local sm = try(mp, "smaps", pid) or {}
  return {
    pid = pid, rss = rss, pss = sm.pss, uss = sm.uss, swap = sm.swap,
    -- the share of the machine's used memory this process explains
    share_of_used = kern.used and kern.used > 0 and rss / kern.used or nil,
  }
end

local function cheap(mp, proc)
  local mi, err = try(mp, "mallinfo")
  if not mi then return { error = err } end
  -- in use = small blocks handed out + large mmap'ed blocks
  local in_use = sum(mi, { "uordblks", "hblkhd" })
  return {
    in_use = in_use, free_in_heap = mi.fordblks,
    from_os = sum(mi, { "arena", "hblkhd" }),
    -- RSS that is not C heap: code, libraries, stacks, other mmaps
    unexplained = minus(proc.rss, in_use),
  }
end

-- The Lua heap: the collector's count, and when a tracker is installed
-- the allocator's own bytes (on 5.5 they include external strings, which
-- the collector does not count: 'uncounted').
local function luaheap(mp, c)
  local tracker = mp.tracker and mp.tracker()
  local gc, tracked, uncounted = math.floor(collectgarbage("count") * 1024), nil, nil
  if tracker then  -- both read at the same instant
    local s = tracker:stats()
    gc, tracked, uncounted = s.gc, s.live, s.uncounted
  end
  return {
    gc = gc, tracked = tracked, uncounted = uncounted,
    -- C heap that the Lua state did not allocate
    unexplained = minus(c.in_use, tracked or gc),
  }
end

local function modules(mp, lua, opts)
  if not opts.modules then return { skipped = true } end
  local rows, err = try(mp, "modules")
  if not rows then return { error = err } end
  local total = 0
  for _, r in ipairs(rows) do total = total + (r.exclusive or 0) end
  table.sort(rows, function(a, b) return (a.exclusive or 0) > (b.exclusive or 0) end)
  return { rows = rows, total = total, unexplained = minus(lua.gc, total) }
end

--- Builds the reconciliation.
-- @tparam table mp the memprobe module
-- @tparam[opt] table opts `modules = true` adds the per-module level (walks
-- the heap: costly on big states); `pid` reports that process instead of
-- this one (its cgroup, C heap and Lua levels are then skipped, each
-- with the reason in `skipped`: memprobe reads its own cgroup, and only
-- the process itself can read its heaps)
-- @treturn table `{ kernel, cgroup, process, c_heap, lua, modules }`; a level
-- that could not be read holds `error`
function M.build(mp, opts)
  opts = opts or {}
  local r = {}
  r.kernel = kernel(mp)
  if opts.pid then  -- the cgroup, C heap and Lua levels are this process's
    r.process = process(mp, r.kernel, opts.pid)
    local pid = tostring(opts.pid)
    r.cgroup = { skipped = "not read: memprobe reads its own cgroup, not process " ..
      pid .. "'s" }
    r.c_heap = { skipped = "not read: only process " .. pid .. " can read its C heap" }
    r.lua = { skipped = "not read: only process " .. pid .. " can read its Lua heap" }
    r.modules = { skipped = r.lua.skipped }
    return r
  end
  r.cgroup = cgroup(mp)
  r.process = process(mp, r.kernel)
  r.c_heap = cheap(mp, r.process)
  r.lua = luaheap(mp, r.c_heap)
  r.modules = modules(mp, r.lua, opts)
  return r
end

return M
