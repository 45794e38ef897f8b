#!/usr/bin/env bash
#! A real Prometheus for `make deploy-check` (called by scripts/deploy-check.sh, which counts
#! its lines): installs Debian's prometheus (with promtool) when missing, starts a coordinator on
#! loopback with its dashboard on 0.0.0.0 (so /metrics needs the token, as in deploy/k8s), checks
#! its classic-format /metrics with `promtool check metrics`, then starts Prometheus scraping it
#! with the token (`authorization: {credentials_file: ...}`) and asks Prometheus' HTTP API for
#! `up` and `gridsweep_jobs`, and for the counters' metadata (named as OpenMetrics names them,
#! which shows that Prometheus negotiated OpenMetrics). Both processes are stopped by pid on the
#! way out. Installing needs root (SKIP otherwise); the coordinator binary must be built
#! (target/release, else target/debug, or GRIDSWEEP_CHECK_COORDINATOR_BIN).
#! Prints `ok: ...`, `FAIL: ...` and `SKIP: ...` lines; exits 1 after a FAIL.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/deploy-check/prometheus"
failed=0
ok() { echo "ok: $*"; }
fail() {
    echo "FAIL: $*"
    failed=1
}
skip() { echo "SKIP: $*"; }

coordinator_bin=
for b in "${GRIDSWEEP_CHECK_COORDINATOR_BIN:-}" "$root/target/release/coordinator" "$root/target/debug/coordinator"; do
    if [[ -n "$b" && -x "$b" ]]; then
        coordinator_bin=$b
        break
    fi
done
if [[ -z "$coordinator_bin" ]]; then
    skip "real Prometheus: the coordinator binary is not built (make build or make build-debug)"
    exit 0
fi
if ! command -v prometheus > /dev/null || ! command -v promtool > /dev/null; then
    if [[ $(id -u) != 0 ]]; then
        skip "real Prometheus: not installed, and installing it (apt-get install prometheus) needs root"
        exit 0
    fi
    echo "installing prometheus from Debian (apt-get)"
    log="$root/target/deploy-check/apt-prometheus.log"
    if ! { apt-get install -y -q --no-install-recommends prometheus > "$log" 2>&1 ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; } >> "$log" 2>&1; }; then
        fail "apt-get install prometheus: $(tail -n 3 "$log")"
        exit 1
    fi
fi
ok "$(prometheus --version 2>&1 | head -n 1)"

pids=()
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
    local i pid
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid=${pids[i]}
        kill "$pid" 2> /dev/null || continue
        for _ in $(seq 50); do
            kill -0 "$pid" 2> /dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2> /dev/null
        wait "$pid" 2> /dev/null
    done
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work"
read -r grpc_port http_port prom_port < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
(umask 077 && head -c 32 /dev/urandom | base64 > "$work/token")
cat > "$work/sweep.yaml" << EOF
name: promcheck
data: {kind: synthetic, train: 64, test: 32, seed: 1}
train: {epochs: 1, batch_size: 32}
axes: {arch: [resnet, grid], depth: [8], seed: [1, 2, 3]}
EOF
# No workers: the sweep waits, and the coordinator serves until it is stopped.
"$coordinator_bin" run "$work/sweep.yaml" --listen "127.0.0.1:$grpc_port" --http "0.0.0.0:$http_port" \
    --token-file "$work/token" --local-workers 0 --state "$work/state" --out "$work/results" \
    > "$work/coordinator.log" 2>&1 &
pids+=($!)
metrics="http://127.0.0.1:$http_port/metrics"
bearer="Authorization: Bearer $(cat "$work/token")"
for _ in $(seq 100); do curl -sf -o /dev/null -H "$bearer" "$metrics" && break; sleep 0.2; done
code=$(curl -s -o /dev/null -w '%{http_code}' "$metrics")
if [[ "$code" == 401 ]]; then
    ok "coordinator (pid ${pids[0]}) serves /metrics on 0.0.0.0:$http_port, 401 without the token"
else
    fail "/metrics without the token answered $code, expected 401: $(tail -n 3 "$work/coordinator.log")"
fi
curl -s -H "$bearer" -D "$work/classic.headers" -o "$work/classic.txt" "$metrics"
if report=$(promtool check metrics < "$work/classic.txt" 2>&1) && [[ -z "$report" ]] &&
    grep -qi '^content-type: text/plain; version=0.0.4' "$work/classic.headers"; then
    ok "curl /metrics (text/plain; version=0.0.4, $(grep -c '^# TYPE' "$work/classic.txt") families) | promtool check metrics: clean"
else
    fail "promtool check metrics: ${report:-content type $(grep -i '^content-type' "$work/classic.headers")}"
fi

cat > "$work/prometheus.yml" << EOF
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: gridsweep
    authorization: {credentials_file: $work/token}
    static_configs: [{targets: ["127.0.0.1:$http_port"]}]
EOF
if out=$(promtool check config "$work/prometheus.yml" 2>&1); then
    ok "promtool check config: the scrape job with the token file"
else
    fail "promtool check config: $out"
fi
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" > "$work/prometheus.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$prom_port/api/v1"
query() { curl -s -G "$api/query" --data-urlencode "query=$1"; }
value_of() {
    python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
pairs = sorted((m["metric"].get(sys.argv[1], ""), m["value"][1]) for m in r)
print(" ".join(k + "=" + v for k, v in pairs))' "$1"
}
up=
for _ in $(seq 150); do
    up=$(query 'up{job="gridsweep"}' 2> /dev/null | value_of job 2> /dev/null)
    [[ "$up" == gridsweep=1 ]] && break
    sleep 0.2
done
if [[ "$up" == gridsweep=1 ]]; then
    ok "Prometheus (pid ${pids[1]}) scrapes the coordinator with the token: up{job=\"gridsweep\"} = 1"
else
    fail "up{job=\"gridsweep\"} is '$up': $(curl -s "$api/targets" | head -c 400)"
fi
jobs=$(query 'gridsweep_jobs' | value_of state)
if [[ "$jobs" == "completed=0 diverged=0 failed=0 pending=6 running=0" ]]; then
    ok "query gridsweep_jobs through the HTTP API: $jobs"
else
    fail "gridsweep_jobs through the HTTP API: '$jobs', expected 6 pending"
fi
metadata=$(curl -s -G "$api/metadata" --data-urlencode "metric=gridsweep_epochs_reported")
if grep -q '"gridsweep_epochs_reported":\[{"type":"counter"' <<< "$metadata"; then
    ok "Prometheus scraped OpenMetrics: its metadata names the counter family gridsweep_epochs_reported"
else
    fail "metadata of gridsweep_epochs_reported: $metadata (a classic-format scrape names it ..._total)"
fi
exit $failed
