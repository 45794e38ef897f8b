//! The event files read back by our own decoder (prost and the framing); the test
//! `coordinator/tests/tensorboard.rs` reads them with tbparse as well.

use gridsweep_proto::job::{Arch, DataSpec, Goal, JobSpec, Metric, ProgramSpec, TrainConfig};
use gridsweep_proto::result::{EpochMetrics, RunStatus, TrainResult};
use prost::Message as _;

use super::*;

/// The records of an event file, their CRCs checked.
fn records(mut bytes: &[u8]) -> Vec<proto::Event> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len_bytes: [u8; 8] = bytes[..8].try_into().unwrap();
        let len = u64::from_le_bytes(len_bytes) as usize;
        assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), masked_crc32c(&len_bytes));
        let data = &bytes[12..12 + len];
        assert_eq!(u32::from_le_bytes(bytes[12 + len..16 + len].try_into().unwrap()), masked_crc32c(data));
        out.push(proto::Event::decode(data).unwrap());
        bytes = &bytes[16 + len..];
    }
    out
}

fn spec(arch: Arch, seed: u64, lr: f64) -> JobSpec {
    JobSpec {
        train: TrainConfig { lr, epochs: 2, ..TrainConfig::paper(arch, 8, seed) },
        analysis: None,
        data: DataSpec::Synthetic { train: 10, test: 5, seed: 0 },
        repeat: 0,
        program: None,
    }
}

fn metrics(epoch: u32, test_acc: f64) -> EpochMetrics {
    let r = TrainResult::simulated(spec(Arch::Grid, 1, 0.1).train, RunStatus::Completed, &[test_acc]);
    EpochMetrics { epoch, ..r.epochs[0].clone() }
}

#[test]
fn directories_are_named_by_condition_and_seed() {
    let specs = [spec(Arch::Grid, 1, 0.1), spec(Arch::Resnet, 2, 0.05), spec(Arch::Grid, 1, 0.1)];
    let names = dir_names([("aaaa", &specs[0]), ("bbbb", &specs[1]), ("cccc", &specs[2])].into_iter());
    assert_eq!(names, ["grid-8_lr=0.1_seed=1_job=aaaa", "resnet-8_lr=0.05_seed=2", "grid-8_lr=0.1_seed=1_job=cccc"]);
}

#[test]
fn the_file_holds_the_version_the_epochs_and_grows_by_appending() {
    let s = spec(Arch::Grid, 1, 0.1);
    let mut run = RunEvents {
        job_id: "j",
        spec: &s,
        epochs: vec![(Some(100.0), metrics(1, 40.0))],
        grads: vec![],
        lines: vec![],
    };
    let dir = tempfile::tempdir().unwrap();
    let mut w = Writer::default();
    assert_eq!(w.write(dir.path(), std::slice::from_ref(&run)).unwrap(), 1);
    let path = dir.path().join(DIR).join("grid-8_seed=1").join(FILE);
    let first = std::fs::read(&path).unwrap();
    let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = inode(&path);

    run.epochs.push((Some(160.0), metrics(2, 55.0)));
    assert_eq!(w.write(dir.path(), std::slice::from_ref(&run)).unwrap(), 1);
    assert_eq!(w.write(dir.path(), std::slice::from_ref(&run)).unwrap(), 0, "nothing new, nothing written");
    let second = std::fs::read(&path).unwrap();
    assert_eq!(&second[..first.len()], &first[..], "appended");
    assert_eq!(inode(&path), before, "the same file, which a reader follows");

    let events = records(&second);
    assert_eq!(events[0].what, Some(proto::What::FileVersion("brain.Event:2".to_owned())));
    assert_eq!((events[2].step, events[2].wall_time), (2, 160.0));
    let Some(proto::What::Summary(summary)) = &events[2].what else { panic!("a summary") };
    let test_acc = summary.value.iter().find(|v| v.tag == "test_acc").unwrap();
    assert_eq!(test_acc.value, Some(proto::Value::SimpleValue(55.0)));

    // A retried epoch 1 changes the start: the file is rewritten whole.
    run.epochs[0] = (Some(300.0), metrics(1, 41.0));
    w.write(dir.path(), std::slice::from_ref(&run)).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), event_file(&run));
}

