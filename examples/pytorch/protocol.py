"""gridsweep's program protocol (PROGRAM-PROTOCOL.md, the README's "Programs" section) as
train.py speaks it: JSON lines appended to $GRIDSWEEP_METRICS (epoch, checkpoint, result), the
checkpoint file in $GRIDSWEEP_CHECKPOINT_DIR written atomically, the exit codes, and SIGTERM
turned into a request to stop at the next step.
"""
import json
import math
import os
import signal
import sys

import torch

# Exit codes. 0: a result line was written (completed or diverged).
EXIT_FAILED = 1  # the job's failure (an attempt): a bug, a CUDA out-of-memory, a bad checkpoint
EXIT_USAGE = 2  # bad settings or flags, or data given with --data that is missing or corrupt
EXIT_TEMPFAIL = 75  # not the job's fault, try again elsewhere: SIGTERM, no GPU, bad worker data

CHECKPOINT_FILE = "state.pt"
CHECKPOINT_FORMAT = "gridsweep-examples-pytorch/1"


def _clean(value):
    """Numbers as JSON can hold them: non-finite floats become null (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


class Metrics:
    """Appends one JSON object per line to `path` (stdout when None), flushed as written."""

    def __init__(self, path):
        self._out = open(path, "a", encoding="utf-8") if path else sys.stdout

    def write(self, obj):
        self._out.write(json.dumps(_clean(obj), allow_nan=False) + "\n")
        self._out.flush()

    def epoch(self, metrics, total):
        """`{"epoch": k, "epochs": total, <metric>: number | null, ...}`."""
        self.write({"epoch": metrics["epoch"], "epochs": total,
                    **{k: v for k, v in metrics.items() if k != "epoch"}})

    def checkpoint(self, epoch):
        """`{"checkpoint": true, "epoch": k}`: the state for the end of epoch k is on disk."""
        self.write({"checkpoint": True, "epoch": epoch})

    def result(self, result, diverged):
        """`{"result": {...}}`, with `"diverged": true` beside it when the loss went non-finite."""
        self.write({"result": result, **({"diverged": True} if diverged else {})})


def save_checkpoint(directory, state):
    """Writes `state` (a dict for torch.save) as directory/state.pt: a temporary name, fsync,
    rename over the old file, fsync of the folder; a reader sees the old file or the new one."""
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, CHECKPOINT_FILE)
    tmp = final + ".tmp"
    with open(tmp, "wb") as f:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointError(Exception):
    """A checkpoint that should be there and is not, or does not fit the job."""


def load_checkpoint(directory, epoch):
    """The state in directory/state.pt, which must hold the end of epoch `epoch`."""
    path = os.path.join(directory, CHECKPOINT_FILE)
    if not os.path.isfile(path):
        present = ", ".join(sorted(os.listdir(directory))) if os.path.isdir(directory) else "no such folder"
        raise CheckpointError(f"{path}: missing, yet GRIDSWEEP_CHECKPOINT_EPOCH is {epoch} (the folder holds: "
                              f"{present or 'nothing'})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged file raises whatever the unpickler meets
        raise CheckpointError(f"{path}: unreadable: {e}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a checkpoint of this script (format {CHECKPOINT_FORMAT})")
    if state["epoch"] != epoch:
        raise CheckpointError(f"{path}: holds epoch {state['epoch']}, but GRIDSWEEP_CHECKPOINT_EPOCH is {epoch}")
    return state


class StopRequest:
    """SIGTERM sets `requested`; the training loop checks it between steps and stops there
    (a checkpoint in progress is finished first, since it is only checked between steps)."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, signum, frame):
        self.requested = True


class Stopped(Exception):
    """Training stopped before its end: SIGTERM, or --stop_after_epoch."""
