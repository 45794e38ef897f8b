#!/usr/bin/env python3
"""The paper's recipe in plain PyTorch, as a gridsweep program (examples/pytorch/README.md):
vgg, resnet or grid at any valid depth trained on CIFAR-10 with SGD (Nesterov), weight decay,
the step schedule, random crop + flip and per-channel normalisation (shared/SPEC.md,
"Training"), speaking the program protocol: epoch, checkpoint and result lines, resume from
its own checkpoint, SIGTERM, exit codes.

Settings come from $GRIDSWEEP_SETTINGS (JSON) and are overridden by flags of the same names:

    python train.py --arch grid --depth 26 --seed 42 --epochs 2 --train_subset 2000 --data data
"""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

import cifar
import models
import protocol
import settings as settings_mod


class Fatal(Exception):
    """An error that ends the run, with the exit code it gets."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = p.add_argument_group("settings (override $GRIDSWEEP_SETTINGS)")
    for name, (_, default, help_text) in settings_mod.FIELDS.items():
        shown = "required" if default is settings_mod._REQUIRED else f"default {default}"
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        group.add_argument(*flags, dest=name, default=None, metavar="V", help=f"{help_text} ({shown})")
    p.add_argument("--data", help="CIFAR-10 binary folder (default $GRIDSWEEP_DATA_DIR)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto (default $GRIDSWEEP_DEVICE, else auto)")
    p.add_argument("--metrics", help="file the protocol lines are appended to (default $GRIDSWEEP_METRICS, "
                                     "else stdout)")
    p.add_argument("--checkpoint_dir", "--checkpoint-dir",
                   help="checkpoint folder (default $GRIDSWEEP_CHECKPOINT_DIR; none: no checkpoints)")
    p.add_argument("--resume_epoch", "--resume-epoch", type=int,
                   help="the epoch the checkpoint folder holds; 0 starts fresh (default "
                        "$GRIDSWEEP_CHECKPOINT_EPOCH, else 0)")
    p.add_argument("--stop_after_epoch", "--stop-after-epoch", type=int,
                   help="checkpoint after this epoch and exit 75, as if preempted (to test resuming)")
    p.add_argument("--ignore", action="append", default=[], metavar="NAME",
                   help="a key of $GRIDSWEEP_SETTINGS to accept without using (repeatable, or comma-separated)")
    return p.parse_args(argv)


def pick_device(arg):
    """The torch device for --device / $GRIDSWEEP_DEVICE; Fatal(EXIT_TEMPFAIL) when CUDA is
    asked for and torch sees no GPU (this machine's problem, not the job's)."""
    name = (arg or os.environ.get("GRIDSWEEP_DEVICE") or "auto").strip()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise Fatal(f"device: {name} asked for, but torch {torch.__version__} sees no CUDA device "
                    f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})", protocol.EXIT_TEMPFAIL)
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise settings_mod.SettingsError(f"--device / GRIDSWEEP_DEVICE: {name!r} is not a device: {e}") from None


def configure(s, device):
    """Precision and determinism switches; called before any CUDA work."""
    torch.use_deterministic_algorithms(s["deterministic"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not s["deterministic"]
        torch.backends.cudnn.conv.fp32_precision = s["precision"]["conv"]
        torch.backends.cuda.matmul.fp32_precision = "tf32" if s["precision"]["matmul"] == "high" else "ieee"


def normalise(x_u8, mean, std):
    """uint8 pixels to floats normalised per channel: (x / 255 - mean) / std."""
    return (x_u8.float() / 255 - mean) / std


def augment(x_u8, pad, offsets, flips, mean, std):
    """A training batch: random crops of the uint8 images `x_u8` [B, C, H, W] from a zero
    padding of `pad` pixels (of the raw pixels, so the padding is black) at the per-image
    (row, column) `offsets` [B, 2] in 0..2*pad, normalisation, and a horizontal flip of the
    images where `flips` [B] is true (None: no flips). All batched, on the images' device."""
    if pad > 0:
        b, c, h, w = x_u8.shape
        padded = F.pad(x_u8, (pad, pad, pad, pad))
        ar_h = torch.arange(h, device=x_u8.device)
        ar_w = torch.arange(w, device=x_u8.device)
        rows = (offsets[:, 0:1] + ar_h).view(b, 1, h, 1).expand(b, c, h, w + 2 * pad)
        cols = (offsets[:, 1:2] + ar_w).view(b, 1, 1, w).expand(b, c, h, w)
        x_u8 = padded.gather(2, rows).gather(3, cols)
    x = normalise(x_u8, mean, std)
    if flips is not None:
        x = torch.where(flips.view(-1, 1, 1, 1), x.flip(3), x)
    return x


