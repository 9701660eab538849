#!/bin/sh
# Runs each make target a contributor is told about as the first command
# in its own fresh clone (of HEAD) in a temporary directory, cut short
# where it is long, and fails if any exits non-zero, prints "Aborted" or
# leaves a file outside build/.
# Logs: build/check-targets/<target>.log.   usage: check-targets.sh [TARGET...]
top=$(cd "$(dirname "$0")/.." && pwd)
logs=$top/build/check-targets
mkdir -p "$logs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # specs run children as an unprivileged user (setpriv, nginx workers)
targets=${*:-docs bench bench-tracker fuzz asan valgrind embed tsan}
status=0
printf '%-14s %6s %8s\n' target exit seconds
for t in $targets; do
  case $t in
    fuzz) args="FUZZ_SECONDS=3" ;;
    valgrind) args="VALGRIND_SPECS=spec/01-meminfo_spec.lua" ;;
    *) args= ;;
  esac
  rm -rf "$tmp/clone"
  git clone -q "$top" "$tmp/clone" || exit 1
  start=$(date +%s)
  nice make -C "$tmp/clone" --no-print-directory "$t" $args \
    >"$logs/$t.log" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  if [ $rc -eq 0 ] && grep -q 'Aborted' "$logs/$t.log"; then
    rc=aborted
  fi
  # every product under build/
  stray=$(git -C "$tmp/clone" status --porcelain --ignored | grep -v '^!! build/$')
  if [ $rc -eq 0 ] && [ -n "$stray" ]; then
    echo "$stray" >>"$logs/$t.log"
    rc=stray
  fi
  printf '%-14s %6s %8s\n' "$t" "$rc" "$secs"
  if [ "$rc" != 0 ]; then
    status=1
    tail -n 30 "$logs/$t.log"
  fi
done
exit $status
