#!/bin/sh
# Builds Lua 5.5 and busted for it, for the specs (Debian 12 packages no
# Lua 5.5). Usage: tools/lua55.sh TARBALL OUT
#   OUT/bin/lua5.5, OUT/lib/liblua.a, OUT/include/*.h: the interpreter
#     (symbols exported, -Wl,-E, so that C modules link no liblua);
#   OUT/share/lua/5.5, OUT/lib/lua/5.5: busted and its modules, built from
#     the tarballs next to TARBALL; OUT/bin/busted runs busted with them.
# The Lua tarball is a git archive: flat, plain make, no install target.
# Its default CFLAGS carry -march=native, under which valgrind stops with
# SIGILL, so they are overridden.
set -e
tarball=$1 out=$2
vendor=$(dirname "$tarball")
mkdir -p "$out"
out=$(cd "$out" && pwd)
src="$out/src"
rm -rf "$src" && mkdir -p "$src"

tar xzf "$tarball" -C "$src"
lua=$(ls -d "$src"/lua-*)
make -s -C "$lua" CC="${CC:-cc}" \
  CFLAGS='-Wall -O2 -g -std=c99 -DLUA_USE_LINUX -fno-common' >/dev/null
mkdir -p "$out/bin" "$out/lib" "$out/include"
cp "$lua/lua" "$out/bin/lua5.5"
cp "$lua/liblua.a" "$out/lib/"
cp "$lua/lua.h" "$lua/luaconf.h" "$lua/lualib.h" "$lua/lauxlib.h" \
   "$out/include/"

# busted: pure-Lua modules laid out as their rockspecs map them, C
# modules compiled against the headers above.
share="$out/share/lua/5.5" clib="$out/lib/lua/5.5"
rm -rf "$share" "$clib" && mkdir -p "$share" "$clib/system" "$clib/term"
for t in busted penlight luassert say lua_cliargs luafilesystem luasystem \
         lua-term; do
  f=$(ls "$vendor/$t"-[0-9]*.tar.gz 2>/dev/null | head -n 1)
  [ -n "$f" ] || { echo "lua55: no $t tarball in $vendor" >&2; exit 1; }
  tar xzf "$f" -C "$src"
done
cd "$src"
cp -R busted-*/busted busted-*/busted.lua penlight-*/lua/pl "$share/"
cp -R luassert-*/src "$share/luassert"
cp -R say-*/src/say "$share/say"
cp -R lua_cliargs-*/src/cliargs lua_cliargs-*/src/cliargs.lua "$share/"
cp -R luasystem-*/system "$share/system"
cp -R lua-term-*/term "$share/term"
cp /usr/share/lua/5.4/mediator.lua /usr/share/lua/5.4/dkjson.lua "$share/"
cc=${CC:-cc}
cflags="-O2 -fPIC -shared -I$out/include"
$cc $cflags luafilesystem-*/src/lfs.c -o "$clib/lfs.so"
sys=$(ls -d luasystem-*/src)
$cc $cflags "$sys"/bitflags.c "$sys"/compat.c "$sys"/core.c \
  "$sys"/environment.c "$sys"/random.c "$sys"/term.c "$sys"/time.c \
  "$sys"/wcwidth.c -o "$clib/system/core.so" -lrt
$cc $cflags lua-term-*/core.c -o "$clib/term/core.so"

# The runner: busted's own three lines, after the tree above is appended
# to the paths (LUA_PATH/LUA_CPATH given by the caller come first).
cat >"$out/bin/busted" <<EOF
package.path = package.path .. ";$share/?.lua;$share/?/init.lua"
package.cpath = package.cpath .. ";$clib/?.so"
require 'busted.runner'({ standalone = false })
EOF
rm -rf "$src"
