//! The TensorBoard event files read back by a reader nobody here wrote: tbparse (with
//! TensorBoard's own event loading) from PyPI, installed by this test into a venv under
//! `target/tb-venv` and reused by later runs. A sweep of two jobs goes through the store as a
//! worker would report it (epochs in heartbeats, then a result with a gradient analysis);
//! `live::write_tensorboard` writes the event files; Python reads every scalar and the
//! histogram back and the test checks them against what was reported. A program sweep's epoch
//! lines are read back the same way, each number of a line a scalar under its key.
//!
//! Skipped, saying so, only when the venv cannot be made because PyPI (or `python3 -m venv`)
//! is unreachable on this machine; any other failure fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;

use coordinator::live;
use coordinator::store::{Grant, Store};
use coordinator::tensorboard::{DIR, HISTOGRAM_TAG, Writer};
use gridsweep_proto::job::{AnalysisConfig, Arch, DataSpec, Goal, JobSpec, Metric, ProgramSpec, TrainConfig};
use gridsweep_proto::result::{GradReport, HIST_BINS, RunStatus, TrainResult};
use serde_json::{Value, json};

/// The venv's python with tbparse, made once; None (with the reason printed) when PyPI is
/// unreachable.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tb-venv");
    let py = venv.join("bin/python");
    let ready = |py: &Path| Command::new(py).args(["-c", "import tbparse"]).output().is_ok_and(|o| o.status.success());
    if ready(&py) {
        return Some(py);
    }
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).output().expect("python3 runs");
    if !made.status.success() {
        eprintln!("SKIPPED: cannot make a venv: {}", String::from_utf8_lossy(&made.stderr));
        return None;
    }
    let pip = Command::new(&py).args(["-m", "pip", "install", "-q", "tbparse"]).output().expect("pip runs");
    if !pip.status.success() {
        let err = String::from_utf8_lossy(&pip.stderr);
        let offline = [
            "Could not find a version",
            "NewConnectionError",
            "Temporary failure in name resolution",
            "Network is unreachable",
        ];
        assert!(offline.iter().any(|o| err.contains(o)), "pip install tbparse failed: {err}");
        eprintln!("SKIPPED: PyPI unreachable, tbparse not installed: {err}");
        return None;
    }
    assert!(ready(&py), "tbparse installed but not importable");
    Some(py)
}

/// What tbparse reads: every scalar as [dir, tag, step, value] and every histogram as
/// [dir, tag, step, counts, limits] (tbparse gives a frame without columns when there are none).
const READER: &str = r#"
import json, sys
from tbparse import SummaryReader
r = SummaryReader(sys.argv[1], extra_columns={"dir_name"})
s = r.scalars
h = r.histograms
col = lambda frame, name: frame[name] if name in frame else []
print(json.dumps({
    "scalars": [[d, t, int(st), float(v)] for d, t, st, v in zip(*(col(s, c) for c in ["dir_name", "tag", "step", "value"]))],
    "histograms": [[d, t, int(st), [float(c) for c in cs], [float(l) for l in ls]]
                   for d, t, st, cs, ls in zip(*(col(h, c) for c in ["dir_name", "tag", "step", "counts", "limits"]))],
}))
"#;

/// A gradient analysis with a histogram of `HIST_BINS` bins filled at two places.
fn analysis() -> GradReport {
    let mut histogram = vec![0u64; HIST_BINS];
    histogram[40] = 5;
    histogram[70] = 11;
    serde_json::from_value(json!({
        "config": {"batch_size": 100, "bn_train_mode": false}, "epoch": 2, "batches": 1,
        "total_gradients": 20, "mean": 0.0, "std": 1.0,
        "vanished": [{"eps": 1e-4, "count": 5, "ratio": 0.25}, {"eps": 1e-5, "count": 5, "ratio": 0.25},
                     {"eps": 1e-6, "count": 5, "ratio": 0.25}, {"eps": 1e-7, "count": 0, "ratio": 0.0}],
        "histogram": histogram, "zeros": 4, "below_range": 0, "above_range": 0,
    }))
    .unwrap()
}

