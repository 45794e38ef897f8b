#!/usr/bin/env bash
#! The coordinator's own CPU at 10,000 jobs: a sweep of 10,000 one-epoch depth-8 jobs on a
#! small synthetic set, two local CPU workers, and one `status --watch` attached in a terminal
#! (tmux). For each coordinator binary given (default target/release/coordinator), in
#! alternation, ROUNDS times: the coordinator's share of a core over a 30 s window and the jobs
#! that ended in it. Side by side, as the README's figures for the pacing were taken:
#!     scripts/watch-load.sh OLD/coordinator target/release/coordinator
#! Needs tmux and a built worker (WORKER, default target/release/worker, else target/debug/worker).
#! The state is kept in a scratch folder across rounds, so each round resumes the sweep.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-3}
bins=("$@")
[ ${#bins[@]} -gt 0 ] || bins=("$root/target/release/coordinator")
for i in "${!bins[@]}"; do bins[i]=$(realpath "${bins[i]}"); done
worker=${WORKER:-$root/target/release/worker}
[ -x "$worker" ] || worker=$root/target/debug/worker
command -v tmux > /dev/null || { echo "watch-load: needs tmux" >&2; exit 2; }
export LD_LIBRARY_PATH="$root/.libtorch/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
dir=$(mktemp -d /tmp/watch-load.XXXXXX)
seeds=$(seq -s, 1 50)
cat > "$dir/big.yaml" <<YAML
name: big
data: {kind: synthetic, train: 64, test: 16, seed: 1}
train: {epochs: 1, batch_size: 32}
axes: {arch: [resnet, grid], depth: [8], seed: [$seeds]}
repeats: 100
lease_ttl_s: 60
YAML
port=50177
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
completed() {
    "$1" status --connect "http://127.0.0.1:$port" --json |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["counts"].get("completed", 0))'
}
trap 'tmux -L watch-load kill-server 2>/dev/null || true' EXIT
for round in $(seq "$rounds"); do
    for c in "${bins[@]}"; do
        t="tmux -L watch-load"
        $t new-session -d -s run -x 160 -y 40 \
            "cd $dir && $c run big.yaml --state state --out results --local-workers 2 --worker-device cpu --worker-bin $worker --listen 127.0.0.1:$port --http off; sleep 60"
        sleep 15
        $t new-session -d -s watch -x 100 -y 20 "$c status --watch --connect http://127.0.0.1:$port; sleep 60"
        sleep 5
        pid=$(pgrep -f "^$c run big.yaml" | head -1)
        e0=$(completed "$c"); a=$(cpu_ticks "$pid")
        sleep 30
        b=$(cpu_ticks "$pid"); e1=$(completed "$c")
        ticks=$(getconf CLK_TCK)
        echo "round $round $c: coordinator $(( (b - a) * 100 / (30 * ticks) ))% of a core, $((e1 - e0)) jobs ended in 30 s"
        $t send-keys -t run C-c
        sleep 8
        $t kill-server 2>/dev/null || true
        sleep 2
    done
done
rm -rf "$dir"
