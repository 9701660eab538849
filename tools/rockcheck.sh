#!/bin/sh
# Installs the rock offline with luarocks into throwaway trees, for every
# Lua version luarocks knows, and requires it from each interpreter
# (the 5.1 tree also serves LuaJIT).
set -e
rockspec=$1
top=$(mktemp -d)
trap 'rm -rf "$top"' EXIT
for v in 5.1 5.2 5.3 5.4; do
  luarocks --lua-version="$v" make "$rockspec" --tree="$top/$v" \
    --deps-mode=none >"$top/log-$v" 2>&1 || { cat "$top/log-$v"; exit 1; }
  interps="lua$v"
  [ "$v" = 5.1 ] && interps="lua5.1 luajit"
  for lua in $interps; do
    LUA_PATH="$top/$v/share/lua/$v/?.lua;$top/$v/share/lua/$v/?/init.lua" \
    LUA_CPATH="$top/$v/lib/lua/$v/?.so" \
      "$lua" -e 'local m = require "memprobe"
        assert(m.free().total > 0, "free() failed")
        io.write("rock on ", (jit and jit.version or _VERSION), ": memprobe ",
                 m._VERSION, "\n")'
  done
  test -x "$top/$v/bin/memprobe"
done
