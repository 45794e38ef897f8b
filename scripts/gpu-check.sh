#!/usr/bin/env bash
#! The device check of issue 6, for a machine with PyTorch 2.11 (and ideally an NVIDIA GPU) but no
#! Rust and no network, given the release `worker` binary built elsewhere. It finds torch's lib
#! directory for the binary, records `worker devices`, runs `worker bench --compare` (resnet,
#! grid node by node, grid as a wavefront, each contiguous and channels-last; interleaved, one
#! process) and the PyTorch reference on the same models in both layouts at each depth, times
#! the packed against the per-parameter SGD update at the largest depth, then makes a synthetic
#! data set and trains grid-26 for 2 epochs with each grid execution. On CUDA it also runs one
#! comparison with TF32 allowed. Every figure lands as JSON in OUT_DIR; a summary goes to stdout.
#!
#!   scripts/gpu-check.sh OUT_DIR
#!
#! Environment: WORKER (the binary; default target/release/worker beside this script's repo, else
#! `worker` on PATH), PYTHON (with torch; default python3), DEVICE (cuda when torch sees a GPU,
#! else cpu). On CUDA: depths 26 98 386 1538, batch 128; on CPU (to test the script) smaller
#! settings. DEPTHS, BATCH, STEPS, WARMUP, TRAIN_IMAGES and TF32_DEPTH override them. Budget: under 8 minutes.
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

"$worker" devices --json > "$out/devices.json"
"$worker" devices >&2
"$python" -c 'import json, torch; print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
    "cudnn": torch.backends.cudnn.version(), "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
    "threads": torch.get_num_threads()}))' > "$out/python-env.json"

for d in $depths; do
    log "bench --compare depth $d"
    "$worker" bench --compare --depth "$d" --batch "$batch" --steps "$steps" --warmup "$warmup" \
        --device "$device" > "$out/compare-$d.json"
    for arch in resnet grid; do
        for fmt in contiguous channels-last; do
            log "pytorch reference $arch-$d $fmt"
            "$python" "$root/bench/pytorch_reference.py" bench --arch "$arch" --depth "$d" --batch "$batch" \
                --steps "$steps" --warmup "$warmup" --device "$device" --memory-format "$fmt" \
                > "$out/pytorch-$arch-$d-$fmt.json"
        done
    done
done
largest=${depths##* }
log "optimizer update, grid-$largest: packed vs per parameter"
"$worker" bench --optimizer --arch grid --depth "$largest" --steps 10 --device "$device" > "$out/optimizer-$largest.json"
if [ "$device" != cpu ]; then
    tf32_depth=${TF32_DEPTH:-98}
    log "bench --compare depth $tf32_depth with TF32 allowed"
    "$worker" bench --compare --tf32 --depth "$tf32_depth" --batch "$batch" --steps "$steps" --warmup "$warmup" \
        --device "$device" > "$out/compare-$tf32_depth-tf32.json"
fi

log "synthetic data ($train_images training images) and grid-26 training, 2 epochs"
"$worker" data synth --dest "$out/data" --train "$train_images" --test 512 --seed 0 2> "$out/data.log"
for exec in sequential wavefront; do
    log "train grid-26, --grid-exec $exec"
    "$worker" train --arch grid --depth 26 --epochs 2 --data "$out/data" --device "$device" \
        --grid-exec "$exec" --out "$out/train-grid-26-$exec.json" 2> "$out/train-grid-26-$exec.log"
done
rm -rf "$out/data"

"$python" - "$out" $depths <<'PY' | tee "$out/summary.json"
import json, os, sys
out, depths = sys.argv[1], sys.argv[2:]
load = lambda name: json.load(open(os.path.join(out, name)))
rows = []
for d in depths:
    c = load(f"compare-{d}.json")
    for s in c["summaries"]:
        fmt = s["memory_format"]
        py = {a: load(f"pytorch-{a}-{d}-{fmt}.json") for a in ("resnet", "grid")}
        best_grid = max(s["grid_sequential_images_per_s"], s["grid_wavefront_images_per_s"])
        rows.append({
            "depth": int(d), "device": c["device"], "batch": c["batch"], "memory_format": fmt,
            "resnet": s["resnet_images_per_s"], "grid_sequential": s["grid_sequential_images_per_s"],
            "grid_wavefront": s["grid_wavefront_images_per_s"],
            "wavefront_over_sequential": s["wavefront_over_sequential"],
            "pytorch_resnet": py["resnet"]["images_per_s"], "pytorch_grid": py["grid"]["images_per_s"],
            "rust_over_pytorch_resnet": s["resnet_images_per_s"] / py["resnet"]["images_per_s"],
            "rust_best_grid_over_pytorch_grid": best_grid / py["grid"]["images_per_s"],
        })
    rows[-1]["channels_last_over_contiguous"] = c["channels_last_over_contiguous"]
largest = depths[-1]
o = load(f"optimizer-{largest}.json")
summary = {"bench": rows, "optimizer": {k: o[k] for k in ("depth", "tensors", "packed_seconds",
                                                          "per_parameter_seconds", "speedup")}}
tf32 = [f for f in os.listdir(out) if f.endswith("-tf32.json")]
if tf32:
    t = load(tf32[0])
    summary["tf32"] = {"depth": t["depth"], "summaries": t["summaries"]}
train = {}
for e in ("sequential", "wavefront"):
    r = load(f"train-grid-26-{e}.json")
    train[e] = {"status": r["status"], "final_test_acc": r["final_test_acc"],
                "images_per_s": [m["images_per_s"] for m in r["epochs"]],
                "grid_exec": r["environment"].get("grid_exec")}
summary["train_grid_26"] = train
print(json.dumps(summary, indent=1))
PY
log "done; JSON in $out"
