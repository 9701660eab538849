#!/bin/sh
# Instruction counts (callgrind) of bench/tracker.lua without the hook,
# with it, in ledger mode, and with a profile running or stopped, on Lua
# 5.4 and LuaJIT; prints the ratios to the run without the hook (the
# profile rows against the track row: subtract the ratios). Usage: bench/tracker.sh [loops]
top=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-200000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
command -v valgrind >/dev/null || { echo "bench: valgrind is not installed"; exit 1; }

count() {  # runtime interpreter mode -> instructions
  # malloc without its per-size caches, as in bench/tracker_bench.lua
  GLIBC_TUNABLES=glibc.malloc.mxfast=0:glibc.malloc.tcache_count=0 \
  LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" \
  LUA_CPATH="$top/build/$1/?.so;;" \
    valgrind --tool=callgrind --callgrind-out-file="$tmp/out" \
      "$2" "$top/bench/tracker.lua" "$3" "$n" >/dev/null 2>"$tmp/log" ||
    { cat "$tmp/log" >&2; exit 1; }
  sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$tmp/out"
}

printf '%-8s %8s %15s %15s %8s\n' runtime mode instructions "no hook" ratio
for pair in 5.4=lua5.4 jit=luajit; do
  rt=${pair%%=*} lua=${pair#*=}
  base=$(count "$rt" "$lua" none) || exit 1
  for mode in track ledger profile stopped; do
    ins=$(count "$rt" "$lua" "$mode") || exit 1
    awk -v r="$rt" -v m="$mode" -v i="$ins" -v b="$base" 'BEGIN {
      printf "%-8s %8s %15d %15d %7.2f%%\n", r, m, i, b, (i / b - 1) * 100 }'
  done
done
