//! Tests of sweep expansion: the shipped sweeps, every kind of rejected input with its position
//! and key, and the expansion features (axes over any setting, include, exclude, repeats).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use gridsweep_proto::job::{AnalysisConfig, Arch, DataSpec, JobSpec, TrainConfig};

use super::*;

/// A sweep file shipped in `sweeps/`.
fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("sweeps").join(name)
}

/// A small valid sweep; the tests edit it.
const BASE: &str = "\
name: x
data:
  kind: cifar10
train:
  epochs: 2
axes:
  arch: [vgg, resnet, grid]
  depth: [8, 26]
  seed: [1]
";

fn ok(text: &str) -> Sweep {
    match parse(text, Path::new("sweeps/x.yaml")) {
        Ok(sweep) => sweep,
        Err(e) => panic!("expected a valid sweep, got: {e}\n{text}"),
    }
}

fn err(text: &str) -> String {
    match parse(text, Path::new("sweeps/x.yaml")) {
        Ok(sweep) => panic!("expected an error, got {} jobs\n{text}", sweep.jobs.len()),
        Err(e) => e.to_string(),
    }
}

fn ids(sweep: &Sweep) -> Vec<String> {
    sweep.jobs.iter().map(JobSpec::id).collect()
}

#[test]
fn paper_sweep_is_the_papers_36_jobs() {
    let sweep = load(&shipped("paper.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sweep.name, "paper");
    assert_eq!(sweep.data, DataSpec::Cifar10);
    assert_eq!((sweep.max_attempts, sweep.lease_ttl_s), (3, 300));
    assert_eq!(sweep.jobs.len(), 36);
    assert_eq!(ids(&sweep).iter().collect::<HashSet<_>>().len(), 36);
    let analysed: Vec<&JobSpec> = sweep.jobs.iter().filter(|j| j.analysis.is_some()).collect();
    assert_eq!(analysed.len(), 9, "3 archs x 3 seeds at depth 1538");
    assert!(analysed.iter().all(|j| j.train.depth == 1538 && j.analysis == Some(AnalysisConfig::default())));
    // Axes in the file's order, the last (seed) fastest; the paper's recipe everywhere.
    let first = &sweep.jobs[0];
    let expected = JobSpec {
        train: TrainConfig::paper(Arch::Vgg, 26, 42),
        analysis: None,
        data: DataSpec::Cifar10,
        repeat: 0,
        program: None,
    };
    assert_eq!(*first, expected);
    assert_eq!((sweep.jobs[1].train.depth, sweep.jobs[1].train.seed), (26, 43));
    assert_eq!((sweep.jobs[3].train.depth, sweep.jobs[3].train.seed), (98, 42));
    assert_eq!(sweep.jobs[35].train, TrainConfig::paper(Arch::Grid, 1538, 44));
    assert_eq!(sweep.base, TrainConfig::paper(Arch::Vgg, 26, 42));
    // Identity is a stable hash: these must never change (results would be recomputed).
    assert_eq!(sweep.jobs[0].id(), ID_VGG_26_42);
    assert_eq!(sweep.jobs[35].id(), ID_GRID_1538_44);
}

/// `paper.yaml`'s first and last job ids, computed once (and checked by hand: the first 12 hex
/// digits of the SHA-256 of the job's JSON).
const ID_VGG_26_42: &str = "1c2b219556ef";
const ID_GRID_1538_44: &str = "9d2f7d02365e";

#[test]
fn smoke_sweep_is_small() {
    let sweep = load(&shipped("smoke.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sweep.jobs.len(), 12);
    assert_eq!(ids(&sweep).iter().collect::<HashSet<_>>().len(), 12);
    assert!(sweep.jobs.iter().all(|j| j.train.epochs == 2 && j.train.train_subset == Some(2000)));
    assert!(sweep.jobs.iter().all(|j| j.analysis.is_some() == (j.train.depth == 26)));
    assert_eq!(sweep.jobs[0].id(), ID_SMOKE_VGG_8_42);
}

/// `smoke.yaml`'s first job id, computed once.
const ID_SMOKE_VGG_8_42: &str = "a3cee9f7fb65";

#[test]
fn rejected_inputs_name_file_position_and_key() {
    let with = |from: &str, to: &str| {
        assert!(BASE.contains(from), "{from}");
        BASE.replacen(from, to, 1)
    };
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("unknown top-level key", format!("{BASE}epoch: 3\n"), vec!["sweeps/x.yaml:10:1: ", "unknown field `epoch`"]),
        (
            "unknown key in train",
            with("  epochs: 2", "  epoch: 2"),
            vec!["sweeps/x.yaml:5:3: train.epoch: unknown field `epoch` (did you mean `epochs`?), expected one of"],
        ),
        (
            "wrong type",
            with("epochs: 2", "epochs: many"),
            vec!["sweeps/x.yaml:5:3: train.epochs: invalid type: string \"many\", expected u32"],
        ),
        (
            "grid at depth 20",
            with("[8, 26]", "[8, 20]"),
            vec!["sweeps/x.yaml:8:3: axes.depth: grid at depth 20 is invalid", "nearest valid depths: 8 or 26"],
        ),
        ("empty axis", with("seed: [1]", "seed: []"), vec!["sweeps/x.yaml:9:3: axes.seed: empty axis"]),
        (
            "zero epochs",
            with("epochs: 2", "epochs: 0"),
            vec!["sweeps/x.yaml:5:3: train.epochs: trains nothing: 0 epochs is only for an analysis-only job"],
        ),
        (
            "negative epochs",
            with("epochs: 2", "epochs: -3"),
            vec!["sweeps/x.yaml:5:3: train.epochs: invalid value: integer `-3`, expected u32"],
        ),
        ("missing seed axis", with("  seed: [1]\n", ""), vec!["sweeps/x.yaml:6:1: axes.seed: missing axis"]),
        (
            "axis also in train",
            format!("{BASE}  epochs: [1, 2]\n"),
            vec!["sweeps/x.yaml:10:3: axes.epochs: `epochs` is both an axis and a base setting"],
        ),
        ("unclosed bracket", with("[8, 26]", "[8, 26"), vec!["sweeps/x.yaml:9:", "did not find expected ',' or ']'"]),
        (
            "job cap",
            format!("{BASE}max_jobs: 2\n"),
            vec!["sweeps/x.yaml:10:1: max_jobs: the sweep expands to 6 jobs, more than max_jobs = 2"],
        ),
        (
            "synthetic data without its sizes",
            with("kind: cifar10", "kind: synthetic\n  train: 100"),
            vec!["sweeps/x.yaml:2:1: data: synthetic data needs train, test and seed (missing: test, seed)"],
        ),
        (
            "cifar10 with a size",
            with("kind: cifar10", "kind: cifar10\n  test: 100"),
            vec!["sweeps/x.yaml:4:3: data.test: only synthetic data takes"],
        ),
        (
            "unknown data kind",
            with("cifar10", "cifar100"),
            vec!["sweeps/x.yaml:3:9: data.kind: unknown variant `cifar100`"],
        ),
        (
            "arch in train",
            with("  epochs: 2", "  arch: vgg"),
            vec!["sweeps/x.yaml:5:3: train.arch: arch, depth and seed"],
        ),
        (
            "unknown arch",
            with("vgg, resnet", "vgg, densenet"),
            vec!["sweeps/x.yaml:7:15: axes.arch[1]: unknown variant `densenet`"],
        ),
        ("axis not a list", with("seed: [1]", "seed: 1"), vec!["sweeps/x.yaml:9:3: axes.seed: an axis is a list"]),
        ("unknown axis", format!("{BASE}  lrr: [0.1]\n"), vec!["sweeps/x.yaml:10:3: axes.lrr: unknown field `lrr`"]),
        ("bad name", with("name: x", "name: a/b"), vec!["sweeps/x.yaml:1:1: name: \"a/b\" is not a valid name"]),
        (
            "retry",
            format!("{BASE}retry: {{max_attempts: 0}}\n"),
            vec!["sweeps/x.yaml:10:9: retry.max_attempts: must be at least 1"],
        ),
        (
            "retry typo",
            format!("{BASE}retry:\n  attempts: 2\n"),
            vec!["sweeps/x.yaml:11:3: retry: unknown field `attempts`"],
        ),
        (
            "lease",
            format!("{BASE}lease_ttl_s: 1\n"),
            vec!["sweeps/x.yaml:10:1: lease_ttl_s: must be between 5 and 86400"],
        ),
        (
            "zero max_jobs",
            format!("{BASE}max_jobs: 0\n"),
            vec!["sweeps/x.yaml:10:1: max_jobs: must be between 1 and 1000000 (got 0)"],
        ),
        ("zero repeats", format!("{BASE}repeats: 0\n"), vec!["sweeps/x.yaml:10:1: repeats: must be at least 1"]),
        (
            "include without seed",
            format!("{BASE}include:\n  - {{arch: vgg, depth: 14}}\n"),
            vec!["sweeps/x.yaml:11:3: include[0]: missing `seed`"],
        ),
        (
            "include at a bad depth",
            format!("{BASE}include:\n  - arch: resnet\n    depth: 25\n    seed: 3\n"),
            vec!["sweeps/x.yaml:12:5: include[0].depth: resnet at depth 25 is invalid", "20 or 26"],
        ),
        (
            "exclude value not on the axis",
            format!("{BASE}exclude:\n  - {{arch: grid, depth: 14}}\n"),
            vec!["sweeps/x.yaml:11:18: exclude[0].depth: 14 is not a value of axes.depth"],
        ),
        (
            "analysis selecting nothing",
            format!("{BASE}analysis:\n  when: {{depth: [1538]}}\n"),
            vec!["sweeps/x.yaml:11:3: analysis.when: selects no job"],
        ),
        (
            "analysis typo",
            format!("{BASE}analysis:\n  when: {{dpeth: [26]}}\n"),
            vec!["sweeps/x.yaml:11:10: analysis.when.dpeth: unknown field `dpeth` (did you mean `depth`?)"],
        ),
        (
            "analysed epoch beyond the last",
            format!("{BASE}analysis:\n  at_epochs: [0, 1, 3]\n"),
            vec![
                "sweeps/x.yaml:11:21: analysis.at_epochs[2]: is beyond the job's last epoch (train.epochs) (got 3 (epochs: 2) in the job arch=vgg depth=8 seed=1 epochs=2)",
            ],
        ),
        (
            "analysed epoch twice",
            format!("{BASE}analysis:\n  at_epochs: [0, 1, 1]\n"),
            vec!["sweeps/x.yaml:11:21: analysis.at_epochs[2]: epoch 1 appears twice"],
        ),
        (
            "analysed epochs out of order",
            format!("{BASE}analysis:\n  at_epochs: [1, 0]\n"),
            vec!["sweeps/x.yaml:11:18: analysis.at_epochs[1]: epoch 0 comes after 1"],
        ),
        (
            "negative analysed epoch",
            format!("{BASE}analysis:\n  at_epochs: [-1]\n"),
            vec!["sweeps/x.yaml:11:15: analysis.at_epochs[0]: -1 is not an epoch"],
        ),
        (
            "analysed epochs not a list",
            format!("{BASE}analysis:\n  at_epochs: 3\n"),
            vec!["sweeps/x.yaml:11:3: analysis.at_epochs: a list of epochs"],
        ),
        (
            "interaction of settings",
            with("  epochs: 2", "  warmup_epochs: 5\n  epochs: 2"),
            vec!["sweeps/x.yaml:5:3: train.warmup_epochs: must be fewer than the epochs (got 5)"],
        ),
        (
            "lr axis value",
            format!("{BASE}  lr: [0.1, -1]\n"),
            vec![
                "sweeps/x.yaml:10:3: axes.lr: must be a positive number (got -1 in the job arch=vgg depth=8 seed=1 lr=-1.0)",
            ],
        ),
        ("not a map", "- 1\n- 2\n".to_owned(), vec!["sweeps/x.yaml:1:1: invalid type: sequence, expected a sweep"]),
        ("empty file", String::new(), vec!["sweeps/x.yaml: the sweep file is empty"]),
        (
            "duplicate key",
            with("  epochs: 2", "  epochs: 2\n  epochs: 3"),
            vec!["sweeps/x.yaml:", "duplicate entry with key \"epochs\""],
        ),
    ];
    let mut failures = Vec::new();
    for (what, text, wanted) in &cases {
        let message = err(text);
        if let Some(w) = wanted.iter().find(|w| !message.contains(*w)) {
            failures.push(format!("{what}: wanted {w:?} in\n    {message}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn any_setting_can_be_an_axis() {
    let sweep = ok(&format!("{BASE}  lr: [0.1, 0.05]\n"));
    assert_eq!(sweep.jobs.len(), 12);
    let lrs: Vec<f64> = sweep.jobs.iter().take(2).map(|j| j.train.lr).collect();
    assert_eq!(lrs, [0.1, 0.05], "the last axis varies fastest");
    assert!(sweep.jobs.iter().all(|j| j.train.epochs == 2));
    assert!(describe(&sweep.jobs[1], &sweep.base).ends_with(" lr=0.05"));
    // `lr: 1` is the same job as `lr: 1.0`.
    let a = ok(&format!("{BASE}  lr: [1]\n"));
    let b = ok(&format!("{BASE}  lr: [1.0]\n"));
    assert_eq!(ids(&a), ids(&b));
}

#[test]
fn include_exclude_and_duplicates() {
    let text = format!(
        "{BASE}exclude:\n  - {{arch: grid, depth: 8}}\n  - arch: vgg\ninclude:\n  - {{arch: resnet, depth: 14, seed: 7, lr: 0.05}}\n  - {{arch: resnet, depth: 8, seed: 1}}\n"
    );
    let sweep = ok(&text);
    let got: Vec<(Arch, u32, u64)> = sweep.jobs.iter().map(|j| (j.train.arch, j.train.depth, j.train.seed)).collect();
    // resnet 8 1 from the include duplicates the product's and is dropped.
    assert_eq!(got, [(Arch::Resnet, 8, 1), (Arch::Resnet, 26, 1), (Arch::Grid, 26, 1), (Arch::Resnet, 14, 7)]);
    let included = &sweep.jobs[3].train;
    assert_eq!((included.lr, included.epochs), (0.05, 2), "an include is merged over train");
    // Excluding an invalid combination makes the sweep valid.
    ok(&BASE.replacen("[8, 26]", "[8, 20]", 1).replacen(
        "seed: [1]",
        "seed: [1]\nexclude: [{arch: grid, depth: 20}]",
        1,
    ));
}

#[test]
fn repeats_make_distinct_jobs_with_the_same_seed() {
    let sweep = ok(&format!("{BASE}repeats: 3\n"));
    assert_eq!(sweep.jobs.len(), 18);
    assert_eq!(ids(&sweep).iter().collect::<HashSet<_>>().len(), 18);
    let first: Vec<(u32, u64)> = sweep.jobs.iter().take(3).map(|j| (j.repeat, j.train.seed)).collect();
    assert_eq!(first, [(0, 1), (1, 1), (2, 1)]);
    assert_eq!(sweep.jobs[0].train, sweep.jobs[2].train);
    assert!(describe(&sweep.jobs[2], &sweep.base).ends_with(" repeat=2"));
    let capped = err(&format!("{BASE}repeats: 3\nmax_jobs: 17\n"));
    assert!(capped.contains("expands to 18 jobs, more than max_jobs = 17"), "{capped}");
}

#[test]
fn analysis_defaults_and_selection() {
    let all = ok(&format!("{BASE}analysis: {{}}\n"));
    assert!(all.jobs.iter().all(|j| j.analysis == Some(AnalysisConfig::default())));
    let some = ok(&format!("{BASE}analysis:\n  when: {{arch: [grid], depth: [26]}}\n  bn_train_mode: true\n"));
    let picked: Vec<&JobSpec> = some.jobs.iter().filter(|j| j.analysis.is_some()).collect();
    assert_eq!(picked.len(), 1);
    assert_eq!((picked[0].train.arch, picked[0].train.depth), (Arch::Grid, 26));
    assert!(describe(picked[0], &some.base).ends_with(" analysis(bn_train_mode=true)"));
}

#[test]
fn synthetic_data_and_huge_axes() {
    let sweep = ok(&BASE.replacen("kind: cifar10", "kind: synthetic\n  train: 512\n  test: 256\n  seed: 0", 1));
    assert_eq!(sweep.data, DataSpec::Synthetic { train: 512, test: 256, seed: 0 });
    // A product far over the cap is refused without being expanded.
    let seeds: Vec<String> = (0..2000).map(|s| s.to_string()).collect();
    let big = BASE.replacen("seed: [1]", &format!("seed: [{}]\n  lr: [0.1, 0.2, 0.3, 0.4, 0.5]", seeds.join(", ")), 1);
    let message = err(&format!("{big}max_jobs: 100\n"));
    assert!(message.contains("expands to 60000 jobs, more than max_jobs = 100 (axis combinations"), "{message}");
}

#[test]
fn expansion_text_lists_every_job() {
    let sweep = load(&shipped("smoke.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let text = expansion_text(&sweep);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"12 jobs"));
    assert!(text.contains("# base settings: epochs=2 batch_size=64 train_subset=2000 test_subset=500"), "{text}");
    let first = describe(&sweep.jobs[0], &sweep.base);
    assert_eq!(first, format!("{} vgg       8   42", sweep.jobs[0].id()));
    assert!(lines.contains(&first.as_str()));
    assert!(text.contains(" grid     26   43  analysis\n"), "{text}");
}

#[test]
fn a_column_goes_between_the_seed_and_the_settings() {
    let sweep = load(&shipped("smoke.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let analysed = sweep.jobs.iter().find(|j| j.analysis.is_some()).unwrap();
    let line = describe_with(analysed, &sweep.base, Some("  1m 05s"));
    assert!(line.starts_with(&analysed.id()) && line.ends_with("   1m 05s  analysis"), "{line}");
    assert_eq!(
        legend(&sweep, Some("expected")),
        "# id arch depth seed expected, then settings that differ from the base (6 analysed)"
    );
    assert!(expansion_text(&sweep).starts_with(&header(&sweep)));
}

#[test]
fn unreadable_file_names_it() {
    let e = load(Path::new("/nonexistent/sweep.yaml")).map(|_| ()).unwrap_err().to_string();
    assert!(e.starts_with("/nonexistent/sweep.yaml: cannot read the sweep file"), "{e}");
}

#[test]
fn no_input_panics() {
    let text = std::fs::read_to_string(shipped("paper.yaml")).unwrap_or_default();
    let bytes = text.as_bytes();
    // Every prefix, and every single-byte edit to a few nasty bytes.
    for cut in 0..bytes.len() {
        let _ = parse(&String::from_utf8_lossy(&bytes[..cut]), Path::new("p.yaml"));
    }
    for i in (0..bytes.len()).step_by(3) {
        for b in [b'[', b'{', b':', b'-', b'#', b'"', b' ', b'\t', b'&', b'*', b'!'] {
            let mut edited = bytes.to_vec();
            edited[i] = b;
            let _ = parse(&String::from_utf8_lossy(&edited), Path::new("p.yaml"));
        }
    }
    for weird in [
        "axes: {arch: [vgg], depth: [8], seed: [18446744073709551615]}",
        "a: &a [*a]",
        "? [1]\n: 2",
        "name: x\ndata: {kind: cifar10}\naxes: {1: [2]}",
        "name: é\ndata: {kind: cifar10}\n# ünï\naxes:\n  depth: [\"é, ü\", 2]\n  arch: [é]\n  seed: [1]\n\t- x",
        "name: x\ndata: {kind: cifar10}\naxes:\n  arch: [\"é\\\"\", vgg]\n  depth: [8]\n  seed: [1]\n",
        "name: x\ndata: {kind: cifar10}\naxes:\n  arch: [vgg]\n  depth: [8]\n  seed: [1]\n  ünï: [1]\nexclude: [{é: 1}]",
    ] {
        let _ = parse(weird, Path::new("p.yaml"));
    }
}

#[test]
fn the_format_example_in_the_readme_is_valid() {
    let readme = std::fs::read_to_string(shipped("README.md")).unwrap_or_default();
    let example = readme.split("```yaml\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap_or_default();
    let sweep = ok(example);
    // 36 - 3 seeds of vgg at 1538 + 1 include.
    assert_eq!(sweep.jobs.len(), 34);
    assert_eq!(sweep.jobs.iter().filter(|j| j.analysis.is_some()).count(), 6);
}

#[test]
fn deterministic_runs_are_asked_for_in_the_base_or_on_an_axis() {
    let base = ok(&BASE.replace("  epochs: 2\n", "  epochs: 2\n  deterministic: true\n"));
    assert!(base.jobs.iter().all(|j| j.train.deterministic));
    let axis = ok(&BASE.replace("  seed: [1]\n", "  seed: [1]\n  deterministic: [false, true]\n"));
    assert_eq!(axis.jobs.len(), 12);
    assert_eq!(axis.jobs.iter().filter(|j| j.train.deterministic).count(), 6);
    // The default leaves the jobs (and their ids) as they were before the setting existed.
    let plain = ok(BASE);
    let same: Vec<&JobSpec> = axis.jobs.iter().filter(|j| !j.train.deterministic).collect();
    assert_eq!(ids(&plain), same.iter().map(|j| j.id()).collect::<Vec<_>>());
    let e = err(&BASE.replace("  epochs: 2\n", "  epochs: 2\n  deterministic: maybe\n"));
    assert!(e.starts_with("sweeps/x.yaml:6:") && e.contains("train.deterministic"), "{e}");
}

#[test]
fn analysis_at_epochs_and_analysis_only_jobs() {
    let text = BASE.replacen("epochs: 2", "epochs: 0", 1) + "analysis:\n  at_epochs: [0]\n  bn_train_mode: true\n";
    let only = ok(&text);
    assert!(only.jobs.iter().all(|j| j.train.epochs == 0 && j.analysis.as_ref().unwrap().at_epochs == [0]));
    let over = ok(&format!("{BASE}analysis:\n  at_epochs: [0, 1, 2]\n"));
    assert!(over.jobs.iter().all(|j| j.analysis.as_ref().unwrap().at_epochs == [0, 1, 2]));
    // Without at_epochs, the ids are those of before the setting existed.
    let after = ok(&format!("{BASE}analysis: {{}}\n"));
    let json = serde_json::to_string(&after.jobs[0]).unwrap();
    assert!(!json.contains("at_epochs"), "{json}");
    assert_ne!(ids(&after), ids(&over), "analysed at other epochs: other jobs");
    let sweep = load(&shipped("gradflow.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sweep.jobs.len(), 12);
    assert!(sweep.jobs.iter().all(|j| j.analysis.as_ref().is_some_and(|a| a.at_epochs == [0, 1] && a.bn_train_mode)));
}

#[test]
fn precision_is_a_setting_with_pytorchs_default() {
    use gridsweep_proto::job::{ConvPrecision, MatmulPrecision, Precision};
    let default = ok(BASE);
    assert!(default.jobs.iter().all(|j| j.train.precision == Precision::default()));
    assert_eq!(Precision::default(), Precision { conv: ConvPrecision::Tf32, matmul: MatmulPrecision::Highest });
    let ieee = ok(&BASE.replace("  epochs: 2\n", "  epochs: 2\n  precision: {conv: ieee}\n"));
    assert!(
        ieee.jobs
            .iter()
            .all(|j| j.train.precision.conv == ConvPrecision::Ieee
                && j.train.precision.matmul == MatmulPrecision::Highest)
    );
    assert_ne!(ids(&ieee), ids(&default), "another precision, other jobs");
    let axis = ok(&format!("{BASE}  precision: [{{conv: tf32}}, {{conv: ieee, matmul: high}}]\n"));
    assert_eq!(axis.jobs.len(), 12);
    assert_eq!(axis.jobs.iter().filter(|j| j.train.precision.matmul == MatmulPrecision::High).count(), 6);
    let e = err(&BASE.replace("  epochs: 2\n", "  epochs: 2\n  precision: {conv: fp16}\n"));
    assert!(e.starts_with("sweeps/x.yaml:6:3: train.precision") && e.contains("unknown variant `fp16`"), "{e}");
    let e = err(&BASE.replace("  epochs: 2\n", "  epochs: 2\n  precision: {matmul: medium}\n"));
    assert!(e.contains("train.precision") && e.contains("`highest`"), "{e}");
    let e = err(&BASE.replace("  epochs: 2\n", "  epochs: 2\n  precision: {conf: ieee}\n"));
    assert!(e.contains("train.precision") && e.contains("unknown field `conf`"), "{e}");
}
