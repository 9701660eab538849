#!/bin/sh
# Runs every spec file under each runtime given as "name=interpreter[=busted]"
# (busted: the runner script, /usr/bin/busted by default) with the
# matching build (build/<name>/) on LUA_CPATH, each file in a busted of
# its own: a file meets a fresh heap, not what the files before it left.
#
# The files run two at a time (BUSTED_JOBS), except those that say
# "runs this file alone" (they time their own steps), which run after the
# others, one at a time. BUSTED_ENV: words put before each interpreter
# (the sanitizer's preload). SPECS: the files, spec/*_spec.lua by default.
#
# Prints a line per file (its whole output when something failed, its
# pending tests' names otherwise), a recap of every failure (a long log's
# tail is what a CI page shows) and one closing line; fails if any file
# failed or ended without busted's summary.
top=$(cd "$(dirname "$0")/.." && pwd)

if [ "$1" = --one ]; then  # name lua busted file log
  cd "$top" || exit 1
  # shellcheck disable=SC2086  # BUSTED_ENV is words
  LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" \
  LUA_CPATH="$top/build/$2/?.so;;" \
    env $BUSTED_ENV "$3" "$4" -o utfTerminal "$5" >"$6" 2>&1
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$top" || exit 1
specs=${SPECS:-$(ls spec/*_spec.lua)}
i=0
for rt in "$@"; do
  i=$((i + 1))
  name=${rt%%=*} rest=${rt#*=}
  lua=${rest%%=*} busted=/usr/bin/busted
  [ "$lua" = "$rest" ] || busted=${rest#*=}
  for f in $specs; do
    job="$name $lua $busted $f $work/$i-$(basename "$f" .lua).log"
    if grep -q "runs this file alone" "$f"; then
      echo "$job" >>"$work/alone"
    else
      echo "$job" >>"$work/shared"
    fi
  done
done
[ -s "$work/shared" ] &&
  xargs -P "${BUSTED_JOBS:-2}" -n 5 sh "$top/tools/busted-all.sh" --one <"$work/shared"
[ -s "$work/alone" ] && xargs -n 5 sh "$top/tools/busted-all.sh" --one <"$work/alone"

# busted's summary: "N successes / N failures / N errors / N pending : T seconds"
count() {
  sed -n "s/^\([0-9]*\) success[es]* \/ \([0-9]*\) failures\{0,1\} \/ \([0-9]*\) errors\{0,1\} \/ \([0-9]*\) pending : \([0-9.]*\).*/\1 \2 \3 \4 \5/p" "$1" | tail -n 1
}
# report LUA FILE LOG: the file's line; adds to pass and fail
report() {
  c=$(count "$3")
  if [ -z "$c" ]; then
    fail=$((fail + 1))
    echo "$2: ended without busted's summary:"; cat "$3"
    { echo "-- $1 $2 ended without a summary; its last lines:"; tail -n 8 "$3"; } >>"$work/recap"
    return
  fi
  set -- "$1" "$2" "$3" $c
  pass=$((pass + $4)) fail=$((fail + $5 + $6))
  printf '%-40s %4d passed %3d failed %3d pending %6.1f s\n' "$2" "$4" $(($5 + $6)) "$7" "$8"
  if [ $(($5 + $6)) -gt 0 ]; then
    cat "$3"
    awk -v rt="$1" '/^(Failure|Error) (\342\206\222|->) /{n=6; print "-- " rt ":"}
                    n > 0 {print; n--}' "$3" >>"$work/recap"
  elif [ "$7" -gt 0 ]; then
    awk '/^Pending (\342\206\222|->) /{n=3} n > 0 {print "    " $0; n--}' "$3"
  fi
}
pass=0 fail=0 i=0
for rt in "$@"; do
  i=$((i + 1))
  name=${rt%%=*} lua=${rt#*=} lua=${lua%%=*}
  echo "== busted on $lua with build/$name"
  for f in $specs; do
    report "$lua" "$f" "$work/$i-$(basename "$f" .lua).log"
  done
done
if [ -s "$work/recap" ]; then echo "== the failures again"; cat "$work/recap"; fi
echo "busted: $pass passed, $fail failed on $i runtimes"
[ "$fail" -eq 0 ]
