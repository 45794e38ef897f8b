"""The training settings of train.py: the names, defaults and checks of the Rust worker's
TrainConfig (proto/src/job/config.rs), read from $GRIDSWEEP_SETTINGS (one JSON object) and then
overridden by command-line flags of the same names. Every error names the setting and where its
value came from.
"""
import json
import math

ARCHS = ("vgg", "resnet", "grid")
CONV_PRECISIONS = ("tf32", "ieee")
MATMUL_PRECISIONS = ("highest", "high")

# Settings in a job's JSON that this script takes without using, because they cannot change
# its numbers: `repeat` is a repetition's index (a repeated job keeps its seed).
HARMLESS = ("repeat",)


class SettingsError(ValueError):
    """A setting that is missing, unknown, of the wrong type or out of range."""


def _bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(v, str) and v.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _int(v):
    if isinstance(v, bool):
        raise ValueError("expected an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        return int(v.strip())
    raise ValueError("expected an integer")


def _float(v):
    if isinstance(v, bool):
        raise ValueError("expected a number")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return float(v.strip())
    raise ValueError("expected a number")


def _optional_int(v):
    if v is None or (isinstance(v, str) and v.strip().lower() in ("", "none", "null")):
        return None
    return _int(v)


def _floats(v):
    """A list of numbers: a JSON list, or on the command line `0.5,0.75` / `[0.5, 0.75]` / ``."""
    if isinstance(v, str):
        text = v.strip()
        v = json.loads(text) if text.startswith("[") else [x for x in text.split(",") if x.strip()]
    if not isinstance(v, list):
        raise ValueError("expected a list of numbers")
    return [_float(x) for x in v]


def _arch(v):
    if v not in ARCHS:
        raise ValueError(f"expected one of {', '.join(ARCHS)}")
    return v


def _precision(v):
    """{"conv": "tf32"|"ieee", "matmul": "highest"|"high"}; on the command line also
    `conv=ieee,matmul=high`. Missing keys keep PyTorch's defaults (tf32, highest)."""
    if isinstance(v, str):
        text = v.strip()
        v = json.loads(text) if text.startswith("{") else dict(kv.split("=", 1) for kv in text.split(",") if kv)
    if not isinstance(v, dict):
        raise ValueError("expected {\"conv\": ..., \"matmul\": ...}")
    extra = sorted(set(v) - {"conv", "matmul"})
    if extra:
        raise ValueError(f"unknown key(s) {', '.join(extra)}: expected conv and matmul")
    out = {"conv": v.get("conv", "tf32"), "matmul": v.get("matmul", "highest")}
    if out["conv"] not in CONV_PRECISIONS:
        raise ValueError(f"conv: expected one of {', '.join(CONV_PRECISIONS)}")
    if out["matmul"] not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul: expected one of {', '.join(MATMUL_PRECISIONS)}")
    return out


def _init(v):
    if v not in ("kaiming", "pytorch"):
        raise ValueError("expected kaiming or pytorch")
    return v


_REQUIRED = object()

# name: (parser, default, help). The paper's recipe (shared/SPEC.md "Training") by default.
FIELDS = {
    "arch": (_arch, _REQUIRED, "vgg (plain), resnet (sequential) or grid"),
    "depth": (_int, _REQUIRED, "6n + 2 layers (grid: 6R^2 + 2)"),
    "seed": (_int, _REQUIRED, "seeds initialisation, data order and augmentation"),
    "epochs": (_int, 300, "passes over the training set"),
    "batch_size": (_int, 128, "images per SGD step"),
    "lr": (_float, 0.1, "initial learning rate"),
    "momentum": (_float, 0.9, "SGD momentum"),
    "nesterov": (_bool, True, "Nesterov momentum (true/false)"),
    "weight_decay": (_float, 4e-4, "L2 weight decay on every parameter"),
    "lr_milestones": (_floats, [0.5, 0.75], "fractions of the epochs where the LR is multiplied by lr_gamma"),
    "lr_gamma": (_float, 0.1, "the LR factor at each milestone"),
    "warmup_epochs": (_int, 0, "epochs of linear LR warm-up"),
    "crop_padding": (_int, 4, "zero padding of the random crop; 0 disables it"),
    "flip": (_bool, True, "random horizontal flip (true/false)"),
    "train_subset": (_optional_int, None, "train on the first N training images only"),
    "test_subset": (_optional_int, None, "evaluate on the first N test images only"),
    "eval_batch_size": (_int, 500, "images per evaluation batch (speed and memory only)"),
    "deterministic": (_bool, False, "deterministic CUDA kernels (CPU runs are deterministic anyway)"),
    "precision": (_precision, {"conv": "tf32", "matmul": "highest"},
                  "CUDA fp32 precision: conv=tf32|ieee,matmul=highest|high (PyTorch's defaults)"),
    "init": (_init, "kaiming",
             "convolution init: kaiming (normal, fan-out, as the Rust worker) or pytorch (nn.Conv2d's default); "
             "not a Rust TrainConfig setting"),
}


def _parse(name, value, source):
    try:
        return FIELDS[name][0](value)
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise SettingsError(f"{source}: setting '{name}': {json.dumps(value)} is invalid: {e}") from None


def resolve(settings_json, overrides, ignore=()):
    """The settings: defaults, then the JSON object `settings_json` (a string, may be None),
    then `overrides` (name -> string from the command line; None = not given). A key of the
    JSON that is not a setting is an error unless it is in HARMLESS or `ignore`."""
    values, source = {}, {}
    if settings_json is not None and settings_json.strip():
        try:
            given = json.loads(settings_json)
        except json.JSONDecodeError as e:
            raise SettingsError(f"GRIDSWEEP_SETTINGS is not JSON: {e}") from None
        if not isinstance(given, dict):
            raise SettingsError("GRIDSWEEP_SETTINGS must be a JSON object")
        unknown = sorted(k for k in given if k not in FIELDS and k not in HARMLESS and k not in ignore)
        if unknown:
            raise SettingsError(
                f"GRIDSWEEP_SETTINGS: unknown setting(s) {', '.join(unknown)}: train.py knows "
                f"{', '.join(FIELDS)} (pass --ignore NAME for a setting meant for something else)")
        for k, v in given.items():
            if k in FIELDS:
                values[k], source[k] = _parse(k, v, "GRIDSWEEP_SETTINGS"), "GRIDSWEEP_SETTINGS"
    for k, v in overrides.items():
        if v is not None:
            values[k], source[k] = _parse(k, v, f"--{k}"), f"--{k}"
    for k, (_, default, _) in FIELDS.items():
        if k not in values:
            if default is _REQUIRED:
                raise SettingsError(f"missing setting '{k}': give --{k} or put it in GRIDSWEEP_SETTINGS")
            values[k], source[k] = (list(default) if isinstance(default, list) else
                                    dict(default) if isinstance(default, dict) else default), "default"
    _check(values, source)
    return values


def _check(s, source):
    """The ranges of config.rs's TrainConfig::validate, plus epochs >= 1 (this script always
    trains)."""
    def bad(name, reason):
        raise SettingsError(f"{source[name]}: setting '{name}' = {json.dumps(s[name])}: {reason}")

    if s["epochs"] < 1:
        bad("epochs", "must be at least 1")
    if s["batch_size"] < 2:
        bad("batch_size", "must be at least 2 (batch norm needs 2 images)")
    if not (math.isfinite(s["lr"]) and s["lr"] > 0):
        bad("lr", "must be a positive number")
    if not 0 <= s["momentum"] < 1:
        bad("momentum", "must be in [0, 1)")
    if s["nesterov"] and s["momentum"] == 0:
        bad("nesterov", "needs a positive momentum")
    if not (math.isfinite(s["weight_decay"]) and s["weight_decay"] >= 0):
        bad("weight_decay", "must be >= 0")
    if any(not 0 <= m <= 1 for m in s["lr_milestones"]):
        bad("lr_milestones", "fractions of the epochs, in [0, 1]")
    if not (math.isfinite(s["lr_gamma"]) and s["lr_gamma"] > 0):
        bad("lr_gamma", "must be positive")
    if s["warmup_epochs"] < 0 or (s["warmup_epochs"] > 0 and s["warmup_epochs"] >= s["epochs"]):
        bad("warmup_epochs", "must be >= 0 and fewer than the epochs")
    if not 0 <= s["crop_padding"] <= 16:
        bad("crop_padding", "must be in 0..=16")
    if s["train_subset"] is not None and s["train_subset"] < 2:
        bad("train_subset", "must be at least 2")
    if s["test_subset"] is not None and s["test_subset"] < 1:
        bad("test_subset", "must be at least 1")
    if s["eval_batch_size"] < 1:
        bad("eval_batch_size", "must be at least 1")
    if s["seed"] < 0:
        bad("seed", "must be >= 0")


def milestone_epochs(s):
    """The 0-based epoch at which each milestone takes effect: round(fraction x epochs), halves
    rounding up (as Rust's f64::round)."""
    return [math.floor(f * s["epochs"] + 0.5) for f in s["lr_milestones"]]


def lr_at(s, epoch):
    """The learning rate of 0-based `epoch`: linear warm-up lr x (e+1)/(w+1) over the
    `warmup_epochs`, then lr x gamma^k with k the milestones reached (the paper's 300 epochs:
    0.1 until epoch 149, 0.01 until 224, then 0.001)."""
    if epoch < s["warmup_epochs"]:
        return s["lr"] * (epoch + 1) / (s["warmup_epochs"] + 1)
    reached = sum(1 for m in milestone_epochs(s) if epoch >= m)
    return s["lr"] * s["lr_gamma"] ** reached
