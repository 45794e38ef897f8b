#!/usr/bin/env bash
#! Measures how good `coordinator status`'s sweep ETA is: runs SWEEP with one local worker on a
#! fresh state, samples `status --json` every second, and when the sweep has ended compares each
#! sample's ETA with the time that was actually left. Prints the error at the first sample after
#! a third of the jobs had ended (the issue's target: within 25%) and a summary of the rest.
#!
#!     scripts/eta-check.sh [SWEEP] [DATA]      # default: sweeps/smoke.yaml data
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sweep=${1:-$root/sweeps/smoke.yaml}
data=${2:-$root/data}
bin=${BIN:-$root/target/release}
work=$(mktemp -d)
trap 'kill $coord 2>/dev/null || true; rm -rf "$work"' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin/coordinator" run "$sweep" --listen "127.0.0.1:$port" --state "$work/state" --out "$work/out" \
    --data "$data" --worker-bin "$bin/worker" > "$work/run.log" 2>&1 &
coord=$!
samples=$work/samples.jsonl
while kill -0 "$coord" 2>/dev/null; do
    if s=$("$bin/coordinator" status --connect "http://127.0.0.1:$port" --json 2>/dev/null); then
        printf '{"t": %s, "status": %s}\n' "$(date +%s.%N)" "$s" >> "$samples"
    fi
    sleep 1
done
wait "$coord" || { cat "$work/run.log"; exit 1; }
end=$(date +%s.%N)

python3 - "$samples" "$end" <<'EOF'
import json, sys
path, end = sys.argv[1], float(sys.argv[2])
rows = [json.loads(l) for l in open(path)]
total = len(rows[0]["status"]["jobs"])
print(f"sweep of {total} jobs, {len(rows)} status samples, ended {end - rows[0]['t']:.0f} s after the first")
print(f"{'t (s)':>6} {'ended':>5} {'eta (s)':>8} {'actual (s)':>10} {'error':>7}")
first_third = None
errors = []
for r in rows:
    c = r["status"]["counts"]
    ended = c["completed"] + c["diverged"] + c["failed"]
    eta, actual = r["status"]["eta_s"], end - r["t"]
    if eta is None or actual <= 0:
        continue
    err = (eta - actual) / actual
    if ended * 3 >= total:
        errors.append(abs(err))
        if first_third is None:
            first_third = (r["t"] - rows[0]["t"], ended, eta, actual, err)
    print(f"{r['t'] - rows[0]['t']:6.0f} {ended:5d} {eta:8.1f} {actual:10.1f} {err:+7.1%}")
if first_third:
    t, ended, eta, actual, err = first_third
    print(f"first sample with a third ended: t={t:.0f} s, {ended}/{total} ended, eta {eta:.1f} s, "
          f"actually {actual:.1f} s left: error {err:+.1%}")
    errors.sort()
    print(f"after a third ended: median |error| {errors[len(errors) // 2]:.1%}, worst {errors[-1]:.1%} "
          f"over {len(errors)} samples")
EOF
