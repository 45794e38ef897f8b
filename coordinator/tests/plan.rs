//! `coordinator expand` and `coordinator plan` as a user runs them: figures for a sweep small
//! enough to work out by hand (with and without a calibration), the paper sweep's target, the
//! JSON forms, and bad input exiting with status 2 and a message that names the culprit.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn coordinator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coordinator")).args(args).output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap()
}

/// A fresh scratch directory for this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gridsweep-plan-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Five resnets, depths 8 to 32 (1 to 5 blocks per stage), one epoch on 10 synthetic training
/// and 10 test images at batch 5. Costs ((n + 0.5) x 1 epoch x 10 images): 15, 25, 35, 45, 55.
const FIVE: &str = "\
name: five
data: {kind: synthetic, train: 10, test: 10, seed: 0}
train: {epochs: 1, batch_size: 5}
axes:
  arch: [resnet]
  depth: [8, 14, 20, 26, 32]
  seed: [1]
";

/// A calibration for FIVE: training rates 10, 5, 2.5, 2 and 1.25 images/s make 1, 2, 4, 5 and
/// 8 s for 10 images; evaluating 10 images at 10 images/s adds 1 s. Expected: 2, 3, 5, 6, 9 s.
fn calibration(depths: &[(u32, f64)]) -> Value {
    let entries: Vec<Value> = depths
        .iter()
        .map(|&(depth, rate)| {
            json!({"arch": "resnet", "depth": depth, "batch_size": 5, "eval_batch_size": 500,
                   "train_images_per_s": rate, "eval_images_per_s": 10.0})
        })
        .collect();
    json!({"format": 1, "device": "cpu", "device_name": "test cpu", "libtorch_version": "2.11.0",
           "created_unix_s": 1_700_000_000u64, "grid_exec": "sequential", "memory_format": "contiguous",
           "tf32": false, "threads": 2, "warmup_steps": 1, "steps": 2, "eval_batches": 1, "entries": entries})
}

const RATES: [(u32, f64); 5] = [(8, 10.0), (14, 5.0), (20, 2.5), (26, 2.0), (32, 1.25)];

/// The sweep and a full calibration for it, written to `dir`.
fn files(dir: &Path) -> (String, String) {
    let sweep = dir.join("five.yaml");
    std::fs::write(&sweep, FIVE).unwrap();
    let cal = dir.join("cal.json");
    std::fs::write(&cal, serde_json::to_string_pretty(&calibration(&RATES)).unwrap()).unwrap();
    (sweep.to_str().unwrap().to_owned(), cal.to_str().unwrap().to_owned())
}

#[test]
fn plan_in_cost_units_matches_the_hand_computation() {
    let dir = scratch("units");
    let (sweep, _) = files(&dir);
    // Queue by cost: 55, 45, 35, 25, 15. w0 55 (0-55), w1 45 (0-45), w1 35 (45-80), w0 25
    // (55-80), w0 15 (80-95): 95. FIFO: w0 15 (0-15), w1 25 (0-25), w0 35 (15-50), w1 45
    // (25-70), w0 55 (50-105): 105. Bound: max(175 / 2 = 87.5, 55, 45 + 35 = 80) = 87.5.
    let v = json_of(&coordinator(&["plan", &sweep, "--workers", "2", "--json"]));
    assert_eq!(v["unit"], "cost_units");
    assert_eq!((v["jobs"].as_u64(), v["total"].as_f64()), (Some(5), Some(175.0)));
    assert_eq!(v["lower_bound"]["value"], 87.5);
    assert_eq!(v["lower_bound"]["pair"], 80.0);
    assert_eq!(v["scheduler"]["makespan"], 95.0);
    assert_eq!(v["fifo"]["makespan"], 105.0);
    assert_eq!(v["fifo"]["ratio_to_bound"], 1.2);
    let text = stdout(&coordinator(&["plan", &sweep, "--workers", "2"]));
    assert!(text.contains("RELATIVE COST UNITS, NOT SECONDS"), "{text}");
    assert!(text.contains("95 units  1.086 x bound"), "{text}");
    assert!(
        text.contains("the largest of total / 2 = 87.5 units, longest job = 55 units, 2nd + 3rd longest = 80 units"),
        "{text}"
    );
}

