#!/bin/sh
# Starts the example skynet node, asks memprobe about its game service
# through skynet's own debug console, and stops the node.
#
#   make skynet && sh examples/skynet/run.sh [port]
#
# Exits 77 when skynet or memprobe.core for it is not built.
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
SKYNET_ROOT=${SKYNET_ROOT:-$top/build/skynet}
core=$top/build/skynet-core
if [ ! -x "$SKYNET_ROOT/skynet" ] || [ ! -f "$core/memprobe/core.so" ]; then
  echo "build first: make skynet (SKYNET_SRC names the skynet tarball)" >&2
  exit 77
fi
port=${1:-7789}
lua=${LUA:-lua5.4}
run=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$run"' EXIT
cd "$run" || exit 1
SKYNET_ROOT=$SKYNET_ROOT MEMPROBE_ROOT=$top CONSOLE_PORT=$port \
MEMPROBE_CPATH="$core/?.so" \
  timeout -k 5 120 "$SKYNET_ROOT/skynet" "$here/config" >node.log 2>&1 &
pid=$!
i=0
until grep -q "Start debug console" node.log 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 $pid 2>/dev/null; then
    echo "the skynet node did not start:" >&2
    cat node.log >&2
    exit 1
  fi
  sleep 0.1
done
LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" "$lua" "$here/client.lua" "$port" \
  'dbgcmd {game} MEMPROBE mem' \
  'dbgcmd {game} MEMPROBE lua' \
  'dbgcmd {game} MEMPROBE heap' \
  'dbgcmd {game} MEMPROBE modules 60' \
  'dbgcmd {game} MEMPROBE ticks' \
  'sleep 2' \
  'dbgcmd {game} MEMPROBE lua' \
  'call {game} "count"'
status=$?
echo "== node log"
grep -v "^$" node.log | sed 's/^[0-9\/]* [0-9:.]* //' | head -n 20
exit $status