#[test]
fn tbparse_reads_every_run_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let job = |arch, seed| JobSpec {
        train: TrainConfig { epochs: 2, lr: 0.05, ..TrainConfig::paper(arch, 8, seed) },
        analysis: Some(AnalysisConfig::default()),
        data: DataSpec::Synthetic { train: 10, test: 5, seed: 0 },
        repeat: 0,
        program: None,
    };
    store.add_sweep("s", "s.yaml", &[job(Arch::Grid, 1), job(Arch::Resnet, 2)], 3).unwrap();
    let w = store.register_worker("w", "cpu", None).unwrap();
    let mut reported = Vec::new();
    for accs in [[31.5, 47.25], [28.0, 52.5]] {
        let Grant::Lease(l) = store.grant(&w, 60.0, false).unwrap() else { panic!("a lease") };
        let spec: JobSpec = serde_json::from_str(&l.spec_json).unwrap();
        let mut r = TrainResult::simulated(spec.train.clone(), RunStatus::Completed, &accs);
        r.epochs[1].train_loss = Some(0.75);
        r.epochs[1].lr = 0.005;
        let epochs: Vec<(u32, String)> =
            r.epochs.iter().map(|m| (m.epoch, serde_json::to_string(m).unwrap())).collect();
        store.heartbeat(&w, &l.job_id, l.token, &epochs, 60.0).unwrap();
        // The first job's result (with its analysis) is in; the second is still running.
        if reported.is_empty() {
            r.grad_analysis = Some(analysis());
            store.complete(&w, &l.job_id, l.token, &serde_json::to_string(&r).unwrap()).unwrap();
        }
        reported.push((format!("{}-8_seed={}", spec.train.arch, spec.train.seed), r));
    }
    let out = dir.path().join("out");
    assert_eq!(live::write_tensorboard(&store, &out, &mut Writer::default()).unwrap(), 2);

    let Some(got) = read_back(&out.join(DIR)) else { return };

    let scalars = got["scalars"].as_array().unwrap();
    for (name, r) in &reported {
        for m in &r.epochs {
            let want = [("test_acc", m.test_acc), ("train_acc", m.train_acc), ("lr", m.lr)]
                .into_iter()
                .chain([("train_loss", m.train_loss.unwrap()), ("test_loss", m.test_loss.unwrap())]);
            for (tag, v) in want {
                let found = scalars
                    .iter()
                    .find(|s| s[0] == name.as_str() && s[1] == tag && s[2] == m.epoch)
                    .unwrap_or_else(|| panic!("{name} {tag} epoch {}: {scalars:?}", m.epoch));
                let f = found[3].as_f64().unwrap();
                assert!((f - v).abs() <= 1e-6 * v.abs().max(1.0), "{name} {tag} epoch {}: {f} != {v}", m.epoch);
            }
        }
    }
    assert_eq!(scalars.len(), 2 * 2 * 5, "2 runs x 2 epochs x 5 scalars");

    let hists = got["histograms"].as_array().unwrap();
    assert_eq!(hists.len(), 1, "only the run whose result came has its analysis: {hists:?}");
    let h = &hists[0];
    assert_eq!(
        (h[0].as_str().unwrap(), h[1].as_str().unwrap(), h[2].as_u64()),
        ("grid-8_seed=1", HISTOGRAM_TAG, Some(2))
    );
    let (counts, limits) = (h[3].as_array().unwrap(), h[4].as_array().unwrap());
    assert_eq!(counts.len(), HIST_BINS + 1, "the zeros' bucket, then the worker's bins");
    let at = |i: usize| (counts[i].as_f64().unwrap(), limits[i].as_f64().unwrap());
    assert_eq!(at(0), (4.0, -12.0), "4 zeros at or below 10^-12");
    let (c, l) = at(41);
    assert!(c == 5.0 && (l - -7.9).abs() < 1e-9, "bin 40 covers 10^-8 .. 10^-7.9: {c} {l}");
    let (c, l) = at(71);
    assert!(c == 11.0 && (l - -4.9).abs() < 1e-9, "bin 70 covers 10^-5 .. 10^-4.9: {c} {l}");
    assert_eq!(counts.iter().map(|c| c.as_f64().unwrap()).sum::<f64>(), 20.0);
}

