#!/bin/sh
# A real Prometheus on 127.0.0.1 scrapes memprobe twice over: the
# OpenResty example's /metrics and a textfile written by the CLI (served
# by python3's http.server: Prometheus itself does not read textfiles),
# with rules.yml loaded. Meant to run under examples/openresty/run.sh,
# which keeps nginx up meanwhile:
#   sh examples/openresty/run.sh NGINX_PORT \
#     sh examples/prometheus/scrape_test.sh OUT NGINX_PORT HTTP_PORT PROM_PORT
# LUA (default lua5.4), LUA_PATH and LUA_CPATH run the CLI. Writes to OUT:
# memprobe.prom (the textfile) and the API's answers as JSON (query-*.json,
# rules.json); the spec asserts on them. Gives up after 40 s.
set -e
out=$1 nport=$2 hport=$3 pport=$4
top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out/tf"
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
${LUA:-lua5.4} "$top/bin/memprobe" prometheus --textfile "$out/tf/memprobe.prom"
cp "$out/tf/memprobe.prom" "$out/memprobe.prom"
python3 -m http.server "$hport" --bind 127.0.0.1 --directory "$out/tf" \
  >"$out/http.log" 2>&1 &
pids="$pids $!"
cp "$top/examples/prometheus/rules.yml" "$out/rules.yml"
cat >"$out/prometheus.yml" <<CONF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [ "$out/rules.yml" ]
scrape_configs:
  - job_name: prometheus
    static_configs: [ { targets: [ "127.0.0.1:$pport" ] } ]
  - job_name: memprobe-textfile
    metrics_path: /memprobe.prom
    static_configs: [ { targets: [ "127.0.0.1:$hport" ] } ]
  - job_name: memprobe-openresty
    metrics_path: /metrics
    static_configs: [ { targets: [ "127.0.0.1:$nport" ] } ]
CONF
prometheus --config.file="$out/prometheus.yml" --storage.tsdb.path="$out/data" \
  --web.listen-address="127.0.0.1:$pport" >"$out/prometheus.log" 2>&1 &
pids="$pids $!"
api="http://127.0.0.1:$pport/api/v1"
query() {  # name promql
  curl -fsG "$api/query" --data-urlencode "query=$2" >"$out/query-$1.json"
}
# The three targets (Prometheus scrapes itself for its ingestion error
# counters) up, each scraped at least three times.
i=0
until query ready 'count(up == 1) == 3' &&
      grep -q '"result":\[{' "$out/query-ready.json" &&
      query scrapes 'min(count_over_time(up[1m])) >= 3' &&
      grep -q '"result":\[{' "$out/query-scrapes.json"; do
  i=$((i + 1))
  [ $i -lt 400 ] || { echo "prometheus: targets not up in 40 s" >&2
                      tail -n 20 "$out/prometheus.log" >&2; exit 1; }
  sleep 0.1
done
query textfile '{job="memprobe-textfile"}'
query openresty '{job="memprobe-openresty"}'
query up 'up'
query samples 'scrape_samples_scraped'
# samples Prometheus refused: duplicates, out of order, out of bounds
query refused 'prometheus_target_scrapes_sample_duplicate_timestamp_total
  + prometheus_target_scrapes_sample_out_of_order_total
  + prometheus_target_scrapes_sample_out_of_bounds_total'
curl -fs "$api/rules" >"$out/rules.json"
curl -fs "$api/targets" >"$out/targets.json"
echo "scraped"
