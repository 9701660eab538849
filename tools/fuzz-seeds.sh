#!/bin/sh
# Builds the seed corpus of fuzz target NAME in DIR from the fixture
# files its source names on its "Seeds:" line (paths inside a fixture
# tree, such as proc/meminfo, taken from every tree that has them); "a+b"
# joins a and b with a NUL byte, as the target expects.
# usage: fuzz-seeds.sh fuzz/fuzz_NAME.c DIR
src=$1 dir=$2
mkdir -p "$dir"
# The Seeds: line may go on over the comment lines that follow it.
seeds=$(sed -n '/Seeds:/,/\*\//p' "$src" | sed 's/.*Seeds://; s/\*\/.*//; s/^\*\*//')
n=0
for tree in spec/fixtures/*/; do
  for seed in $seeds; do
    a=${seed%%+*} b=
    [ "$a" != "$seed" ] && b=${seed#*+}
    [ -f "$tree/$a" ] || continue
    [ -z "$b" ] || [ -f "$tree/$b" ] || continue
    out="$dir/seed-$(basename "$tree")-$(echo "$seed" | tr '/+' '__')"
    if [ -n "$b" ]; then
      { cat "$tree/$a"; printf '\0'; cat "$tree/$b"; } >"$out"
    else
      cp "$tree/$a" "$out"
    fi
    n=$((n + 1))
  done
done
name=$(basename "$src" .c)
for r in fuzz/regress/"$name"/*; do
  [ -f "$r" ] && cp "$r" "$dir/regress-$(basename "$r")"
done
[ "$n" -gt 0 ] || { echo "$src: no seed found for: $seeds" >&2; exit 1; }
