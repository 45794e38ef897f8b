//! The sweep's outputs end to end, through the public API, from a fabricated finished sweep
//! (3 architectures x depths 26 and 98 x 2 seeds, 3 epochs, gradient analyses at depth 98, one
//! diverged, one failed and one pending run): the tables, then the plots (every SVG parses as
//! XML and names its series and axes), then `report.md` (the Markdown tables verbatim, the
//! numbers of `table1.csv`, a link to every SVG, the failed and diverged jobs, the hardware).
//! The same sweep run at two learning rates has a series per architecture and learning rate in
//! every plot and a list of its conditions in the report.

use std::collections::HashMap;
use std::path::Path;

use coordinator::files::OutputError;
use coordinator::plots::{self, PlotError};
use coordinator::report;
use coordinator::tables::{self, FailureKind, JobState, RunRecord};
use gridsweep_proto::job::{AnalysisConfig, Arch, DataSpec, JobSpec, TrainConfig};
use serde_json::{Value, json};

/// The SVGs a full sweep gets, in `write_plots`' order.
const SVGS: [&str; 6] = [
    "accuracy_vs_epoch.svg",
    "accuracy_vs_depth.svg",
    "grad_histogram.svg",
    "grad_vs_distance.svg",
    "grad_vs_distance_init.svg",
    "vanished_vs_epoch.svg",
];

/// A gradient analysis: a bell-shaped 120-bin histogram centred on 10^centre and per-block
/// mean squares falling as `decay^distance`, with `blocks` blocks per distance.
fn grad(centre: f64, decay: f64, blocks: u32) -> Value {
    let histogram: Vec<u64> = (0..120)
        .map(|i| {
            let x = -12.0 + (f64::from(i) + 0.5) * 0.1;
            (1e6 * (-(x - centre) * (x - centre)).exp()).round() as u64
        })
        .collect();
    let mut list = Vec::new();
    for d in 1..=12u32 {
        for k in 0..blocks {
            let name = format!("stage1.node_{d}_{k}");
            let mean_sq = 1e-3 * decay.powi(d as i32) * (1.0 + 0.1 * f64::from(k));
            list.push(json!({"name": name, "stage": 1, "row": d, "col": k, "distance": d,
                             "elements": 1000 * (k + 1), "mean_sq": mean_sq}));
        }
    }
    json!({
        "config": {"batch_size": 100, "bn_train_mode": false},
        "batches": 5, "total_gradients": 1_848_450u64, "mean": 1e-6, "std": 3e-3,
        "vanished": [
            {"eps": 1e-4, "count": 1, "ratio": 0.13}, {"eps": 1e-5, "count": 1, "ratio": 0.017},
            {"eps": 1e-6, "count": 1, "ratio": 0.0018}, {"eps": 1e-7, "count": 1, "ratio": 0.0002}
        ],
        "histogram": histogram, "zeros": 12, "below_range": 3, "above_range": 0, "blocks": list,
    })
}

/// `grad` taken after `epoch`, with its vanished fractions scaled by `scale`.
fn at_epoch(mut grad: Value, epoch: u32, scale: f64) -> Value {
    grad["epoch"] = json!(epoch);
    for v in grad["vanished"].as_array_mut().unwrap() {
        v["ratio"] = json!(v["ratio"].as_f64().unwrap() * scale);
    }
    grad
}

