#!/bin/sh
# The rock as a user gets it, offline: keeps the versioned rockspec the scm
# one apart from version and source, then, for every Lua version
# luarocks knows, runs `luarocks make` of the versioned rockspec on a copy
# of the sources under build/rock (never in the checkout) into a tree
# there, requires the module from each interpreter (the 5.1 tree also
# serves LuaJIT), checks the CLI and the installed header, and packs the
# installed rock with `luarocks pack`.   usage: rockcheck.sh ROCKSPEC
set -e
rockspec=$1
top=$(cd "$(dirname "$0")/.." && pwd)
scm=$top/rockspec/memprobe-scm-1.rockspec
# The versioned rockspec is the scm one with its own version and source:
# when the scm one changed (a source added), it is rewritten to match and
# the change is shown (commit it).
pre() { sed -n '/^version = /q;p' "$1"; }    # up to the version line
own() { sed -n '/^version = /,/^}/p' "$1"; }   # version and source
post() { sed '1,/^source = {/d' "$1" | sed '1,/^}/d'; }
mkdir -p "$top/build"
{ pre "$top/$rockspec"; own "$top/$rockspec"; post "$scm"; } >"$top/build/rock.gen"
if ! cmp -s "$top/build/rock.gen" "$top/$rockspec"; then
  diff -u "$top/$rockspec" "$top/build/rock.gen" || true
  cp "$top/build/rock.gen" "$top/$rockspec"
  echo "rockcheck: $rockspec rewritten from $(basename "$scm") (commit it)"
fi
rm -f "$top/build/rock.gen"
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
