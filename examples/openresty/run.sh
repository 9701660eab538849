#!/bin/sh
# Starts nginx with lua-nginx-module (Debian: libnginx-mod-http-lua) on
# 127.0.0.1, fetches /memz and /metrics, and stops it; given a command
# after the port, runs that instead while nginx serves, and exits with
# its status.
#   sh examples/openresty/run.sh [PORT [COMMAND ARGS...]]
# Expects memprobe/core.so built for LuaJIT in build/jit (make build).
set -e
top=$(cd "$(dirname "$0")/../.." && pwd)
port=${1:-18089}
[ $# -gt 0 ] && shift
mods=/usr/lib/nginx/modules
[ -f "$mods/ngx_http_lua_module.so" ] || {
  echo "lua-nginx-module not installed (apt-get install libnginx-mod-http-lua)" >&2
  exit 77
}
[ -f "$top/build/jit/memprobe/core.so" ] || {
  echo "no $top/build/jit/memprobe/core.so (make build)" >&2
  exit 1
}
dir=$(mktemp -d)
trap 'kill "$(cat "$dir/nginx.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$dir"' EXIT
mkdir -p "$dir/logs"
sed -e "s|@NDK_MODULE@|$mods/ndk_http_module.so|" \
    -e "s|@LUA_MODULE@|$mods/ngx_http_lua_module.so|" \
    -e "s|@LUA_PATH@|$top/lua/?.lua;$top/lua/?/init.lua;;|" \
    -e "s|@LUA_CPATH@|$top/build/jit/?.so;;|" \
    -e "s|@PORT@|$port|" "$top/examples/openresty/nginx.conf" > "$dir/nginx.conf"
# The environment's LUA_PATH and LUA_CPATH (a sanitized build, say) stay
# out of nginx: ";;" in the config would bring them in.
env -u LUA_PATH -u LUA_CPATH nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
  2>>"$dir/logs/error.log" &
i=0
until curl -fs "http://127.0.0.1:$port/memz" >/dev/null 2>&1; do
  i=$((i + 1))
  [ $i -lt 50 ] || { echo "nginx did not start:" >&2; cat "$dir/logs/error.log" >&2; exit 1; }
  sleep 0.1
done
if [ $# -gt 0 ]; then
  "$@"
  exit $?
fi
echo "== /memz"
curl -fs "http://127.0.0.1:$port/memz"
echo "== /memz?cmd=sys"
curl -fs "http://127.0.0.1:$port/memz?cmd=sys"
echo "== /metrics"
curl -fs "http://127.0.0.1:$port/metrics"
