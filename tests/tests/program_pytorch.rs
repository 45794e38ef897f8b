//! `examples/pytorch/train.py` as a program job beside the built-in trainer at equal settings
//! (a `sweeps/crosscheck.yaml` in miniature, on synthetic data): both complete, and
//! `results.csv` puts them side by side with an `implementation` column. Needs the torch that
//! `make` provisions (`~/.cache/gridsweep/torch-2.11.0/venv`).

use std::path::{Path, PathBuf};

use gridsweep_e2e::{run_sweep, scratch};

/// The provisioned torch's Python.
fn torch_python() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_default();
    let py = Path::new(&home).join(".cache/gridsweep/torch-2.11.0/venv/bin/python");
    assert!(py.exists(), "{} missing: run `make` first (it provisions torch)", py.display());
    py
}

#[test]
fn train_py_and_the_builtin_trainer_side_by_side() {
    let dir = scratch("program-pytorch");
    let train_py = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pytorch/train.py");
    let train_py = train_py.canonicalize().unwrap();
    let program = format!(
        "{{command: [{}, {}], env: {{OMP_NUM_THREADS: \"1\"}}, metric: {{name: test_acc, goal: max}}}}",
        torch_python().display(),
        train_py.display()
    );
    let text = format!(
        "name: cross\ndata: {{kind: synthetic, train: 200, test: 100, seed: 1}}\n\
         train: {{epochs: 2, batch_size: 32}}\naxes: {{arch: [resnet], depth: [8], seed: [1]}}\n\
         include:\n  - {{arch: resnet, depth: 8, seed: 1, program: {program}}}\nlease_ttl_s: 60\n"
    );
    let sweep = dir.join("cross.yaml");
    std::fs::write(&sweep, text).unwrap();
    let (state, out) = (dir.join("state"), dir.join("out"));
    let o = run_sweep(&sweep, &state, &out, 2, &[]);
    assert!(o.status.success(), "{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let mut reader = csv::Reader::from_path(out.join("results.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows: Vec<Vec<String>> = reader.records().map(|r| r.unwrap().iter().map(str::to_owned).collect()).collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("{name} in {header:?}"));
    assert_eq!(rows.len(), 2, "{header:?}\n{rows:?}");
    let builtin = rows.iter().find(|r| r[col("implementation")] == "builtin").unwrap_or_else(|| panic!("{rows:?}"));
    let pytorch =
        rows.iter().find(|r| r[col("implementation")].ends_with("train.py")).unwrap_or_else(|| panic!("{rows:?}"));
    for row in [builtin, pytorch] {
        assert_eq!(row[col("completed")], "1", "{row:?}");
        let acc: f64 = row[col("test_acc_mean")].parse().unwrap();
        assert!((0.0..=100.0).contains(&acc), "{row:?}");
    }
    // train.py's own figures came through its result line (the built-in run has none of them).
    assert_eq!((pytorch[col("epochs_n")].as_str(), pytorch[col("epochs_mean")].as_str()), ("1", "2"));
    assert_eq!(builtin[col("epochs_n")], "0");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("| implementation | test_acc mean ± std [95% CI] |"), "{md}");
}