/// A worker result with test accuracies `accs` per epoch; `grad` is the analysis after the last
/// epoch, and one at initialisation (with steeper per-block decay) comes with it.
fn result(spec: &JobSpec, status: &str, accs: &[f64], grad: Option<Value>) -> Value {
    let init = grad.as_ref().map(|g| at_epoch(g.clone(), 0, 0.5));
    let grad = grad.map(|g| at_epoch(g, accs.len() as u32, 1.0));
    let epochs: Vec<Value> = accs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            json!({"epoch": i + 1, "lr": 0.1, "train_loss": 1.0, "train_acc": a, "test_loss": 1.0,
                   "test_acc": a, "seconds": 10.0, "images_per_s": 100.0})
        })
        .collect();
    json!({
        "config": spec.train, "params": 369_690, "flops": 56_005_312, "status": status, "epochs": epochs,
        "final_test_acc": if status == "completed" { accs.last().copied() } else { None },
        "best_test_acc": null, "best_epoch": null, "wall_seconds": 31.0, "train_seconds": 30.0,
        "resumed_from_epoch": null,
        "data": {"dir": "/data", "synthetic": true, "train_images": 256, "test_images": 128},
        "environment": {"device": "cuda:0", "device_name": "NVIDIA H100 80GB HBM3", "libtorch_version": "2.11.0",
                        "cuda_version": 12060, "cudnn_benchmark": false, "deterministic": false},
        "grad_analysis": grad,
        "earlier_grad_analyses": init.into_iter().collect::<Vec<_>>(),
    })
}

/// The fabricated sweep; `with_grads` false drops every gradient analysis.
fn sweep(with_grads: bool) -> Vec<RunRecord> {
    let mut runs = Vec::new();
    for depth in [26, 98] {
        for arch in Arch::ALL {
            for seed in 1..=2u64 {
                let analysed = with_grads && depth == 98;
                let spec = JobSpec {
                    train: TrainConfig { epochs: 3, ..TrainConfig::paper(arch, depth, seed) },
                    analysis: analysed.then(|| AnalysisConfig { at_epochs: vec![0, 3], ..AnalysisConfig::default() }),
                    data: DataSpec::Synthetic { train: 256, test: 128, seed: 7 },
                    repeat: 0,
                    program: None,
                };
                let base = 40.0 + f64::from(seed as u32) + if arch == Arch::Grid { 5.0 } else { 0.0 };
                let accs = [base, base + 10.0, base + 15.0];
                let g = match arch {
                    Arch::Resnet if analysed => Some(grad(-3.5, 0.7, 1)),
                    Arch::Grid if analysed => Some(grad(-2.8, 0.85, 3)),
                    Arch::Vgg if analysed => Some(grad(-3.0, 0.8, 1)),
                    _ => None,
                };
                let (state, res, error) = match (arch, depth, seed) {
                    (Arch::Vgg, 98, 2) => {
                        (JobState::Diverged, Some(result(&spec, "diverged", &[30.0, 10.0], None)), None)
                    }
                    (Arch::Resnet, 26, 2) => {
                        (JobState::Failed, None, Some("CUDA out of memory | attempt 3\nof 3".to_owned()))
                    }
                    (Arch::Grid, 26, 2) => (JobState::Pending, None, None),
                    _ => (JobState::Completed, Some(result(&spec, "completed", &accs, g)), None),
                };
                let worker = Some(format!("w{seed}"));
                let result = res.map(|v| serde_json::from_value(v).expect("a well-formed result"));
                let error_kind = error.as_ref().map(|_| FailureKind::OutOfMemory);
                runs.push(RunRecord {
                    job_id: spec.id(),
                    spec,
                    state,
                    attempts: 1,
                    worker,
                    error,
                    error_kind,
                    result,
                    memory_need: None,
                });
            }
        }
    }
    runs
}

/// Every text node of an SVG, which must parse as XML with an `svg` root.
fn svg_texts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{} is not XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg", "{}", path.display());
    doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::to_owned).collect()
}

/// Asserts that some text of `texts` contains each of `wanted`, and none contains `unwanted`.
fn assert_texts(file: &str, texts: &[String], wanted: &[&str], unwanted: &[&str]) {
    for w in wanted {
        assert!(texts.iter().any(|t| t.contains(w)), "{file}: no text contains {w:?}; texts: {texts:?}");
    }
    for u in unwanted {
        assert!(!texts.iter().any(|t| t.contains(u)), "{file}: a text contains {u:?}; texts: {texts:?}");
    }
}

