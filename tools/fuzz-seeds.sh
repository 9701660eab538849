#!/bin/sh
# Builds the seed corpus of fuzz target NAME in DIR from the fixture
# files its source names on its "Seeds:" line (paths inside a fixture
# tree, such as proc/meminfo, taken from every tree that has them);
# "a+b+c" joins the files with a NUL byte between each, as the target
# expects.
# usage: fuzz-seeds.sh fuzz/fuzz_NAME.c DIR
src=$1 dir=$2
mkdir -p "$dir"
# The Seeds: line may go on over the comment lines that follow it.
seeds=$(sed -n '/Seeds:/,/\*\//p' "$src" | sed 's/.*Seeds://; s/\*\/.*//; s/^\*\*//')
n=0
for tree in spec/fixtures/*/; do
  for seed in $seeds; do
    parts=$(echo "$seed" | tr '+' ' ')
    ok=1
    for part in $parts; do [ -f "$tree/$part" ] || ok=0; done
    [ $ok = 1 ] || continue
    out="$dir/seed-$(basename "$tree")-$(echo "$seed" | tr '/+' '__')"
    first=1
    for part in $parts; do
      [ $first = 1 ] || printf '\0'
      cat "$tree/$part"
      first=0
    done >"$out"
    n=$((n + 1))
  done
done
name=$(basename "$src" .c)
for r in fuzz/regress/"$name"/*; do
  [ -f "$r" ] && cp "$r" "$dir/regress-$(basename "$r")"
done
[ "$n" -gt 0 ] || { echo "$src: no seed found for: $seeds" >&2; exit 1; }