/// What tbparse reads from `dir`; none when it could not be installed (PyPI unreachable).
fn read_back(dir: &Path) -> Option<Value> {
    let py = python()?;
    let read = Command::new(py).args(["-c", READER]).arg(dir).output().unwrap();
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    Some(serde_json::from_slice(&read.stdout).unwrap())
}

#[test]
fn tbparse_reads_a_program_jobs_lines_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let job = |lr: f64| JobSpec {
        train: TrainConfig::paper(Arch::Vgg, 8, 0),
        analysis: None,
        data: DataSpec::None,
        repeat: 0,
        program: Some(ProgramSpec {
            command: vec!["python3".to_owned(), "/home/me/train.py".to_owned()],
            env: Default::default(),
            metric: Metric { name: "test_acc".to_owned(), goal: Goal::Max },
            settings: json!({"lr": lr, "seed": 5, "epochs": 2}).as_object().cloned().unwrap(),
        }),
    };
    store.add_sweep("p", "p.yaml", &[job(0.1), job(0.2)], 3).unwrap();
    let w = store.register_worker("w", "cpu", None).unwrap();
    let mut reported = Vec::new();
    for k in [1.0, 2.0] {
        let Grant::Lease(l) = store.grant(&w, 60.0, false).unwrap() else { panic!("a lease") };
        let spec: JobSpec = serde_json::from_str(&l.spec_json).unwrap();
        let lr = spec.program.unwrap().settings["lr"].as_f64().unwrap();
        let lines = [
            json!({"epoch": 1, "epochs": 2, "test_acc": 40.5 + k, "train_loss": 1.25, "f1": null}),
            json!({"epoch": 2, "epochs": 2, "test_acc": 50.75 + k, "train_loss": 0.5, "f1": 0.125 * k}),
        ];
        let epochs: Vec<(u32, String)> = lines.iter().zip(1..).map(|(l, e)| (e, l.to_string())).collect();
        store.heartbeat(&w, &l.job_id, l.token, &epochs, 60.0).unwrap();
        reported.push((format!("lr={lr}_seed=5"), lines));
    }
    let out = dir.path().join("out");
    assert_eq!(live::write_tensorboard(&store, &out, &mut Writer::default()).unwrap(), 2);

    let Some(got) = read_back(&out.join(DIR)) else { return };
    let scalars = got["scalars"].as_array().unwrap();
    let mut want = 0;
    for (name, lines) in &reported {
        for line in lines {
            let step = line["epoch"].as_u64().unwrap();
            for (tag, v) in line.as_object().unwrap() {
                let Some(v) = v.as_f64().filter(|_| !["epoch", "epochs"].contains(&tag.as_str())) else { continue };
                want += 1;
                let found = scalars
                    .iter()
                    .find(|s| s[0] == name.as_str() && s[1] == tag.as_str() && s[2] == step)
                    .unwrap_or_else(|| panic!("{name} {tag} epoch {step}: {scalars:?}"));
                let f = found[3].as_f64().unwrap();
                assert!((f - v).abs() <= 1e-6 * v.abs().max(1.0), "{name} {tag} epoch {step}: {f} != {v}");
            }
        }
    }
    assert_eq!(want, 2 * 5, "2 runs x (2 + 3) numbers");
    assert_eq!(scalars.len(), want, "no epoch, total or null as a scalar: {scalars:?}");
    assert!(got["histograms"].as_array().unwrap().is_empty());
}
