"""A tiny training program for gridsweep's end-to-end tests (no torch): it speaks the program
protocol (the README's "Programs" section) and fakes training. Settings, from
$GRIDSWEEP_SETTINGS: epochs (default 3), lr and seed (the "accuracy" is 50 + 100 lr + seed +
epoch / 10, so tables can be checked by hand), sleep (seconds per epoch, default 0.1), and the
faults: fail (exit 1 after a message on stderr), no_result (exit 0 without a result line),
oom (a CUDA-style out-of-memory message, exit 1), tempfail (exit 75), pidfile (start a
grandchild `sleep 300` and write "child grandchild" pids to PIDFILE.ATTEMPT); length (the epochs
under another name, so that only the epoch lines' `epochs` tell gridsweep the total), and
report_data_dir (the result says `data_dir_set`: 1 when $GRIDSWEEP_DATA_DIR is set, else 0);
diverge (from epoch 2 on the loss is NaN, written as Python's json.dumps writes it: the bare word
NaN, and so is the result's train_loss, with no "diverged" key).
"""
import json
import os
import subprocess
import sys
import time

settings = json.loads(os.environ["GRIDSWEEP_SETTINGS"])
metrics_path = os.environ["GRIDSWEEP_METRICS"]
ck_dir = os.environ["GRIDSWEEP_CHECKPOINT_DIR"]
start = int(os.environ["GRIDSWEEP_CHECKPOINT_EPOCH"])
epochs = int(settings.get("epochs", settings.get("length", 3)))
lr, seed = float(settings.get("lr", 0.1)), int(settings.get("seed", 0))
print(f"toy: job {os.environ['GRIDSWEEP_JOB_ID']} attempt {os.environ['GRIDSWEEP_ATTEMPT']} from epoch {start}",
      file=sys.stderr, flush=True)

if settings.get("fail"):
    print("toy: deliberate failure in epoch 1", file=sys.stderr, flush=True)
    sys.exit(1)
if settings.get("oom"):
    print("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", file=sys.stderr, flush=True)
    sys.exit(1)
if settings.get("tempfail"):
    sys.exit(75)
if settings.get("pidfile"):
    grandchild = subprocess.Popen(["sleep", "300"])
    with open(f"{settings['pidfile']}.{os.environ['GRIDSWEEP_ATTEMPT']}", "w") as f:
        f.write(f"{os.getpid()} {grandchild.pid}\n")

if start > 0:
    with open(os.path.join(ck_dir, "state.json")) as f:
        state = json.load(f)
    assert state["epoch"] == start, f"checkpoint holds epoch {state['epoch']}, told {start}"
ran = 0
with open(metrics_path, "a") as out:
    for epoch in range(start + 1, epochs + 1):
        time.sleep(float(settings.get("sleep", 0.1)))
        acc = 50 + 100 * lr + seed + epoch / 10
        loss = float("nan") if settings.get("diverge") and epoch >= 2 else 1.0 / epoch
        out.write(json.dumps({"epoch": epoch, "epochs": epochs, "test_acc": acc, "train_loss": loss}) + "\n")
        out.flush()
        tmp = os.path.join(ck_dir, "state.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"epoch": epoch}, f)
        os.replace(tmp, os.path.join(ck_dir, "state.json"))
        out.write(json.dumps({"checkpoint": True, "epoch": epoch}) + "\n")
        out.flush()
        ran += 1
    if not settings.get("no_result"):
        result = {"test_acc": acc, "resumed_from": start, "epochs_run": ran}
        if settings.get("diverge"):
            result["train_loss"] = float("nan")
        if settings.get("report_data_dir"):
            result["data_dir_set"] = 1 if "GRIDSWEEP_DATA_DIR" in os.environ else 0
        out.write(json.dumps({"result": result}) + "\n")
print("toy: done", file=sys.stderr, flush=True)
