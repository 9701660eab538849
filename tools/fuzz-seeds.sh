#!/bin/sh
# Builds the seed corpus of fuzz target NAME in DIR from the fixture
# files its source names on its "Seeds:" line (every fixture tree that
# has them); "a+b" joins a and b with a NUL byte, as the target expects.
# usage: fuzz-seeds.sh fuzz/fuzz_NAME.c DIR
src=$1 dir=$2
mkdir -p "$dir"
seeds=$(sed -n 's/.*Seeds: *//p' "$src" | head -n 1)
n=0
for tree in spec/fixtures/*/; do
  for seed in $seeds; do
    a=${seed%%+*} b=
    [ "$a" != "$seed" ] && b=${seed#*+}
    [ -f "$tree/proc/$a" ] || continue
    [ -z "$b" ] || [ -f "$tree/proc/$b" ] || continue
    out="$dir/seed-$(basename "$tree")-$(echo "$seed" | tr '/+' '__')"
    if [ -n "$b" ]; then
      { cat "$tree/proc/$a"; printf '\0'; cat "$tree/proc/$b"; } >"$out"
    else
      cp "$tree/proc/$a" "$out"
    fi
    n=$((n + 1))
  done
done
name=$(basename "$src" .c)
for r in fuzz/regress/"$name"/*; do
  [ -f "$r" ] && cp "$r" "$dir/regress-$(basename "$r")"
done
[ "$n" -gt 0 ] || { echo "$src: no seed found for: $seeds" >&2; exit 1; }