#[test]
fn plan_and_expand_in_seconds_with_a_calibration() {
    let dir = scratch("seconds");
    let (sweep, cal) = files(&dir);
    // Durations 2, 3, 5, 6, 9 s; the queue (by cost) runs the deepest first: 9, 6, 5, 3, 2.
    // w0 9 (0-9), w1 6 (0-6), w1 5 (6-11), w0 3 (9-12), w1 2 (11-13): 13 s. FIFO: w0 2, w1 3,
    // w0 5 (2-7), w1 6 (3-9), w0 9 (7-16): 16 s. Bound: max(25 / 2, 9, 6 + 5) = 12.5 s.
    let v = json_of(&coordinator(&["plan", &sweep, "--workers", "2", "--calibration", &cal, "--json"]));
    assert_eq!(v["unit"], "seconds");
    assert_eq!(v["calibration"]["device_name"], "test cpu");
    assert_eq!((v["total"].as_f64(), v["lower_bound"]["value"].as_f64()), (Some(25.0), Some(12.5)));
    assert_eq!((v["scheduler"]["makespan"].as_f64(), v["fifo"]["makespan"].as_f64()), (Some(13.0), Some(16.0)));
    let firsts: Vec<(u64, u64)> = v["scheduler"]["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["job"].as_u64().unwrap(), a["worker"].as_u64().unwrap()))
        .collect();
    assert_eq!(firsts, [(4, 0), (3, 1), (2, 1), (1, 0), (0, 1)]);
    let text = stdout(&coordinator(&["plan", &sweep, "--workers", "2", "--calibration", &cal]));
    assert!(text.contains("13.0s  1.040 x bound") && text.contains("16.0s  1.280 x bound"), "{text}");

    let v = json_of(&coordinator(&["expand", &sweep, "--calibration", &cal, "--json"]));
    let expected: Vec<f64> = v["jobs"].as_array().unwrap().iter().map(|j| j["expected"].as_f64().unwrap()).collect();
    assert_eq!(expected, [2.0, 3.0, 5.0, 6.0, 9.0]);
    assert_eq!((v["total"].as_f64(), v["jobs"][0]["cost"].as_f64()), (Some(25.0), Some(15.0)));
    assert_eq!(v["jobs"][4]["spec"]["train"]["depth"], 32);
    let text = stdout(&coordinator(&["expand", &sweep, "--calibration", &cal]));
    assert!(text.contains("# expected device time from the calibration"), "{text}");
    assert!(text.contains(" resnet   32    1     9.0s\n"), "{text}");
    assert!(text.contains("# expected in all (one worker): 25.0s\n5 jobs\n"), "{text}");
}

#[test]
fn expand_without_a_calibration_says_its_units_are_not_seconds() {
    let dir = scratch("expand");
    let (sweep, _) = files(&dir);
    let text = stdout(&coordinator(&["expand", &sweep]));
    assert!(text.contains("# expected work in RELATIVE COST UNITS, NOT SECONDS"), "{text}");
    assert!(text.contains(" resnet    8    1 15 units\n"), "{text}");
    assert!(text.trim_end().ends_with("5 jobs"), "{text}");
    let v = json_of(&coordinator(&["expand", &sweep, "--json"]));
    assert_eq!((v["unit"].as_str(), v["total"].as_f64()), (Some("cost_units"), Some(175.0)));
    assert!(v["calibration"].is_null());
}

#[test]
fn the_paper_sweep_on_8_workers_is_within_5_percent_of_the_bound() {
    let paper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sweeps/paper.yaml");
    let v = json_of(&coordinator(&["plan", paper.to_str().unwrap(), "--workers", "8", "--json"]));
    // 9 depth-1538 jobs on 8 workers: two of them share a worker.
    assert_eq!(v["lower_bound"]["value"], v["lower_bound"]["pair"]);
    let (ours, fifo) =
        (v["scheduler"]["ratio_to_bound"].as_f64().unwrap(), v["fifo"]["ratio_to_bound"].as_f64().unwrap());
    assert!(ours <= 1.05, "scheduler at {ours} x the bound");
    assert!(fifo > ours, "fifo {fifo} vs {ours}");
}

#[test]
fn bad_input_exits_2_naming_what_is_wrong() {
    let dir = scratch("bad");
    let (sweep, cal) = files(&dir);
    let partial = dir.join("partial.json");
    std::fs::write(&partial, calibration(&RATES[..4]).to_string()).unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{\n  \"format\": 1,\n  \"device\": [\n}\n").unwrap();
    let missing = dir.join("nowhere.json");
    let (partial, broken, missing) =
        (partial.to_str().unwrap(), broken.to_str().unwrap(), missing.to_str().unwrap().to_owned());
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["plan", &sweep, "--workers", "0"], "--workers must be at least 1".into()),
        (vec!["plan", &sweep, "--workers", "2", "--calibration", &missing], format!("{missing}: cannot read")),
        (vec!["expand", &sweep, "--calibration", &missing], format!("{missing}: cannot read")),
        (
            vec!["plan", &sweep, "--workers", "2", "--calibration", partial],
            format!("{partial}: no entry for resnet at depth 32 with batch_size 5"),
        ),
        (
            vec!["expand", &sweep, "--calibration", broken],
            format!("{broken}:3:12: not a calibration file: invalid type: sequence, expected a string"),
        ),
        (vec!["plan", "/nonexistent/x.yaml", "--workers", "2", "--calibration", &cal], "/nonexistent/x.yaml".into()),
    ];
    for (args, message) in cases {
        let out = coordinator(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(&message), "{args:?}: expected {message:?} in {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
