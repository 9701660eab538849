#!/bin/sh
# The busted suite under valgrind (memcheck, --error-exitcode=1), on
# lua5.4 and on luajit, each once more with an aggressive GC (LUA_INIT runs
# before busted). LuaJIT: see the note in README "Hardening". Arguments:
# spec files to run instead of the whole suite.
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
vg="valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --suppressions=$top/tools/valgrind.supp"
aggressive='collectgarbage("setpause", 0)'
status=0
for pair in 5.4=lua5.4 jit=luajit; do
  name=${pair%%=*} lua=${pair#*=}
  for init in "" "$aggressive"; do
    echo "== valgrind busted on $lua${init:+ (aggressive GC)}"
    LUA_INIT="$init" MEMPROBE_VALGRIND=1 \
    LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" \
    LUA_CPATH="$top/build/$name/?.so;;" \
      $vg "$lua" /usr/bin/busted -o utfTerminal "$@" || status=1
  done
done
exit $status
