#!/usr/bin/env bash
#! The device check of issue 6, for a machine with PyTorch 2.11 (and ideally an NVIDIA GPU) but no
#! Rust and no network, given the release `worker` binary built elsewhere. It finds torch's lib
#! directory for the binary, records `worker devices`, runs `worker bench --compare` (resnet,
#! grid node by node, grid as a wavefront, each contiguous and channels-last; interleaved, one
#! process) and the PyTorch reference on the same models in both layouts at each depth, times
#! the packed against the per-parameter SGD update at the largest depth, then makes a synthetic
#! data set and trains grid-26 for 2 epochs with each grid execution. Every run uses PyTorch's
#! default precision (cuDNN convolutions may use TF32), as the reference does; on CUDA one more
#! comparison runs with IEEE fp32 convolutions (`--conv-precision ieee`).
#!
#! Then the failure and determinism checks of issue 20 (`faults.json`): the prebuilt CUDA test
#! binary (`cargo test -p gridsweep-worker --test cuda --no-run` built it under target/; run with
#! --ignored on a GPU); a forced real out-of-memory error (a real coordinator and one worker
#! process: grid-1538 at a huge batch, on the CPU a big batch under `ulimit -v`) classified
#! `out-of-memory`, followed by a small job trained by the same worker process; a deterministic
#! run against one stopped after an epoch and resumed, equal bit for bit; `--conv-precision ieee`
#! against `tf32` (different losses on a GPU with TF32, equal on the CPU, which has none); and
#! `peak_memory_kind` of `worker bench` (`cuda-allocated` from the caching allocator on CUDA).
#! Every figure lands as JSON in OUT_DIR; a summary goes to stdout.
#!
#!   scripts/gpu-check.sh OUT_DIR
#!
#! `make gpu-carry` puts stripped release binaries and the CUDA test binary in target/gpu-carry/
#! (about 25 MB, under a device call's 64 MiB): carry that folder and run this script there.
#!
#! Environment: WORKER and COORDINATOR (the binaries; default target/gpu-carry/ beside this
#! script's repo, else target/release/, else target/debug/, else on PATH), CUDA_TESTS (the test
#! binary; default target/gpu-carry/cuda, else the newest target/*/deps/cuda-*), PYTHON (with torch; default python3), DEVICE (cuda when torch
#! sees a GPU, else cpu). On CUDA: depths 26 1538, batch 128; on CPU (to test the script) smaller
#! settings. DEPTHS, BATCH, STEPS, WARMUP, TRAIN_IMAGES, IEEE_DEPTH, OOM_ARCH, OOM_DEPTH,
#! OOM_BATCH and OOM_VMEM_KB (the CPU's cap) override them. Budget: under 10 minutes.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
out=$1
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
# find_bin NAME: target/release/NAME, else target/debug/NAME, else NAME on PATH.
find_bin() {
    local b
    for b in "$root/target/gpu-carry/$1" "$root/target/release/$1" "$root/target/debug/$1"; do
        if [ -x "$b" ]; then
            echo "$b"
            return
        fi
    done
    command -v "$1" || true
}
worker=${WORKER:-$(find_bin worker)}
coordinator=${COORDINATOR:-$(find_bin coordinator)}
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
    # A batch whose activations outgrow the address space the worker is allowed.
    oom_arch=${OOM_ARCH:-resnet}
    oom_depth=${OOM_DEPTH:-56}
    oom_batch=${OOM_BATCH:-1024}
    small_depth=8
else
    depths=${DEPTHS:-26 1538}
    batch=${BATCH:-128}
    steps=${STEPS:-5}
    warmup=${WARMUP:-2}
    train_images=${TRAIN_IMAGES:-5000}
    # Hundreds of GiB of activations: more than any GPU has.
    oom_arch=${OOM_ARCH:-grid}
    oom_depth=${OOM_DEPTH:-1538}
    oom_batch=${OOM_BATCH:-2048}
    small_depth=26
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

