-- The single source of truth for installs: the Makefile reads the C
-- sources and Lua modules from this file. memprobe-scm-1.rockspec is the
-- same apart from version and source (make rockcheck compares them).
rockspec_format = "3.0"
package = "memprobe"
version = "0.1.0-1"
source = {
  url = "git+https://github.com/memprobe/memprobe.git",
  tag = "v0.1.0",
}
description = {
  summary = "Where did the memory go? Kernel, process and Lua heap, side by side",
  detailed = [[
memprobe reads the kernel's view (meminfo, slab, vmalloc, cgroup, NUMA),
the process's view (RSS, PSS/USS, C heap) and the Lua state's own view
(allocator hook, heap walk, per-module accounting) from Lua 5.1-5.5 and
LuaJIT 2.1, and exports them for Prometheus.

Optional, used when installed: lua-cjson or dkjson (JSON output of the
CLI and the console); luasocket for examples/admin_console.lua.
Embedding hosts: the rock installs memprobe.h in its conf directory
(`luarocks show --rock-dir memprobe`/conf).
]],
  homepage = "https://github.com/memprobe/memprobe",
  license = "MIT",
  labels = { "memory", "profiling", "linux", "procfs" },
}
dependencies = {
  "lua >= 5.1, < 5.6",
}
test_dependencies = {
  "busted",
}
test = {
  type = "busted",
}
build = {
  type = "builtin",
  modules = {
    ["memprobe.core"] = {
      sources = {
        "csrc/blocktab.c",
        "csrc/cgroup.c",
        "csrc/clock.c",
        "csrc/compat.c",
        "csrc/core.c",
        "csrc/dropcaches.c",
        "csrc/embed.c",
        "csrc/fill.c",
        "csrc/heap.c",
        "csrc/heapbook.c",
        "csrc/heapdiff.c",
        "csrc/heapdom.c",
        "csrc/heapmodel.c",
        "csrc/heapsnapshot.c",
        "csrc/heapwalk.c",
        "csrc/hookcell.c",
        "csrc/ledger.c",
        "csrc/meminfo.c",
        "csrc/parse.c",
        "csrc/pids.c",
        "csrc/process.c",
        "csrc/pprof.c",
        "csrc/procfs.c",
        "csrc/profile.c",
        "csrc/sharedcode.c",
        "csrc/sysvm.c",
        "csrc/textfile.c",
        "csrc/tracker.c",
        "csrc/zones.c",
        "csrc/slab.c",
        "csrc/vmalloc.c",
      },
      incdirs = { "csrc" },
    },
    ["memprobe"] = "lua/memprobe/init.lua",
    ["memprobe.console"] = "lua/memprobe/console.lua",
    ["memprobe.export"] = "lua/memprobe/export.lua",
    ["memprobe.format"] = "lua/memprobe/format.lua",
    ["memprobe.json"] = "lua/memprobe/json.lua",
    ["memprobe.report"] = "lua/memprobe/report.lua",
    ["memprobe.diff"] = "lua/memprobe/diff.lua",
    ["memprobe.watch"] = "lua/memprobe/watch.lua",
    ["memprobe.requires"] = "lua/memprobe/requires.lua",
    ["memprobe.heap"] = "lua/memprobe/heap.lua",
    ["memprobe.heapmodel"] = "lua/memprobe/heapmodel.lua",
    ["memprobe.settle"] = "lua/memprobe/settle.lua",
    ["memprobe.options"] = "lua/memprobe/options.lua",
    ["memprobe.profile"] = "lua/memprobe/profile.lua",
    ["memprobe.flame"] = "lua/memprobe/flame.lua",
    ["memprobe.save"] = "lua/memprobe/save.lua",
    ["memprobe.htmlreport"] = "lua/memprobe/htmlreport.lua",
    ["memprobe.treemap"] = "lua/memprobe/treemap.lua",
  },
  install = {
    bin = { memprobe = "bin/memprobe" },
    conf = { "csrc/memprobe.h" },
  },
}
