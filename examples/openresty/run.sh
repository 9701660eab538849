#!/bin/sh
# Starts nginx with lua-nginx-module (Debian: libnginx-mod-http-lua) on
# 127.0.0.1 with two workers, fetches /memz and /metrics, and stops it;
# given a command after the port, runs that instead while nginx serves,
# and exits with its status.
#   sh examples/openresty/run.sh [PORT [COMMAND ARGS...]]
# Needs memprobe/core.so built for LuaJIT in build/jit ('make build').
#
# memprobe is copied to a world-readable temporary directory first: nginx
# workers run as 'nobody', who cannot read a checkout in a 0700 home.
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
  echo "memprobe.core is not built for LuaJIT: build first ('make build' in $top)" >&2
  exit 2
}
dir=$(mktemp -d)
trap 'kill "$(cat "$dir/nginx.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$dir"' EXIT
mkdir -p "$dir/logs" "$dir/lib/memprobe"
cp -R "$top/lua/." "$dir/lib/"
cp "$top/examples/openresty/memz.lua" "$dir/lib/"
cp "$top/build/jit/memprobe/core.so" "$dir/lib/memprobe/"
chmod -R a+rX "$dir/lib"
chmod 755 "$dir"
sed -e "s|@NDK_MODULE@|$mods/ndk_http_module.so|" \
    -e "s|@LUA_MODULE@|$mods/ngx_http_lua_module.so|" \
    -e "s|@LIB@|$dir/lib|g" \
    -e "s|@PORT@|$port|" "$top/examples/openresty/nginx.conf" > "$dir/nginx.conf"
# The environment's LUA_PATH and LUA_CPATH (a sanitized build, say) stay
# out of nginx: ";;" in the config would bring them in.
env -u LUA_PATH -u LUA_CPATH nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" \
  2>>"$dir/logs/error.log" &
url=http://127.0.0.1:$port
i=0
until curl -fs "$url/memz" >/dev/null 2>&1; do
  i=$((i + 1))
  [ $i -lt 50 ] || { echo "nginx did not start:" >&2; tail -n 20 "$dir/logs/error.log" >&2; exit 1; }
  sleep 0.1
done
if [ $# -gt 0 ]; then
  "$@"
  exit $?
fi
echo "== /memz"
curl -fs "$url/memz"
echo "== /memz?cmd=sys"
curl -fs "$url/memz?cmd=sys"
echo "== /memz?cmd=json%20free"
curl -fs "$url/memz?cmd=json%20free"
echo "== /memz?cmd=slab%2010"
curl -fs "$url/memz?cmd=slab%2010"
echo "== /memz?cmd=lua"
curl -fs "$url/memz?cmd=lua"
# one connection, so one worker: the console keeps the mark between requests
echo "== mark, then diff"
curl -fs -D - "$url/memz?cmd=mark&wait=1" -o /dev/stdout "$url/memz?cmd=diff&wait=1" | tr -d '\r' |
  grep -v -e '^HTTP/' -e '^Server:' -e '^Date:' -e '^Content-' -e '^Connection:' \
          -e '^Transfer-' -e '^$'
# one connection: the walk's answer and the ticks of the worker that ran it
echo "== /memz?cmd=modules%205&wait=1, then /ticks"
curl -fs "$url/memz?cmd=modules%205&wait=1" "$url/ticks"
echo "== /metrics"
curl -fs "$url/metrics"