#[test]
fn plots_and_report_of_a_finished_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let runs = sweep(true);
    tables::write_tables(&runs, "tiny", &out).unwrap();
    let files = plots::write_plots(&runs, &out).unwrap();
    let names: Vec<&str> = files.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(names, SVGS);

    let texts: HashMap<&str, Vec<String>> = SVGS.iter().map(|f| (*f, svg_texts(&out.join(f)))).collect();
    assert_texts(
        SVGS[0],
        &texts[SVGS[0]],
        &["vgg (1 run)", "resnet (2 runs)", "grid (2 runs)", "vgg diverged (1 run", "depth 26", "depth 98"],
        &[],
    );
    assert_texts(SVGS[0], &texts[SVGS[0]], &["epoch", "test accuracy (%)"], &[]);
    assert_texts(SVGS[1], &texts[SVGS[1]], &["vgg", "resnet", "grid", "depth (layers, log scale)", "26", "98"], &[]);
    assert_texts(SVGS[1], &texts[SVGS[1]], &["final test accuracy (%)"], &["diverged"]);
    assert_texts(
        SVGS[2],
        &texts[SVGS[2]],
        &["resnet-98 (2 runs", "grid-98 (2 runs", "vanishing thresholds", "|gradient|", "(log scale)", "1e-7", "1e-4"],
        &["vgg"],
    );
    assert_texts(SVGS[2], &texts[SVGS[2]], &["share of gradient elements (%"], &[]);
    assert_texts(
        SVGS[3],
        &texts[SVGS[3]],
        &["resnet (2 runs)", "grid (2 runs)", "distance d from the input", "mean squared gradient", "(log scale)"],
        &["vgg"],
    );
    // The paper's models fitted: the resnet points fall as 0.7^d, the grid's as 0.85^d.
    assert_texts(SVGS[3], &texts[SVGS[3]], &["resnet fit, eq. 5: α = ", "grid fit, eq. 6: β = ", "rms"], &[]);
    assert_texts(SVGS[4], &texts[SVGS[4]], &["at initialisation", "resnet fit, eq. 5", "grid fit, eq. 6"], &["vgg"]);
    assert_texts(
        SVGS[5],
        &texts[SVGS[5]],
        &["vanished < 1e-4, depth 98", "vanished < 1e-7", "epoch analysed (0: at initialisation)", "vgg (1 run)"],
        &[],
    );

    let sweep_file = dir.path().join("tiny.yaml");
    std::fs::write(&sweep_file, "name: tiny\naxes:\n  arch: [vgg, resnet, grid]\n").unwrap();
    let path = report::write_report(&runs, "tiny", Some(&sweep_file), &out).unwrap();
    assert_eq!(path, out.join("report.md"));
    let md = std::fs::read_to_string(&path).unwrap();
    for table in ["table1.md", "table2.md"] {
        let body = std::fs::read_to_string(out.join(table)).unwrap();
        assert!(md.contains(&body), "report.md holds {table} verbatim");
    }
    for svg in SVGS {
        assert!(md.contains(&format!("]({svg})")), "report.md links {svg}");
    }
    assert!(md.contains("# Sweep `tiny`: report"));
    assert!(md.contains("name: tiny\naxes:\n  arch: [vgg, resnet, grid]"), "the sweep file is embedded");
    // table1.csv's accuracy means are the report's.
    let mut reader = csv::Reader::from_path(out.join("table1.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let mut checked = 0;
    for record in reader.records() {
        let row: HashMap<&str, String> =
            header.iter().map(String::as_str).zip(record.unwrap().iter().map(str::to_owned)).collect();
        let line = md.lines().find(|l| l.starts_with(&format!("| {} |", row["depth"]))).unwrap();
        for arch in Arch::ALL {
            if let Ok(mean) = row[format!("acc_mean_{arch}").as_str()].parse::<f64>() {
                assert!(line.contains(&format!("{mean:.2}")), "{arch}-{} mean {mean} in {line}", row["depth"]);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6);
    // Failed and diverged jobs with their reasons, the error on one line with `|` escaped.
    assert!(md.contains("CUDA out of memory \\| attempt 3 of 3"), "{md}");
    assert!(md.contains("the training loss became non-finite in epoch 2"));
    assert!(md.contains("1 jobs are still pending or running"));
    // Compute time and hardware: 9 completed + 1 diverged results x 30 s on a GPU.
    assert!(md.contains("GPU 0.08 h (300 s), CPU 0.00 h (0 s)"), "{md}");
    assert!(md.contains("| NVIDIA H100 80GB HBM3 | 2.11.0 | 12.6 (12060) | 10 | 2 |"), "{md}");
    // Results from before the switches existed say so rather than guess.
    assert!(md.contains("| unknown | unknown | conv=tf32 matmul=highest | unknown | false | false | 10 |"), "{md}");
}

/// The fabricated sweep twice, at lr 0.1 (the paper's) and at lr 0.05 with every accuracy 5
/// points lower.
fn lr_sweep() -> Vec<RunRecord> {
    let mut runs = sweep(true);
    let slower: Vec<RunRecord> = runs
        .iter()
        .cloned()
        .map(|mut r| {
            r.spec.train.lr = 0.05;
            r.job_id = r.spec.id();
            if let Some(res) = r.result.as_mut() {
                res.config = r.spec.train.clone();
                res.epochs.iter_mut().for_each(|e| e.test_acc -= 5.0);
                res.final_test_acc = res.final_test_acc.map(|a| a - 5.0);
            }
            r
        })
        .collect();
    runs.extend(slower);
    runs
}

#[test]
fn a_varying_setting_gets_its_own_labelled_series_and_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let runs = lr_sweep();
    tables::write_tables(&runs, "lr", &out).unwrap();
    let files = plots::write_plots(&runs, &out).unwrap();
    assert_eq!(files.len(), SVGS.len());
    let texts: HashMap<&str, Vec<String>> = SVGS.iter().map(|f| (*f, svg_texts(&out.join(f)))).collect();
    let both = |what: &str| ["lr=0.05", "lr=0.1"].map(|lr| what.replace("LR", lr));
    let epoch: Vec<String> = ["vgg LR (1 run)", "resnet LR (2 runs)", "grid LR (2 runs)", "vgg LR diverged (1 run"]
        .iter()
        .flat_map(|w| both(w))
        .collect();
    assert_texts(SVGS[0], &texts[SVGS[0]], &epoch.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    let depth: Vec<String> = ["vgg LR (3 runs)", "resnet LR (3 runs)"].iter().flat_map(|w| both(w)).collect();
    assert_texts(SVGS[1], &texts[SVGS[1]], &depth.iter().map(String::as_str).collect::<Vec<_>>(), &["diverged"]);
    let hist = both("resnet-98 LR (2 runs");
    assert_texts(SVGS[2], &texts[SVGS[2]], &hist.iter().map(String::as_str).collect::<Vec<_>>(), &["vgg"]);
    let dist = both("grid LR (2 runs)");
    assert_texts(SVGS[3], &texts[SVGS[3]], &dist.iter().map(String::as_str).collect::<Vec<_>>(), &["vgg"]);

    let md = std::fs::read_to_string(report::write_report(&runs, "lr", None, &out).unwrap()).unwrap();
    assert!(md.contains("## Conditions") && md.contains("the jobs differ in `lr`"), "{md}");
    assert!(md.contains("| `lr` | jobs | completed | diverged | failed | pending or running |"), "{md}");
    assert!(md.contains("| 0.05 | 12 | 9 | 1 | 1 | 1 |") && md.contains("| 0.1 | 12 | 9 | 1 | 1 | 1 |"), "{md}");
    assert!(md.contains("| lr | layers |"), "the grouped Table 1: {md}");
    assert!(md.contains("a series per architecture and condition (lr=0.05; lr=0.1)"), "the plots' notes: {md}");
    let failed = md.lines().find(|l| l.contains("CUDA out of memory") && l.contains("lr=0.05")).unwrap();
    assert!(failed.contains("| resnet | 26 |"), "{failed}");

    // The paper's shape has no conditions section, and its series keep their plain names.
    let plain = sweep(true);
    tables::write_tables(&plain, "tiny", &out).unwrap();
    let md = std::fs::read_to_string(report::write_report(&plain, "tiny", None, &out).unwrap()).unwrap();
    assert!(!md.contains("## Conditions") && !md.contains("condition ("), "{md}");
}

#[test]
fn plots_without_data_are_skipped_and_stale_files_removed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    plots::write_plots(&sweep(true), &out).unwrap();
    let runs = sweep(false);
    let files = plots::write_plots(&runs, &out).unwrap();
    let names: Vec<&str> = files.iter().map(|p| p.file_name().unwrap().to_str().unwrap()).collect();
    assert_eq!(names, &SVGS[..2]);
    assert!(SVGS[2..].iter().all(|f| !out.join(f).exists()), "stale gradient plots removed");
    let index = plots::plot_index(&runs).unwrap();
    assert_eq!(index.iter().map(|p| p.file).collect::<Vec<_>>(), SVGS);
    assert!(index[..2].iter().all(|p| p.skipped.is_none()));
    assert!(index[2].skipped.as_deref().unwrap().contains("gradient histogram"), "{:?}", index[2]);
    assert!(index[3].skipped.as_deref().unwrap().contains("per-block"), "{:?}", index[3]);
    assert!(index[4].skipped.as_deref().unwrap().contains("at initialisation"), "{:?}", index[4]);
    assert!(index[5].skipped.as_deref().unwrap().contains("more than one epoch"), "{:?}", index[5]);

    tables::write_tables(&runs, "tiny", &out).unwrap();
    let md = std::fs::read_to_string(report::write_report(&runs, "tiny", None, &out).unwrap()).unwrap();
    assert!(md.contains("_Not drawn: no completed resnet or grid run has a gradient histogram._"));
    assert!(md.contains("The sweep file was not given"));
    assert!(!md.contains("](grad_histogram.svg)"));

    // Nothing finished: nothing drawn, nothing written.
    let pending: Vec<RunRecord> =
        runs.into_iter().map(|r| RunRecord { state: JobState::Pending, result: None, ..r }).collect();
    let empty = dir.path().join("empty");
    assert!(plots::write_plots(&pending, &empty).unwrap().is_empty());
    assert!(plots::plot_index(&pending).unwrap().iter().all(|p| p.skipped.is_some()));
}

#[test]
fn a_finished_run_without_a_result_is_an_error_naming_the_job() {
    let mut runs = sweep(true);
    let bad = runs.iter_mut().find(|r| r.result.as_ref().is_some_and(|v| v.grad_analysis.is_some())).unwrap();
    bad.result = None;
    let job = bad.job_id.clone();
    let dir = tempfile::tempdir().unwrap();
    match plots::write_plots(&runs, dir.path()) {
        Err(e @ PlotError::BadResult { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(&job) && msg.contains("missing from a finished run"), "{msg}");
        }
        other => panic!("expected BadResult, got {other:?}"),
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
    let missing = dir.path().join("no-tables");
    let err = report::write_report(&runs, "tiny", None, &missing).unwrap_err();
    assert!(err.to_string().contains("table1.md"), "{err}");
}

#[test]
fn a_plot_that_cannot_be_written_names_its_file_and_spares_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let runs = sweep(true);
    tables::write_tables(&runs, "tiny", &out).unwrap();
    // A non-empty directory where the first plot goes: the rename into place fails.
    std::fs::create_dir_all(out.join(SVGS[0]).join("occupied")).unwrap();
    let err = plots::write_plots(&runs, &out).unwrap_err();
    assert!(matches!(&err, PlotError::Output(OutputError::Write { path, .. }) if path == &out.join(SVGS[0])), "{err}");
    assert!(err.to_string().contains(SVGS[0]), "{err}");
    for svg in &SVGS[1..] {
        assert!(out.join(svg).is_file(), "{svg} still written");
    }
    assert!(out.join("table1.csv").is_file(), "the tables are kept");
    let md = std::fs::read_to_string(report::write_report(&runs, "tiny", None, &out).unwrap()).unwrap();
    assert!(md.contains(&format!("_`{}` was not written; see the coordinator's log._", SVGS[0])), "{md}");
    assert!(md.contains(&format!("]({})", SVGS[1])));
}
