#!/bin/sh
# The rock as a user gets it, offline: checks that the scm rockspec is the
# versioned one apart from version and source, then, for every Lua version
# luarocks knows, runs `luarocks make` of the versioned rockspec on a copy
# of the sources under build/rock (never in the checkout) into a tree
# there, requires the module from each interpreter (the 5.1 tree also
# serves LuaJIT), checks the CLI and the installed header, and packs the
# installed rock with `luarocks pack`.   usage: rockcheck.sh ROCKSPEC
set -e
rockspec=$1
top=$(cd "$(dirname "$0")/.." && pwd)
scm=$top/rockspec/memprobe-scm-1.rockspec
strip() { sed -e '/^version = /d' -e '/^source = {/,/^}/d' "$1"; }
mkdir -p "$top/build"
strip "$top/$rockspec" >"$top/build/rock.a"
strip "$scm" >"$top/build/rock.b"
diff -u "$top/build/rock.a" "$top/build/rock.b" ||
  { echo "rockcheck: $rockspec and $scm differ beyond version and source"; exit 1; }
rm -f "$top/build/rock.a" "$top/build/rock.b"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$top/$rockspec")
work=$top/build/rock
rm -rf "$work"
mkdir -p "$work/src"
cd "$top"
cp -R csrc lua bin rockspec LICENSE "$work/src/"
for v in 5.1 5.2 5.3 5.4; do
  tree=$work/tree-$v
  (cd "$work/src" && luarocks --lua-version="$v" make "$rockspec" \
    --tree="$tree" --deps-mode=none) >"$work/log-$v" 2>&1 ||
    { cat "$work/log-$v"; exit 1; }
  interps="lua$v"
  [ "$v" = 5.1 ] && interps="lua5.1 luajit"
  for lua in $interps; do
    LUA_PATH="$tree/share/lua/$v/?.lua;$tree/share/lua/$v/?/init.lua" \
    LUA_CPATH="$tree/lib/lua/$v/?.so" \
      "$lua" -e 'local m = require "memprobe"
        assert(m.free().total > 0, "free() failed")
        io.write("rock on ", (jit and jit.version or _VERSION), ": memprobe ",
                 m._VERSION, "\n")'
  done
  test -x "$tree/bin/memprobe"
  rockdir=$(luarocks --lua-version="$v" --tree="$tree" show --rock-dir memprobe)
  cmp -s "$rockdir/conf/memprobe.h" csrc/memprobe.h ||
    { echo "rockcheck: memprobe.h not installed in $rockdir/conf"; exit 1; }
done
(cd "$work" && luarocks --lua-version=5.4 --tree="$work/tree-5.4" \
  pack memprobe "$version") >"$work/log-pack" 2>&1 || { cat "$work/log-pack"; exit 1; }
rock=$work/memprobe-$version.linux-x86_64.rock
test -f "$rock" || { cat "$work/log-pack"; exit 1; }
python3 -c 'import sys, zipfile; n = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["lib/memprobe/core.so", "lua/memprobe/init.lua", "bin/memprobe", "conf/memprobe.h"]
miss = [x for x in need if x not in n]
sys.exit("rock lacks: %s" % miss if miss else 0)' "$rock"
echo "rock packed: build/rock/$(basename "$rock")"