class Trainer:
    """The network, its optimizer, the data on the device and the generator behind data order
    and augmentation; one epoch at a time."""

    def __init__(self, s, data, device, stop):
        self.s, self.device, self.stop = s, device, stop
        torch.manual_seed(s["seed"])  # initialisation: on the CPU, then moved, so every device starts equal
        self.net = models.Net(s["arch"], s["depth"], init=s["init"]).to(device)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=s["lr"], momentum=s["momentum"],
                                   nesterov=s["nesterov"], weight_decay=s["weight_decay"])
        # Data order, crops and flips: a CPU generator, so the draws are the same on every device.
        self.gen = torch.Generator().manual_seed((s["seed"] * 6364136223846793005 + 1442695040888963407) % 2**63)
        self.train_x = torch.from_numpy(data["train_x"]).to(device)
        self.train_y = torch.from_numpy(data["train_y"]).to(device)
        self.test_x = torch.from_numpy(data["test_x"]).to(device)
        self.test_y = torch.from_numpy(data["test_y"]).to(device)
        self.mean = torch.tensor(cifar.MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(cifar.STD, device=device).view(1, 3, 1, 1)

    def normalise(self, x_u8):
        return normalise(x_u8, self.mean, self.std)

    def train_epoch(self, epoch):
        """Trains 0-based `epoch`; returns (metrics without test_*, diverged). A last batch of
        one image is skipped (batch norm cannot train on one). The loss is checked for being
        finite every 20 steps and at the end."""
        s, n = self.s, self.train_x.shape[0]
        lr = settings_mod.lr_at(s, epoch)
        for g in self.opt.param_groups:
            g["lr"] = lr
        perm = torch.randperm(n, generator=self.gen)
        offsets = torch.randint(0, 2 * s["crop_padding"] + 1, (n, 2), generator=self.gen)
        flips = torch.randint(0, 2, (n,), generator=self.gen).bool() if s["flip"] else None
        perm, offsets = perm.to(self.device), offsets.to(self.device)
        flips = flips.to(self.device) if flips is not None else None
        self.net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen, step, diverged, t0 = 0, 0, False, time.perf_counter()
        for start in range(0, n - 1, s["batch_size"]):
            if self.stop.requested:
                raise protocol.Stopped("SIGTERM")
            end = min(start + s["batch_size"], n)
            if end - start < 2:
                break
            idx = perm[start:end]
            x = augment(self.train_x[idx], s["crop_padding"], offsets[start:end],
                        flips[start:end] if flips is not None else None, self.mean, self.std)
            y = self.train_y[idx]
            logits = self.net(x)
            loss = F.cross_entropy(logits, y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach().double() * (end - start)
            correct += (logits.detach().argmax(1) == y).sum()
            seen, step = seen + end - start, step + 1
            if step % 20 == 0 and not torch.isfinite(loss_sum).item():
                diverged = True
                break
        train_loss = loss_sum.item() / seen
        diverged = diverged or not math.isfinite(train_loss)
        seconds = time.perf_counter() - t0
        return {"lr": lr, "train_loss": train_loss, "train_acc": 100.0 * correct.item() / seen,
                "images_per_s": seen / seconds}, diverged

    @torch.no_grad()
    def evaluate(self):
        """(test loss, test accuracy in percent), batch norm in evaluation mode."""
        self.net.eval()
        n, b = self.test_x.shape[0], self.s["eval_batch_size"]
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        for start in range(0, n, b):
            if self.stop.requested:
                raise protocol.Stopped("SIGTERM")
            logits = self.net(self.normalise(self.test_x[start:start + b]))
            y = self.test_y[start:start + b]
            loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
        return loss_sum.item() / n, 100.0 * correct.item() / n

    def state(self):
        """Everything a resumed run needs to continue bit for bit."""
        return {"model": self.net.state_dict(), "optimizer": self.opt.state_dict(),
                "data_generator": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None}

    def load(self, state):
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.gen.set_state(state["data_generator"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(state["cuda_rng"])


def result_of(history, trainer, data, resumed_from, diverged):
    """The result line's metrics: the last epoch's (test_acc null when the run diverged: a
    diverged run has no final accuracy), the best epoch beside them, the model's size."""
    last = history[-1]
    finite = [m for m in history if m["train_loss"] is not None and m["test_acc"] is not None]
    best = max(finite, key=lambda m: (m["test_acc"], -m["epoch"])) if finite else None
    s = trainer.s
    return {
        "test_acc": None if diverged else last["test_acc"],
        "test_loss": None if diverged else last["test_loss"],
        "train_loss": last["train_loss"], "train_acc": last["train_acc"],
        "best_test_acc": best["test_acc"] if best else None, "best_epoch": best["epoch"] if best else None,
        "epochs": last["epoch"], "params": models.param_count(trainer.net),
        "flops": models.flops(s["arch"], s["depth"]),
        "train_seconds": sum(m["seconds"] for m in history),
        "images_per_s": sum(m["images_per_s"] for m in history) / len(history),
        "train_images": len(data["train_y"]), "test_images": len(data["test_y"]),
        "synthetic": int(data["synthetic"]), "resumed_from_epoch": resumed_from,
    }


def run(args, stop):
    ignore = {k.strip() for item in args.ignore for k in item.split(",") if k.strip()}
    overrides = {name: getattr(args, name) for name in settings_mod.FIELDS}
    s = settings_mod.resolve(os.environ.get("GRIDSWEEP_SETTINGS"), overrides, ignore)
    models.check_depth(s["arch"], s["depth"])
    device = pick_device(args.device)
    if device.type == "cuda" and s["deterministic"]:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    configure(s, device)
    ckpt_dir = args.checkpoint_dir or os.environ.get("GRIDSWEEP_CHECKPOINT_DIR") or None
    resume = args.resume_epoch
    if resume is None:
        text = os.environ.get("GRIDSWEEP_CHECKPOINT_EPOCH") or "0"
        if not text.strip().isdigit():
            raise settings_mod.SettingsError(f"GRIDSWEEP_CHECKPOINT_EPOCH={text!r} is not an epoch number")
        resume = int(text)
    if resume > 0 and not ckpt_dir:
        raise settings_mod.SettingsError(f"resume from epoch {resume} asked for without a checkpoint folder")
    data_dir = args.data or os.environ.get("GRIDSWEEP_DATA_DIR")
    if not data_dir:
        raise settings_mod.SettingsError("no data: give --data DIR or set GRIDSWEEP_DATA_DIR")
    try:
        data = cifar.load(data_dir, s["train_subset"], s["test_subset"])
    except cifar.DataError as e:
        # Data the worker provides is the worker's to fix; a --data path is the command's.
        raise Fatal(f"data: {e}", protocol.EXIT_USAGE if args.data else protocol.EXIT_TEMPFAIL) from None
    log(f"{s['arch']}-{s['depth']} seed {s['seed']} on {device}: {len(data['train_y'])} training and "
        f"{len(data['test_y'])} test images from {data['dir']}{' (SYNTHETIC)' if data['synthetic'] else ''}")
    metrics = protocol.Metrics(args.metrics or os.environ.get("GRIDSWEEP_METRICS") or None)
    trainer = Trainer(s, data, device, stop)
    history, first = [], 0
    if resume > 0:
        state = protocol.load_checkpoint(ckpt_dir, resume)
        if state["settings"] != s:
            diff = "; ".join(f"{k}: {json.dumps(s[k])} here, {json.dumps(state['settings'].get(k))} there"
                             for k in sorted(s) if state["settings"].get(k) != s[k])
            raise protocol.CheckpointError(f"{ckpt_dir}: the checkpoint was written with other settings ({diff})")
        trainer.load(state)
        history, first = state["history"], resume
        log(f"resumed from the checkpoint of epoch {resume}")
    return train_loop(s, trainer, metrics, history, first, ckpt_dir, args.stop_after_epoch, data, resume)


def train_loop(s, trainer, metrics, history, first, ckpt_dir, stop_after, data, resumed_from):
    diverged = False
    for epoch in range(first, s["epochs"]):
        t0 = time.perf_counter()
        m, diverged = trainer.train_epoch(epoch)
        test_loss, test_acc = trainer.evaluate()
        m = {"epoch": epoch + 1, "test_acc": test_acc, "train_loss": None if diverged else m["train_loss"],
             "train_acc": m["train_acc"], "test_loss": test_loss, "lr": m["lr"],
             "seconds": time.perf_counter() - t0, "images_per_s": m["images_per_s"]}
        history.append(m)
        if ckpt_dir and not diverged:
            protocol.save_checkpoint(ckpt_dir, {"settings": s, "epoch": epoch + 1, "history": history,
                                                **trainer.state()})
        metrics.epoch(m, s["epochs"])
        if ckpt_dir and not diverged:
            metrics.checkpoint(epoch + 1)
        log(f"epoch {epoch + 1}/{s['epochs']}: lr {m['lr']:.4g} train loss {m['train_loss']} acc "
            f"{m['train_acc']:.2f}% test loss {test_loss:.4f} acc {test_acc:.2f}% ({m['seconds']:.1f} s, "
            f"{m['images_per_s']:.0f} images/s)")
        if diverged:
            log(f"diverged: the training loss of epoch {epoch + 1} is not finite")
            break
        if stop_after is not None and epoch + 1 == stop_after and epoch + 1 < s["epochs"]:
            raise protocol.Stopped(f"--stop_after_epoch {stop_after}")
        if trainer.stop.requested and epoch + 1 < s["epochs"]:
            raise protocol.Stopped("SIGTERM")
    metrics.result(result_of(history, trainer, data, resumed_from, diverged), diverged)
    return 0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    stop = protocol.StopRequest()
    try:
        return run(args, stop)
    except (settings_mod.SettingsError, models.DepthError) as e:
        log(f"error: {e}")
        return protocol.EXIT_USAGE
    except Fatal as e:
        log(f"error: {e}")
        return e.code
    except protocol.CheckpointError as e:
        log(f"error: checkpoint: {e}")
        return protocol.EXIT_FAILED
    except protocol.Stopped as e:
        log(f"stopped ({e}); a later attempt resumes from the last checkpoint")
        return protocol.EXIT_TEMPFAIL
    except torch.OutOfMemoryError as e:
        log(f"error: CUDA out of memory: {e}")
        return protocol.EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
