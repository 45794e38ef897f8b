//! The result schema's parsing and checks: a worker's result round-trips, and every kind of bad
//! document is refused with the path of the field at fault.

use super::*;
use crate::job::{Arch, TrainConfig};

/// A plausible completed result with a gradient analysis.
fn sample() -> TrainResult {
    let epoch = |e: u32, acc: f64| EpochMetrics {
        epoch: e,
        lr: 0.1,
        train_loss: Some(1.5),
        train_acc: 40.0,
        test_loss: Some(1.4),
        test_acc: acc,
        seconds: 2.0,
        images_per_s: 500.0,
    };
    TrainResult {
        config: TrainConfig::paper(Arch::Resnet, 26, 42),
        params: 370_000,
        flops: 40_000_000,
        status: RunStatus::Completed,
        epochs: vec![epoch(1, 30.0), epoch(2, 45.5)],
        final_test_acc: Some(45.5),
        best_test_acc: Some(45.5),
        best_epoch: Some(2),
        wall_seconds: 5.0,
        train_seconds: 4.0,
        resumed_from_epoch: None,
        data: DataInfo { dir: "data".into(), synthetic: true, train_images: 100, test_images: 50 },
        environment: Environment {
            device: "cpu".into(),
            device_name: "cpu, 2 threads".into(),
            libtorch_version: "2.11.0".into(),
            cuda_version: None,
            cudnn_benchmark: false,
            deterministic: false,
            grid_exec: Some(GridExec::Sequential),
            memory_format: Some(MemoryFormat::Contiguous),
            tf32: Some(false),
        },
        grad_analysis: Some(GradReport {
            config: AnalysisConfig::default(),
            epoch: None,
            batches: 1,
            total_gradients: 1000,
            nonfinite: 0,
            mean: Some(0.0),
            std: Some(0.01),
            vanished: EPSILONS.iter().map(|&eps| Vanished { eps, count: 10, ratio: 0.01 }).collect(),
            histogram: vec![0; HIST_BINS],
            zeros: 0,
            below_range: 0,
            above_range: 0,
            blocks: Vec::new(),
        }),
        earlier_grad_analyses: Vec::new(),
    }
}

/// `sample()` as JSON, changed by `edit`.
fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v = serde_json::to_value(sample()).expect("serialises");
    edit(&mut v);
    v.to_string()
}

fn field_of(e: ResultError) -> String {
    match e {
        ResultError::Parse { field, .. } | ResultError::Invalid { field, .. } => field,
    }
}

#[test]
fn a_result_round_trips() {
    let json = serde_json::to_string(&sample()).expect("serialises");
    assert_eq!(TrainResult::parse(&json), Ok(sample()));
    let g = sample().grad_analysis.expect("has one");
    assert_eq!(g.vanished_ratios(), [0.01; 4]);
}

#[test]
fn mistyped_and_missing_fields_are_named() {
    let e = TrainResult::parse(&edited(|v| v["final_test_acc"] = "high".into())).unwrap_err();
    assert_eq!(field_of(e), "final_test_acc");
    let e = TrainResult::parse(&edited(|v| v["epochs"][1]["test_acc"] = serde_json::Value::Null)).unwrap_err();
    assert_eq!(field_of(e), "epochs[1].test_acc");
    let e = TrainResult::parse(&edited(|v| {
        v.as_object_mut().expect("object").remove("params");
    }))
    .unwrap_err();
    assert!(e.to_string().contains("params"), "{e}");
    let e = TrainResult::parse(&edited(|v| v["status"] = "finished".into())).unwrap_err();
    assert_eq!(field_of(e), "status");
    assert!(TrainResult::parse("{} trailing").is_err());
    assert!(TrainResult::parse("[1, 2]").is_err());
}

#[test]
fn out_of_range_figures_are_named() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: [(&str, Edit); 7] = [
        ("final_test_acc", Box::new(|v| v["final_test_acc"] = 101.0.into())),
        ("final_test_acc", Box::new(|v| v["final_test_acc"] = serde_json::Value::Null)),
        ("epochs[0].train_acc", Box::new(|v| v["epochs"][0]["train_acc"] = (-1.0).into())),
        ("epochs[1].epoch", Box::new(|v| v["epochs"][1]["epoch"] = 5.into())),
        ("grad_analysis.vanished[2].ratio", Box::new(|v| v["grad_analysis"]["vanished"][2]["ratio"] = 1.5.into())),
        ("grad_analysis.vanished", Box::new(|v| v["grad_analysis"]["vanished"][3]["eps"] = 1e-9.into())),
        ("grad_analysis.histogram", Box::new(|v| v["grad_analysis"]["histogram"] = vec![1u64; 7].into())),
    ];
    for (field, edit) in cases {
        let e = TrainResult::parse(&edited(|v| edit(v))).expect_err(field);
        assert_eq!(field_of(e), field);
    }
}

#[test]
fn a_diverged_run_needs_no_final_accuracy() {
    let json = edited(|v| {
        v["status"] = "diverged".into();
        v["final_test_acc"] = serde_json::Value::Null;
        v["grad_analysis"] = serde_json::Value::Null;
    });
    let r = TrainResult::parse(&json).expect("valid");
    assert_eq!((r.status, r.final_test_acc), (RunStatus::Diverged, None));
}

#[test]
fn epoch_reports_are_checked() {
    let m = sample().epochs[0].clone();
    let json = serde_json::to_string(&m).expect("serialises");
    assert_eq!(EpochMetrics::parse(&json), Ok(m));
    let e = EpochMetrics::parse(r#"{"epoch": 1, "lr": 0.1}"#).unwrap_err();
    assert!(e.to_string().contains("missing field"), "{e}");
    let bad = json.replace("\"test_acc\":30.0", "\"test_acc\":300.0");
    assert_eq!(field_of(EpochMetrics::parse(&bad).unwrap_err()), "test_acc");
}
