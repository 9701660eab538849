#!/bin/sh
# Runs busted under each runtime given as "name=interpreter[=busted]"
# (busted: the runner script, /usr/bin/busted by default) with the
# matching build on LUA_CPATH; prints one closing line for all of them and
# fails if any run failed.
top=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
pass=0 fail=0 status=0 n=0
for spec in "$@"; do
  name=${spec%%=*} rest=${spec#*=}
  lua=${rest%%=*} busted=/usr/bin/busted
  [ "$lua" = "$rest" ] || busted=${rest#*=}
  n=$((n + 1))
  echo "== busted on $lua"
  LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" \
  LUA_CPATH="$top/build/$name/?.so;;" \
    "$lua" "$busted" -o utfTerminal >"$log" 2>&1 || status=1
  cat "$log"
  line=$(grep -a 'successes /' "$log" | tail -n 1)
  s=$(echo "$line" | sed -n 's/^\([0-9]*\) successes.*/\1/p')
  f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failures\{0,1\} \/ \([0-9]*\) errors\{0,1\}.*/\1 \2/p')
  [ -n "$s" ] || { status=1; f="1 0"; s=0; }
  pass=$((pass + s))
  for k in $f; do fail=$((fail + k)); done
done
echo "busted: $pass passed, $fail failed on $n runtimes"
[ "$fail" -eq 0 ] || status=1
exit $status