#[test]
fn the_histogram_keeps_the_workers_counts() {
    let mut g: GradReport = serde_json::from_value(serde_json::json!({
        "config": {"batch_size": 100, "bn_train_mode": false}, "batches": 1, "total_gradients": 20,
        "mean": 0.0, "std": 1.0, "vanished": [], "histogram": vec![0u64; HIST_BINS],
        "zeros": 2, "below_range": 1, "above_range": 0,
    }))
    .unwrap();
    g.histogram[60] = 10;
    g.histogram[61] = 7;
    let h = histogram(&g);
    assert_eq!(h.bucket.len(), HIST_BINS + 1, "the low bucket, then the bins; no empty top bucket");
    assert_eq!((h.bucket[0], h.bucket[61], h.bucket[62], h.num), (3.0, 10.0, 7.0, 20.0));
    assert!((h.bucket_limit[61] - -5.9).abs() < 1e-9, "bin 60 ends at 10^-5.9");
    assert_eq!((h.min, h.max), (HIST_LOG10_LO, h.bucket_limit[62]));
}

/// A program job with `settings` (no model named: the recipe's placeholders stay in `train`).
fn program(command: &str, settings: serde_json::Value) -> JobSpec {
    JobSpec {
        program: Some(ProgramSpec {
            command: command.split(' ').map(str::to_owned).collect(),
            env: Default::default(),
            metric: Metric { name: "test_acc".to_owned(), goal: Goal::Max },
            settings: settings.as_object().cloned().unwrap(),
        }),
        ..spec(Arch::Vgg, 0, 0.1)
    }
}

#[test]
fn a_program_jobs_directory_is_named_by_its_condition_and_seed_setting() {
    let specs = [
        program("python3 /x/train.py", serde_json::json!({"lr": 0.1, "seed": 1, "epochs": 3})),
        program("python3 /x/train.py", serde_json::json!({"lr": 0.2, "seed": 1, "epochs": 3})),
        program("python3 /x/train.py", serde_json::json!({"lr": 0.2, "epochs": 3})),
    ];
    let names = dir_names([("a", &specs[0]), ("b", &specs[1]), ("c", &specs[2])].into_iter());
    assert_eq!(names, ["lr=0.1_seed=1", "lr=0.2_seed=1", "lr=0.2"]);

    let alone = program("./my trainer", serde_json::json!({"seed": 4}));
    assert_eq!(dir_names([("a", &alone)].into_iter()), ["program_seed=4"], "nothing varies");

    // Beside the built-in trainer, the implementation is part of the condition, by its label.
    let builtin = spec(Arch::Grid, 1, 0.1);
    let prog = program(
        "sh -c exec python3 $DIR/train.py",
        serde_json::json!({"arch": "grid", "depth": 8, "seed": 1, "epochs": 2}),
    );
    let names = dir_names([("a", &builtin), ("b", &prog)].into_iter());
    assert_eq!(names, ["grid-8_seed=1", "implementation=train.py_seed=1"]);
}

#[test]
fn a_program_line_becomes_one_event_of_its_numbers() {
    let s = program("python3 t.py", serde_json::json!({"seed": 1}));
    let line = |v: serde_json::Value| v.as_object().cloned().unwrap();
    let lines = [
        line(serde_json::json!({"epoch": 1, "epochs": 2, "test_acc": 61.5, "loss": null, "note": "x", "f1": 0.25})),
        line(serde_json::json!({"epoch": 2, "epochs": 2, "test_acc": 70.0, "huge": 1e300, "ok": true})),
    ];
    let run = RunEvents {
        job_id: "j",
        spec: &s,
        epochs: vec![],
        grads: vec![],
        lines: vec![(Some(50.0), 1, &lines[0]), (None, 2, &lines[1])],
    };
    let events = records(&event_file(&run));
    assert_eq!(events.len(), 3, "the version, then one event per line");
    assert_eq!((events[0].wall_time, events[1].step, events[2].step), (50.0, 1, 2));
    assert_eq!(events[2].wall_time, 50.0, "a line without a time takes the one before");
    let tags = |e: &proto::Event| -> Vec<(String, Option<proto::Value>)> {
        let Some(proto::What::Summary(summary)) = &e.what else { panic!("a summary") };
        summary.value.iter().map(|v| (v.tag.clone(), v.value.clone())).collect()
    };
    let scalar = |tag: &str, v: f32| (tag.to_owned(), Some(proto::Value::SimpleValue(v)));
    assert_eq!(tags(&events[1]), [scalar("f1", 0.25), scalar("test_acc", 61.5)]);
    assert_eq!(tags(&events[2]), [scalar("test_acc", 70.0)], "1e300 is no 32-bit float; a bool is no number");

    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Writer::default().write(dir.path(), std::slice::from_ref(&run)).unwrap(), 1);
    assert!(dir.path().join(DIR).join("program_seed=1").join(FILE).is_file());
}
