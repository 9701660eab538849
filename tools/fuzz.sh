#!/bin/sh
# Runs each libFuzzer binary given for SECONDS seconds on its corpus
# (seeded from the fixtures) and prints one line per target with its
# executions; fails if any target crashed or ran no input.
# usage: fuzz.sh SECONDS build/fuzz/fuzz_a build/fuzz/fuzz_b ...
secs=$1
shift
status=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
printf '%-22s %12s %10s  %s\n' target executions "exec/s" result
for bin in "$@"; do
  name=$(basename "$bin")
  corpus=build/fuzz/corpus/$name
  sh tools/fuzz-seeds.sh "fuzz/$name.c" "$corpus" || { status=1; continue; }
  "$bin" -max_total_time="$secs" -print_final_stats=1 -max_len=131072 \
    -timeout=10 -rss_limit_mb=1024 -artifact_prefix="build/fuzz/$name-" \
    "$corpus" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  result=ok
  if [ $rc -ne 0 ] || [ -z "$execs" ]; then
    result="FAILED (exit $rc)"
    status=1
    tail -n 40 "$log"
  fi
  printf '%-22s %12s %10s  %s\n' "$name" "${execs:-0}" "${rate:-0}" "$result"
done
exit $status
