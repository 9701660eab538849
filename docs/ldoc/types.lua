--- The methods of the objects memprobe returns, whose code is in C
-- (csrc/tracker.c, csrc/heap.c). Read by LDoc only (`make docs`).
-- @submodule memprobe

--- The allocator hook of one Lua state, from `track()` or `tracker()`.
-- @type Tracker

--- The counters, copied at one instant.
-- @function Tracker:stats
-- @treturn table `live peak allocs frees reallocs failed` (bytes and
-- counts), `gc` (the collector's count read at the same instant: equal
-- to `live`), `histogram` (`{[2^k] = allocations of (2^(k-1), 2^k] bytes}`),
-- `by_type` (`{table = {allocs, bytes}, string = ..., other = ...}` on 5.2+,
-- nil on 5.1 and LuaJIT), `limit` when set, `watermark_error`

--- Starts a new peak: it becomes max(live, floor).
-- @function Tracker:reset_peak
-- @tparam[opt] integer floor bytes (default 0)
-- @treturn integer the peak it replaced (nested measurements restore it)

--- Caps live bytes: an allocation that would take live past `bytes`
-- fails ("not enough memory"); frees and shrinks always succeed.
-- @function Tracker:limit
-- @tparam ?integer bytes the limit, or nil to remove it
-- @treturn ?integer the previous limit, nil when there was none

--- Calls `fn(live)` once, at the first safe point after live went past
-- `bytes` (the end of a collection cycle, or the next tracker call);
-- never from inside the allocator. `watermark(nil)` clears it.
-- @function Tracker:watermark
-- @tparam ?integer bytes the mark, or nil to clear
-- @tparam[opt] function fn called with the live bytes
-- @return nothing

--- Puts the previous allocator back (also `<close>` on 5.4). Idempotent.
-- @function Tracker:untrack
-- @treturn ?boolean true, or nil and a message when the host installed
-- the hook or another hook was chained over this one

--- A heap snapshot, from `snapshot()`; taken in slices when it has a
-- budget (`max_ms`, `max_units`).
-- @type Snapshot

--- Walks on for at most `ms` milliseconds or `units` units of work.
-- @function Snapshot:step
-- @tparam[opt] number ms the time budget of this slice (default: the snapshot's)
-- @tparam[opt] integer units the work budget of this slice
-- @treturn boolean true once the walk is complete

--- What this snapshot holds that `older` did not.
-- @function Snapshot:diff
-- @tparam Snapshot older an earlier snapshot
-- @tparam[opt] table opts `top` (rows per list, default 20)
-- @treturn table `added` and `freed` `{path, count, bytes}` grouped by path
-- pattern, `grown` `{path, before, after, entries}`; `format.diff(d)` prints it

--- Writes the snapshot to a file other tools open: `"heapsnapshot"`,
-- V8's `.heapsnapshot` JSON (Chrome DevTools, memlab), streamed through a
-- fixed buffer; `"html"`, a self-contained report (treemap of modules,
-- top retainers, and with `older` what grew). docs/heap.md, "Export".
-- @function Snapshot:save
-- @tparam string path the file to write (created or truncated)
-- @tparam string fmt `"heapsnapshot"` or `"html"`
-- @tparam[opt] table opts `max_ms` (heapsnapshot: a job that writes in
-- slices of that budget: `job:step([ms])`, `job:progress()`); html:
-- `older` (a snapshot to diff against), `title`, `top`
-- @treturn ?boolean true, or nil, message, errno when the file cannot be
-- written (a full disk leaves it partial)

--- The walk's own figures.
-- @function Snapshot:stats
-- @treturn table `objects done truncated steps units max_units restarts
-- bookkeeping phase queued`, and for a snapshot with retained sizes
-- `edges edge_bytes edges_truncated`

--- The objects that retain the most: each one's own bytes plus those of
-- every object it dominates (reachable from the roots only through it),
-- which a full collection frees once it is unreachable. The snapshot is
-- finished and was taken with retained sizes (the default).
-- @function Snapshot:retained
-- @tparam[opt] integer n rows, 1..1024 (default 20)
-- @treturn table rows `{ path, type, self, retained }`, largest retained
-- first

--- Who keeps an object alive: the chain of its dominators, from the object
-- up to a root; cutting any one of them frees it.
-- @function Snapshot:retainers
-- @param x the object (a table, function, userdata or thread), or a
-- path to it as the snapshot shows paths (`package.loaded.mod.cache`)
-- @tparam[opt] integer n rows at most (default 64)
-- @treturn ?table rows `{ path, type, self, retained }`, the object first;
-- nil when the snapshot does not have it

--- The census of the snapshot, as `heap()` gives it raw.
-- @function Snapshot:census
-- @tparam[opt] integer top the largest containers to keep (default 10)
-- @treturn table `{ by_type, userdata, functions, largest, total, objects, shared_code }`

--- Frees the snapshot's bookkeeping (C memory, off the Lua heap) at once
-- rather than at collection. Idempotent.
-- @function Snapshot:close
-- @return nothing

--- Frees the bookkeeping in slices of at most `ms` milliseconds (a big
-- snapshot's index), for a host that cannot stop for `close()`.
-- @function Snapshot:release
-- @tparam[opt] number ms the time budget of this slice
-- @treturn boolean true once the snapshot is closed
