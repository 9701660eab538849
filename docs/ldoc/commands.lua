--- The console's commands, as `console:run(line)` takes them (a leading
-- `mem` is optional: `mem slab 10` is `slab 10`). Each returns the text
-- to print; `console:data(line)` returns the figures behind it. Read by
-- LDoc only (`make docs`); the code is lua/memprobe/console.lua.
-- @submodule memprobe.console

--- Runs a command by name with its words; errors come back as one short
-- line, never raised.
-- @function Console:call
-- @tparam string name the command, e.g. `"slab"`
-- @tparam {string,...} args its words, e.g. `{ "10", "c" }`
-- @treturn string the text
-- @treturn ?table the figures, when the command has any

--- @section commands

--- The commands with one line of help each.
-- @function commands.help
-- @treturn string the list

--- One line: system used of total (available), rss, Lua heap.
-- @function commands.mem
-- @treturn string the summary; data `{ free, rss, lua }`

--- Memory as `free -h` shows it (also: `free`).
-- @function commands.sys
-- @treturn string the table; data: `free()`

--- The largest slab caches, as `slabtop -o` (root).
-- @function commands.slab
-- @tparam[opt] integer N rows (default 10)
-- @tparam[opt] string sort a slabtop sort key `a b c l v n o p s u`
-- (default `c`), optionally after the word `sort`
-- @treturn string the table; data: `slabinfo()`

--- vmalloc memory summed (root).
-- @function commands.vmalloc
-- @tparam[opt] integer N rows (default 10)
-- @tparam[opt] string by `caller`, `module` or `kind` (default caller)
-- @treturn string the table; data: `vmallocinfo()`

--- A process: rss, pss, uss, C heap.
-- @function commands.proc
-- @tparam[opt] integer PID the process (default this one)
-- @treturn string the figures; data: `process()` and `smaps()`

--- The Lua heap: the collector's count and the tracker's figures.
-- @function commands.lua
-- @treturn string the figures; data `{ gc, tracker }`

--- Live bytes per `package.loaded` entry (a heap walk, in slices).
-- @function commands.modules
-- @tparam[opt] integer N rows (default 15)
-- @treturn string the table; data: `modules()`

--- A census of the Lua heap by type.
-- @function commands.heap
-- @treturn string the table; data: `heap()`

--- The objects that retain the most bytes: what a collection would free
-- without each (a snapshot and its dominator tree, in slices).
-- @function commands.retained
-- @tparam[opt] integer N rows (default 15, at most 1024)
-- @treturn string the table; data: `snap:retained(N)`

--- What keeps an object alive: the object at a path, then its
-- dominators up to a root (a snapshot, in slices).
-- @function commands.who
-- @tparam string path a path as snapshots show them
-- (`package.loaded.quest.cache`)
-- @treturn string the table; data: `snap:retainers(path)`

--- Remembers the present (slab, Lua heap, modules) for `diff`.
-- @function commands.mark
-- @treturn string what was remembered

--- What grew since `mark`: slab caches, the Lua heap, modules.
-- @function commands.diff
-- @treturn string the changes; data: the diffs

--- A full collection.
-- @function commands.gc
-- @treturn string what it freed

--- Turns the console's allocator tracker on or off.
-- @function commands.track
-- @tparam string what `on` or `off`
-- @treturn string the tracker's state

--- The allocation-site profiler: `prof start [rate]` starts sampling (one
-- sample per rate bytes allocated, default 64K), `prof top [N] [live|alloc]`
-- lists the largest sites, `prof stop` stops, `prof flame PATH` writes a
-- flame graph (HTML, or SVG for a .svg path).
-- @function commands.prof
-- @tparam string what `start`, `top`, `stop` or `flame`
-- @tparam[opt] string arg the rate, N, the kind or the path
-- @treturn string the reply; data: `top()` rows, `info()`, `{ rate }` or `{ path }`

--- Caps the Lua heap (needs the tracker); refused below live plus headroom.
-- @function commands.limit
-- @tparam string size `512M`, `2G` ... or `off`
-- @treturn string the limit set

--- Takes a sample; ranks what grows once there are 3.
-- @function commands.watch
-- @treturn string the samples, then the ranking

--- Drops caches, when the host allowed it (`new{ allow_drop_caches = true }`).
-- @function commands.drop
-- @tparam integer level 1 (page cache), 2 (slab) or 3 (both)
-- @treturn string what was freed

--- A command's figures as JSON.
-- @function commands.json
-- @tparam string command the command and its words, e.g. `json slab 10`
-- @treturn string the JSON text
