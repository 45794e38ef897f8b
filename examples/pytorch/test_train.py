"""Tests of examples/pytorch: the networks' sizes against Table 1, the settings, the data checks,
augmentation, and train.py as a process speaking the program protocol (epoch, checkpoint and
result lines, determinism, stop-then-resume equal to an uninterrupted run bit for bit, SIGTERM,
divergence, exit codes). Needs only torch and numpy; a tiny synthetic set is written here.

    ~/.cache/gridsweep/torch-2.11.0/venv/bin/python examples/pytorch/test_train.py
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import cifar  # noqa: E402
import models  # noqa: E402
import settings  # noqa: E402
import train  # noqa: E402

# (arch, depth, params, FLOPs): Table 1 at full precision (shared/paper/SUMMARY.md; thop's
# counts of these networks).
TABLE1 = [
    ("vgg", 26, 366_938, 55_694_016), ("vgg", 98, 1_533_530, 228_315_840),
    ("vgg", 386, 6_199_898, 918_803_136), ("vgg", 1538, 24_865_370, 3_680_752_320),
    ("resnet", 26, 369_690, 56_005_312), ("resnet", 98, 1_536_282, 228_627_136),
    ("resnet", 386, 6_202_650, 919_114_432), ("resnet", 1538, 24_868_122, 3_681_063_616),
    ("grid", 26, 369_690, 56_005_312), ("grid", 98, 1_536_282, 228_627_136),
    ("grid", 386, 6_202_650, 919_114_432), ("grid", 1538, 24_868_122, 3_681_063_616),
]
TINY = {"arch": "grid", "depth": 8, "seed": 7, "epochs": 3, "batch_size": 16, "eval_batch_size": 32}
# Epoch-line keys that measure time, not numbers: excluded when runs are compared.
TIMING = ("seconds", "images_per_s", "train_seconds", "resumed_from_epoch")


class Models(unittest.TestCase):
    def test_table1_params_and_flops(self):
        for arch, depth, params, flops in TABLE1:
            with torch.device("meta"):
                net = models.Net(arch, depth)
            self.assertEqual(models.param_count(net), params, f"{arch}-{depth}")
            self.assertEqual(models.flops(arch, depth), flops, f"{arch}-{depth}")

    def test_depths_that_do_not_fit_are_errors(self):
        for arch, depth, words in (("grid", 20, "nearest valid depths: 8 or 26"), ("resnet", 27, "26 or 32"),
                                   ("vgg", 7, "8"), ("grid", 0, "8")):
            with self.assertRaises(models.DepthError) as e:
                models.Net(arch, depth)
            self.assertIn(f"depth {depth} is not valid for {arch}", str(e.exception))
            self.assertIn(words, str(e.exception))
        with self.assertRaisesRegex(models.DepthError, "unknown architecture 'densenet'"):
            models.check_depth("densenet", 26)

    def test_names_are_the_workers(self):
        names = set(models.Net("grid", 26).state_dict())
        for n in ("stem.conv.weight", "stage2.node_0_0.shortcut.conv.weight", "stage2.node_1_1.conv1.weight",
                  "stage3.node_1_1.bn2.running_var", "fc.bias"):
            self.assertIn(n, names)
        self.assertIn("stage2.block_0.shortcut.bn.weight", set(models.Net("resnet", 26).state_dict()))
        self.assertFalse(any("shortcut" in n for n in models.Net("vgg", 26).state_dict()))

    def test_grid_node_takes_the_mean_of_its_parents(self):
        torch.manual_seed(0)
        stage = models.Grid(4, 4, 1, 2)
        x = torch.randn(2, 4, 8, 8)
        n = {k: stage[f"node_{k}"] for k in ("0_0", "0_1", "1_0", "1_1")}
        a = n["0_0"](x)
        expected = n["1_1"]((n["0_1"](a) + n["1_0"](a)) / 2)
        torch.testing.assert_close(stage(x), expected, rtol=0, atol=0)


class Settings(unittest.TestCase):
    def resolve(self, env=None, **flags):
        overrides = {k: None for k in settings.FIELDS}
        overrides.update(flags)
        return settings.resolve(json.dumps(env) if env is not None else None, overrides)

    def test_defaults_are_the_papers(self):
        s = self.resolve({"arch": "resnet", "depth": 26, "seed": 42})
        self.assertEqual((s["epochs"], s["batch_size"], s["lr"], s["momentum"], s["nesterov"], s["weight_decay"]),
                         (300, 128, 0.1, 0.9, True, 4e-4))
        self.assertEqual((s["lr_milestones"], s["lr_gamma"], s["crop_padding"], s["flip"]), ([0.5, 0.75], 0.1, 4, True))
        lrs = [settings.lr_at(s, e) for e in (0, 149, 150, 224, 225, 299)]
        self.assertEqual([round(x, 12) for x in lrs], [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])

    def test_warmup_and_rounding(self):
        s = self.resolve({"arch": "vgg", "depth": 8, "seed": 1, "epochs": 5, "warmup_epochs": 3, "lr": 0.4})
        self.assertEqual([round(settings.lr_at(s, e), 12) for e in range(3)], [0.1, 0.2, 0.3])
        self.assertEqual(settings.milestone_epochs(s), [3, 4])  # 2.5 and 3.75 round up, as Rust's round

    def test_flags_override_the_json(self):
        s = self.resolve({"arch": "resnet", "depth": 26, "seed": 42, "lr": 0.1}, lr="0.05", flip="false",
                         lr_milestones="0.3,0.6", train_subset="null", precision="conv=ieee")
        self.assertEqual((s["lr"], s["flip"], s["lr_milestones"], s["train_subset"]), (0.05, False, [0.3, 0.6], None))
        self.assertEqual(s["precision"], {"conv": "ieee", "matmul": "highest"})

    def test_errors_name_the_setting(self):
        base = {"arch": "resnet", "depth": 26, "seed": 42}
        cases = [({**base, "lr_schedule": "cos", "warmup": 1}, "unknown setting(s) lr_schedule, warmup"),
                 ({**base, "depth": "deep"}, "setting 'depth'"), ({**base, "nesterov": 1}, "setting 'nesterov'"),
                 ({**base, "batch_size": 1}, "'batch_size' = 1: must be at least 2"),
                 ({"arch": "resnet", "depth": 26}, "missing setting 'seed'"),
                 ({**base, "momentum": 0, "nesterov": True}, "'nesterov'"),
                 ({**base, "precision": {"conv": "fp16"}}, "setting 'precision'")]
        for env, words in cases:
            with self.assertRaises(settings.SettingsError) as e:
                self.resolve(env)
            self.assertIn(words, str(e.exception))
        with self.assertRaisesRegex(settings.SettingsError, "--lr: setting 'lr'"):
            self.resolve(base, lr="fast")

    def test_harmless_and_ignored_keys(self):
        base = {"arch": "resnet", "depth": 26, "seed": 42, "repeat": 1, "impl": "pytorch"}
        with self.assertRaisesRegex(settings.SettingsError, "unknown setting.s. impl"):
            self.resolve(base)
        overrides = {k: None for k in settings.FIELDS}
        self.assertEqual(settings.resolve(json.dumps(base), overrides, ignore={"impl"})["depth"], 26)


class Data(unittest.TestCase):
    def test_checks_name_the_file(self):
        with tempfile.TemporaryDirectory() as d:
            cifar.write_synthetic(d, 10, 4)
            self.assertEqual(len(cifar.load(d)["train_y"]), 10)
            os.remove(os.path.join(d, "data_batch_3.bin"))
            with self.assertRaisesRegex(cifar.DataError, "data_batch_3.bin: missing"):
                cifar.load(d)
            cifar.write_synthetic(d, 10, 4)
            with open(os.path.join(d, "test_batch.bin"), "ab") as f:
                f.write(b"x")
            with self.assertRaisesRegex(cifar.DataError, "test_batch.bin: 12293 bytes is not a whole"):
                cifar.load(d)
            cifar.write_synthetic(d, 10, 4)
            os.remove(os.path.join(d, "SYNTHETIC"))  # now it claims to be the real set
            with self.assertRaisesRegex(cifar.DataError, "data_batch_1.bin: 2 records, CIFAR-10's files hold 10000"):
                cifar.load(d)

    def test_parent_folder_and_subsets(self):
        with tempfile.TemporaryDirectory() as d:
            cifar.write_synthetic(os.path.join(d, cifar.SET_DIR), 20, 6)
            full = cifar.load(d)
            sub = cifar.load(d, train_subset=7, test_subset=100)
            self.assertTrue(full["synthetic"])
            self.assertEqual((len(sub["train_y"]), len(sub["test_y"])), (7, 6))
            self.assertTrue((sub["train_x"] == full["train_x"][:7]).all())

    def test_crops_are_windows_of_the_padding_and_flips_mirror(self):
        g = torch.Generator().manual_seed(3)
        x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=g)
        mean, std = torch.zeros(1, 3, 1, 1), torch.ones(1, 3, 1, 1) / 255  # identity normalisation
        offsets = torch.tensor([[0, 0], [4, 4], [1, 3], [2, 2], [4, 0], [0, 4]])
        flips = torch.tensor([False, True, False, True, False, True])
        out = train.augment(x, 2, offsets, flips, mean, std)
        padded = torch.nn.functional.pad(x, (2, 2, 2, 2)).float()
        for i, (r, c) in enumerate(offsets.tolist()):
            window = padded[i, :, r:r + 8, c:c + 8]
            # Pixels are whole numbers: a wrong one is off by >= 1, rounding by < 1e-4.
            torch.testing.assert_close(out[i], window.flip(2) if flips[i] else window, rtol=0, atol=1e-4)


class Process(unittest.TestCase):
    """train.py run as gridsweep runs a program: settings in the environment, metrics appended
    to a file, the checkpoint folder its own."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.data = cifar.write_synthetic(os.path.join(cls.tmp.name, "data"), 64, 24, seed=5)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def start(self, name, settings_=None, resume=0, args=(), data_env=True):
        work = os.path.join(self.tmp.name, name)
        os.makedirs(work, exist_ok=True)
        metrics = os.path.join(work, "metrics.jsonl")
        open(metrics, "a").close()
        env = {**os.environ, "GRIDSWEEP_SETTINGS": json.dumps(settings_ or TINY), "GRIDSWEEP_METRICS": metrics,
               "GRIDSWEEP_CHECKPOINT_DIR": os.path.join(work, "ckpt"), "GRIDSWEEP_CHECKPOINT_EPOCH": str(resume),
               "GRIDSWEEP_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "GRIDSWEEP_JOB_ID": "0123456789ab"}
        if data_env:
            env["GRIDSWEEP_DATA_DIR"] = self.data
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "train.py"), *args], cwd=work, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return proc, metrics, os.path.join(work, "ckpt")

    def run_job(self, name, settings_=None, resume=0, args=(), data_env=True):
        proc, metrics, ckpt = self.start(name, settings_, resume, args, data_env)
        out, err = proc.communicate(timeout=300)
        with open(metrics) as f:
            lines = [json.loads(line) for line in f]
        return proc.returncode, lines, err, ckpt

    def test_protocol_lines(self):
        code, lines, err, ckpt = self.run_job("protocol")
        self.assertEqual(code, 0, err)
        kinds = ["epoch" if "test_acc" in m else "checkpoint" if "checkpoint" in m else "result" for m in lines]
        self.assertEqual(kinds, ["epoch", "checkpoint"] * 3 + ["result"])
        for k, m in enumerate(lines[0:6:2], start=1):
            self.assertEqual(set(m), {"epoch", "epochs", "test_acc", "train_loss", "train_acc", "test_loss", "lr",
                                      "seconds", "images_per_s"})
            self.assertEqual((m["epoch"], m["epochs"]), (k, 3))
            self.assertTrue(0 <= m["test_acc"] <= 100)
        self.assertEqual([m["epoch"] for m in lines[1:6:2]], [1, 2, 3])
        # 3 epochs: both milestones (round(1.5) = round(2.25) = 2) take effect at the third.
        self.assertEqual([m["lr"] for m in lines[0:6:2]], [0.1, 0.1, 0.1 * 0.1 ** 2])
        result = lines[-1]["result"]
        self.assertNotIn("diverged", lines[-1])
        self.assertEqual(result["test_acc"], lines[4]["test_acc"])
        self.assertEqual((result["params"], result["flops"], result["epochs"]), (78_042, models.flops("grid", 8), 3))
        self.assertEqual((result["train_images"], result["test_images"], result["synthetic"]), (64, 24, 1))
        self.assertEqual(os.listdir(ckpt), ["state.pt"])  # no temporary file left behind
        self.assertIn("(SYNTHETIC)", err)

    def test_same_seed_same_numbers_other_seed_others(self):
        runs = [self.run_job(f"det-{k}", {**TINY, "epochs": 1, "seed": seed})[1] for k, seed in enumerate((7, 7, 8))]
        numbers = [[{k: v for k, v in m.items() if k not in TIMING} for m in (r[0], r[-1]["result"])] for r in runs]
        self.assertEqual(numbers[0], numbers[1])
        self.assertNotEqual(numbers[0][0]["train_loss"], numbers[2][0]["train_loss"])

    def test_stop_then_resume_equals_uninterrupted(self):
        code, whole, err, whole_ckpt = self.run_job("whole")
        self.assertEqual(code, 0, err)
        code, first, err, ckpt = self.run_job("parts", args=("--stop_after_epoch", "1"))
        self.assertEqual(code, 75, err)
        self.assertEqual([m.get("epoch") for m in first], [1, 1])  # epoch 1 and its checkpoint, no result
        code, rest, err, ckpt = self.run_job("parts", resume=1)
        self.assertEqual(code, 0, err)
        self.assertIn("resumed from the checkpoint of epoch 1", err)
        strip = lambda ms: [{k: v for k, v in m.items() if k not in TIMING} for m in ms]  # noqa: E731
        self.assertEqual(strip(rest[2:-1]), strip(whole[2:-1]))  # epochs 2, 3 and their checkpoint lines
        self.assertEqual(strip([rest[-1]["result"]]), strip([whole[-1]["result"]]))
        self.assertEqual(rest[-1]["result"]["resumed_from_epoch"], 1)
        a = torch.load(os.path.join(whole_ckpt, "state.pt"), weights_only=True)
        b = torch.load(os.path.join(ckpt, "state.pt"), weights_only=True)
        for name, t in a["model"].items():
            self.assertTrue(torch.equal(t, b["model"][name]), name)
        for k, st in a["optimizer"]["state"].items():
            self.assertTrue(torch.equal(st["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"]))
        self.assertTrue(torch.equal(a["data_generator"], b["data_generator"]))

    def test_sigterm_stops_promptly_and_leaves_the_last_checkpoint(self):
        proc, metrics, ckpt = self.start("sigterm", {**TINY, "epochs": 200})
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            with open(metrics) as f:
                if any('"checkpoint"' in line for line in f):
                    break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        self.assertEqual(proc.returncode, 75, err)
        self.assertIn("stopped (SIGTERM)", err)
        with open(metrics) as f:
            lines = [json.loads(line) for line in f]
        self.assertFalse(any("result" in m for m in lines))
        last = [m["epoch"] for m in lines if m.get("checkpoint")][-1]
        self.assertEqual(torch.load(os.path.join(ckpt, "state.pt"), weights_only=True)["epoch"], last)

    def test_divergence_is_a_result(self):
        code, lines, err, _ = self.run_job("diverge", {**TINY, "epochs": 2, "lr": 1e30, "weight_decay": 0})
        self.assertEqual(code, 0, err)
        self.assertTrue(lines[-1]["diverged"])
        self.assertIsNone(lines[-1]["result"]["test_acc"])
        self.assertIsNone(lines[0]["train_loss"])
        self.assertFalse(any(m.get("checkpoint") for m in lines))

    def test_exit_codes(self):
        code, _, err, _ = self.run_job("badarch", {**TINY, "depth": 20})
        self.assertEqual(code, 2, err)
        self.assertIn("depth 20 is not valid for grid", err)
        code, _, err, _ = self.run_job("unknown", {**TINY, "optimizer": "adam"})
        self.assertEqual((code, "unknown setting(s) optimizer" in err), (2, True), err)
        missing = os.path.join(self.tmp.name, "nowhere")
        code, _, err, _ = self.run_job("nodata", args=("--data", missing))
        self.assertEqual(code, 2, err)
        self.assertIn(f"{missing}: no such data folder", err)
        code, _, err, _ = self.run_job("baddata", args=("--ignore", "x"), data_env=False)
        self.assertEqual(code, 2, err)
        self.assertIn("no data: give --data DIR or set GRIDSWEEP_DATA_DIR", err)
        code, _, err, _ = self.run_job("resume-missing", resume=2)
        self.assertEqual(code, 1, err)
        self.assertIn("state.pt: missing, yet GRIDSWEEP_CHECKPOINT_EPOCH is 2", err)


if __name__ == "__main__":
    unittest.main()