# --- Issue 20's checks: the CUDA tests, a real out-of-memory error and the next job in the same
# --- worker process, determinism across a stop and resume, the conv precision, the peak's kind.
cuda_tests=${CUDA_TESTS:-$(ls -t "$root"/target/gpu-carry/cuda "$root"/target/*/deps/cuda-* 2> /dev/null | grep -v '\.d$' | head -n 1 || true)}
if [ -n "$cuda_tests" ] && [ -x "$cuda_tests" ]; then
    # Without a GPU every test there is ignored: this only shows the binary starts here.
    ignored=$([ "$device" != cpu ] && echo --ignored || true)
    log "CUDA tests: $cuda_tests $ignored"
    # The test binary was built elsewhere: it finds the worker binary through the environment.
    try "cuda-tests" env GRIDSWEEP_WORKER_BIN="$worker" \
        sh -c '"$0" $1 --test-threads 1 > "$2" 2>&1' "$cuda_tests" "$ignored" "$out/cuda-tests.txt"
else
    log "no prebuilt CUDA test binary (cargo test -p gridsweep-worker --test cuda --no-run builds it)"
fi

# oom_check: a coordinator and one worker process; the big job must fail out-of-memory and the
# small one then complete on the same worker, which is still running.
oom_check() {
    local dir=$out/oom port
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ -z "$coordinator" ] || [ ! -x "$coordinator" ]; then
        log "no coordinator binary (set COORDINATOR=/path/to/coordinator)"
        return 1
    fi
    port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$dir/oom.yaml" << YAML
name: oom
data: {kind: synthetic, train: $oom_batch, test: 64, seed: 3}
train: {epochs: 1, batch_size: 32}
axes: {arch: [resnet], depth: [$small_depth], seed: [1]}
include:
  - {arch: $oom_arch, depth: $oom_depth, seed: 1, batch_size: $oom_batch}
retry: {max_attempts: 1}
lease_ttl_s: 60
YAML
    "$coordinator" run "$dir/oom.yaml" --listen "127.0.0.1:$port" --http off --local-workers 0 \
        --state "$dir/state" --out "$dir/out" > "$dir/coordinator.log" 2>&1 &
    local cpid=$! wpid
    (
        # The CPU has no device memory to run out of: cap the worker's address space instead.
        if [ "$device" = cpu ]; then ulimit -v "${OOM_VMEM_KB:-6291456}"; fi
        exec "$worker" --coordinator "http://127.0.0.1:$port" --device "$device" --work-dir "$dir/work"
    ) 2> "$dir/worker.log" &
    wpid=$!
    local seen=1 deadline=$(($(date +%s) + 300))
    while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$wpid" 2> /dev/null; do
        "$coordinator" status --connect "http://127.0.0.1:$port" --json > "$dir/status.json" 2> /dev/null || true
        if "$python" - "$dir/status.json" "$oom_arch" "$oom_depth" << 'PY'
import json, sys
try:
    jobs = json.load(open(sys.argv[1]))["jobs"]
except (OSError, ValueError, KeyError):
    sys.exit(1)
big = [j for j in jobs if j["arch"] == sys.argv[2] and j["depth"] == int(sys.argv[3])]
small = [j for j in jobs if j not in big]
sys.exit(0 if big and big[0].get("error_kind") == "out-of-memory" and small and small[0]["state"] == "completed" else 1)
PY
        then
            seen=0
            break
        fi
        sleep 2
    done
    local alive=false
    kill -0 "$wpid" 2> /dev/null && alive=true
    kill -TERM "$wpid" "$cpid" 2> /dev/null || true
    wait "$wpid" "$cpid" 2> /dev/null || true
    "$python" - "$dir" "$alive" "$oom_arch-$oom_depth" "$oom_batch" > "$out/oom.json" << 'PY'
import json, os, sys
d, alive = sys.argv[1], sys.argv[2] == "true"
try:
    jobs = json.load(open(os.path.join(d, "status.json")))["jobs"]
except (OSError, ValueError, KeyError):
    jobs = []
log = open(os.path.join(d, "worker.log"), errors="replace").read()
print(json.dumps({"big_job": sys.argv[3], "big_batch": int(sys.argv[4]),
                  "jobs": [{k: j.get(k) for k in ("arch", "depth", "state", "attempts", "error_kind", "error")} for j in jobs],
                  "worker_still_running": alive, "worker_registrations": log.count("registered with"),
                  "classified_as_a_bare_panic": "training panicked" in log}, indent=1))
PY
    [ "$seen" -eq 0 ] && [ "$alive" = true ]
}
log "out of memory: $oom_arch-$oom_depth at batch $oom_batch, then resnet-$small_depth in the same worker"
try "oom-then-train" oom_check

# Deterministic: whole, then stopped after an epoch and resumed; and the conv precision.
det=(--arch resnet --depth "$small_depth" --batch-size 32 --data "$out/data" --device "$device" --deterministic)
log "deterministic resnet-$small_depth: whole, then stopped after 1 epoch and resumed"
rm -rf "$out/det-checkpoint"
try "det-whole" "$worker" train "${det[@]}" --epochs 2 --out "$out/det-whole.json" 2> "$out/det-whole.log"
try "det-stopped" "$worker" train "${det[@]}" --epochs 2 --checkpoint-dir "$out/det-checkpoint" --stop-after 1 \
    --out "$out/det-stopped.json" 2> "$out/det-stopped.log"
try "det-resumed" "$worker" train "${det[@]}" --epochs 2 --checkpoint-dir "$out/det-checkpoint" --resume \
    --out "$out/det-resumed.json" 2> "$out/det-resumed.log"
for p in ieee tf32; do
    log "deterministic resnet-$small_depth, 1 epoch, --conv-precision $p"
    try "precision-$p" "$worker" train "${det[@]}" --epochs 1 --conv-precision "$p" \
        --out "$out/precision-$p.json" 2> "$out/precision-$p.log"
done
log "bench resnet-26: the peak memory's kind"
try "peak" run_to "$out/peak.json" "$worker" bench --arch resnet --depth 26 --batch "$batch" --steps "$steps" \
    --warmup "$warmup" --device "$device"
try "fault-checks" "$python" - "$out" "$device" << 'PY'
import json, os, sys
out, device = sys.argv[1], sys.argv[2]
def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None
problems, checks = [], {}
oom = load("oom.json") or {}
checks["oom"] = oom
kinds = {f'{j["arch"]}-{j["depth"]}': (j["state"], j["error_kind"]) for j in oom.get("jobs", [])}
if kinds.get(oom.get("big_job"), (None, None))[1] != "out-of-memory":
    problems.append(f"the big job was not classified out-of-memory: {kinds}")
if oom.get("classified_as_a_bare_panic"):
    problems.append("a libtorch error was reported as a bare panic, not classified")
if not any(s == "completed" for s, _ in kinds.values()) or not oom.get("worker_still_running"):
    problems.append("the small job did not complete in the same, still running worker process")
whole, resumed = load("det-whole.json"), load("det-resumed.json")
fields = ("train_loss", "train_acc", "test_loss", "test_acc")
if whole and resumed:
    a = [[m[k] for k in fields] for m in whole["epochs"]]
    b = [[m[k] for k in fields] for m in resumed["epochs"]]
    checks["determinism"] = {"whole": a, "stopped_and_resumed": b, "equal": a == b,
                             "resumed_from_epoch": resumed["resumed_from_epoch"],
                             "deterministic": resumed["environment"].get("deterministic")}
    if a != b or resumed["resumed_from_epoch"] != 1:
        problems.append("a stopped and resumed deterministic run differs from the whole run")
else:
    problems.append("the determinism runs did not finish")
ieee, tf32 = load("precision-ieee.json"), load("precision-tf32.json")
if ieee and tf32:
    li, lt = ieee["epochs"][0]["train_loss"], tf32["epochs"][0]["train_loss"]
    checks["precision"] = {"ieee_train_loss": li, "tf32_train_loss": lt, "differ": li != lt}
    # The CPU has no TF32: the switch changes nothing there.
    if (li != lt) != (device != "cpu"):
        problems.append(f"--conv-precision ieee vs tf32 on {device}: losses {li} and {lt}")
else:
    problems.append("the precision runs did not finish")
peak = load("peak.json")
checks["peak_memory_kind"] = peak and peak.get("peak_memory_kind")
want = "cpu-max-rss" if device == "cpu" else "cuda-allocated"
if checks["peak_memory_kind"] != want:
    problems.append(f"peak_memory_kind {checks['peak_memory_kind']}, expected {want}")
checks["problems"] = problems
json.dump(checks, open(os.path.join(out, "faults.json"), "w"), indent=1)
for p in problems:
    print("gpu-check:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
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
    ieee_depth=${IEEE_DEPTH:-26}
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
ieee = [f for f in os.listdir(out) if f.startswith("compare-") and f.endswith("-ieee.json")]
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
summary["faults"] = load("faults.json")
summary["missing"] = missing
print(json.dumps(summary, indent=1))
PY
log "done; JSON in $out; $failures step(s) failed"
[ "$failures" -eq 0 ]
