#!/usr/bin/env bash
#! The device check of issue 6, for a machine with PyTorch 2.11 (and ideally an NVIDIA GPU) but no
#! Rust and no network, given the release `worker` binary built elsewhere. It finds torch's lib
#! directory for the binary, records `worker devices`, runs `worker bench --compare` (resnet,
#! grid node by node, grid as a wavefront, each contiguous and channels-last; interleaved, one
#! process) and the PyTorch reference on the same models in both layouts at each depth, times
#! the packed against the per-parameter SGD update at the largest depth, then makes a synthetic
#! data set and trains grid-26 for 2 epochs with each grid execution. Every run uses PyTorch's
#! default precision (cuDNN convolutions may use TF32), as the reference does; on CUDA one more
#! comparison runs with IEEE fp32 convolutions (`--conv-precision ieee`). Every figure lands as JSON in OUT_DIR; a summary goes to stdout.
#!
#!   scripts/gpu-check.sh OUT_DIR
#!
#! Environment: WORKER (the binary; default target/release/worker beside this script's repo, else
#! `worker` on PATH), PYTHON (with torch; default python3), DEVICE (cuda when torch sees a GPU,
#! else cpu). On CUDA: depths 26 98 386 1538, batch 128; on CPU (to test the script) smaller
#! settings. DEPTHS, BATCH, STEPS, WARMUP, TRAIN_IMAGES and IEEE_DEPTH override them. Budget: under 8 minutes.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
worker=${WORKER:-$root/target/release/worker}
if [ ! -x "$worker" ]; then
    worker=$(command -v worker || true)
fi
if [ -z "$worker" ] || [ ! -x "$worker" ]; then
    echo "gpu-check: no worker binary (set WORKER=/path/to/worker)" >&2
    exit 1
fi

torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
cuda=$("$python" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
device=${DEVICE:-$cuda}
if [ "$device" = cpu ]; then
    depths=${DEPTHS:-26 98}
    batch=${BATCH:-8}
    steps=${STEPS:-2}
    warmup=${WARMUP:-1}
    train_images=${TRAIN_IMAGES:-256}
else
    depths=${DEPTHS:-26 98 386 1538}
    batch=${BATCH:-128}
    steps=${STEPS:-5}
    warmup=${WARMUP:-2}
    train_images=${TRAIN_IMAGES:-5000}
fi
started=$(date +%s)
log() { echo "gpu-check [$(($(date +%s) - started))s]: $*" >&2; }
log "worker $worker, torch lib $torch_lib, device $device, depths $depths, batch $batch, steps $steps"
if ! "$worker" --version > /dev/null 2> "$out/preflight.log"; then
    # Typically a missing library, or a glibc older than the build machine's.
    cat "$out/preflight.log" >&2
    ldd "$worker" | grep -i "not found" >&2 || true
    echo "gpu-check: the worker binary does not start here (see above)" >&2
    exit 1
fi
# From here on a failing step is logged and the rest still run (the deepest, costliest runs come
# last), so that one out-of-memory or crash loses only its own figures.
# run_to FILE CMD...: CMD's stdout into FILE, kept only when CMD succeeds.
run_to() {
    local file=$1
    shift
    "$@" > "$file.part" && mv "$file.part" "$file"
}
failures=0
try() {
    local what=$1
    shift
    if ! "$@"; then
        log "FAILED: $what"
        failures=$((failures + 1))
    fi
}

"$worker" devices --json > "$out/devices.json"
"$worker" devices >&2
"$python" -c 'import json, torch; print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version(), "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    "threads": torch.get_num_threads()}))' > "$out/python-env.json"

log "synthetic data ($train_images training images) and grid-26 training, 2 epochs"
"$worker" data synth --dest "$out/data" --train "$train_images" --test 512 --seed 0 2> "$out/data.log"
for exec in sequential wavefront; do
    log "train grid-26, --grid-exec $exec"
    try "train-grid-26-$exec" "$worker" train --arch grid --depth 26 --epochs 2 --data "$out/data" \
        --device "$device" --grid-exec "$exec" --out "$out/train-grid-26-$exec.json" \
        2> "$out/train-grid-26-$exec.log"
done
rm -rf "$out/data"

for d in $depths; do
    log "bench --compare depth $d"
    try "compare-$d" run_to "$out/compare-$d.json" "$worker" bench --compare --depth "$d" --batch "$batch" \
        --steps "$steps" --warmup "$warmup" --device "$device"
    for arch in resnet grid; do
        for fmt in contiguous channels-last; do
            log "pytorch reference $arch-$d $fmt"
            try "pytorch-$arch-$d-$fmt" run_to "$out/pytorch-$arch-$d-$fmt.json" "$python" \
                "$root/bench/pytorch_reference.py" bench --arch "$arch" --depth "$d" --batch "$batch" \
                --steps "$steps" --warmup "$warmup" --device "$device" --memory-format "$fmt"
        done
    done
done
largest=${depths##* }
log "optimizer update, grid-$largest: packed vs per parameter"
try "optimizer-$largest" run_to "$out/optimizer-$largest.json" "$worker" bench --optimizer --arch grid \
    --depth "$largest" --steps 10 --device "$device"
if [ "$device" != cpu ]; then
    ieee_depth=${IEEE_DEPTH:-98}
    log "bench --compare depth $ieee_depth with IEEE fp32 convolutions"
    try "compare-$ieee_depth-ieee" run_to "$out/compare-$ieee_depth-ieee.json" "$worker" bench --compare \
        --conv-precision ieee --depth "$ieee_depth" --batch "$batch" --steps "$steps" --warmup "$warmup" \
        --device "$device"
fi

"$python" - "$out" $depths <<'PY' | tee "$out/summary.json"
import json, os, sys
out, depths = sys.argv[1], sys.argv[2:]

def load(name):
    """The JSON a step wrote, or None when that step failed."""
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None

def ratio(a, b):
    return a / b if a is not None and b else None

rows, missing = [], []
for d in depths:
    c = load(f"compare-{d}.json")
    if c is None:
        missing.append(f"compare-{d}")
        continue
    for s in c["summaries"]:
        fmt = s["memory_format"]
        py = {a: (load(f"pytorch-{a}-{d}-{fmt}.json") or {}).get("images_per_s") for a in ("resnet", "grid")}
        missing += [f"pytorch-{a}-{d}-{fmt}" for a, v in py.items() if v is None]
        best_grid = max(s["grid_sequential_images_per_s"], s["grid_wavefront_images_per_s"])
        rows.append({
            "depth": int(d), "device": c["device"], "batch": c["batch"], "memory_format": fmt,
            "resnet": s["resnet_images_per_s"], "grid_sequential": s["grid_sequential_images_per_s"],
            "grid_wavefront": s["grid_wavefront_images_per_s"],
            "wavefront_over_sequential": s["wavefront_over_sequential"],
            "pytorch_resnet": py["resnet"], "pytorch_grid": py["grid"],
            "rust_over_pytorch_resnet": ratio(s["resnet_images_per_s"], py["resnet"]),
            "rust_best_grid_over_pytorch_grid": ratio(best_grid, py["grid"]),
        })
    rows[-1]["channels_last_over_contiguous"] = c["channels_last_over_contiguous"]
summary = {"bench": rows}
o = load(f"optimizer-{depths[-1]}.json")
if o:
    summary["optimizer"] = {k: o[k] for k in ("depth", "tensors", "packed_seconds", "per_parameter_seconds", "speedup")}
ieee = [f for f in os.listdir(out) if f.endswith("-ieee.json")]
if ieee:
    t = load(ieee[0])
    summary["ieee_conv"] = {"depth": t["depth"], "summaries": t["summaries"]}
train = {}
for e in ("sequential", "wavefront"):
    r = load(f"train-grid-26-{e}.json")
    if r is None:
        missing.append(f"train-grid-26-{e}")
        continue
    train[e] = {"status": r["status"], "final_test_acc": r["final_test_acc"],
                "images_per_s": [m["images_per_s"] for m in r["epochs"]],
                "grid_exec": r["environment"].get("grid_exec")}
summary["train_grid_26"] = train
summary["missing"] = missing
print(json.dumps(summary, indent=1))
PY
log "done; JSON in $out; $failures step(s) failed"
[ "$failures" -eq 0 ]
