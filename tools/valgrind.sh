#!/bin/sh
# The busted suite under valgrind (memcheck, --error-exitcode=1), once per
# runtime given as "name=interpreter=busted=aggressive-GC chunk", each once
# more with that chunk (LUA_INIT runs before busted). Without arguments:
# lua5.4 and luajit. LuaJIT: see the note in README "Hardening".
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
vg="valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --suppressions=$top/tools/valgrind.supp"
[ $# -gt 0 ] || set -- '5.4=lua5.4=/usr/bin/busted=collectgarbage("setpause", 0)' \
                       'jit=luajit=/usr/bin/busted=collectgarbage("setpause", 0)'
status=0
for spec in "$@"; do
  name=${spec%%=*} rest=${spec#*=}
  lua=${rest%%=*} rest=${rest#*=}
  busted=${rest%%=*} aggressive=${rest#*=}
  for init in "" "$aggressive"; do
    echo "== valgrind busted on $lua${init:+ (aggressive GC)}"
    LUA_INIT="$init" MEMPROBE_VALGRIND=1 \
    LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" \
    LUA_CPATH="$top/build/$name/?.so;;" \
      $vg "$lua" "$busted" -o utfTerminal || status=1
  done
done
exit $status
