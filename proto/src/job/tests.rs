//! The job schema's pure parts: the learning-rate schedule, the images and cost a job counts,
//! job ids that survive settings added later, and validation naming the field.

use super::*;

#[test]
fn paper_schedule_drops_at_150_and_225() {
    let cfg = TrainConfig::paper(Arch::Resnet, 26, 42);
    assert_eq!(cfg.milestone_epochs(), [150, 225]);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    assert!(close(lr_at(&cfg, 0), 0.1));
    assert!(close(lr_at(&cfg, 149), 0.1));
    assert!(close(lr_at(&cfg, 150), 0.01));
    assert!(close(lr_at(&cfg, 224), 0.01));
    assert!(close(lr_at(&cfg, 225), 0.001));
    assert!(close(lr_at(&cfg, 299), 0.001));
}

#[test]
fn short_runs_scale_the_milestones() {
    let mut cfg = TrainConfig::paper(Arch::Resnet, 26, 42);
    cfg.epochs = 4;
    let lrs: Vec<f64> = (0..4).map(|e| lr_at(&cfg, e)).collect();
    assert_eq!(cfg.milestone_epochs(), [2, 3]);
    assert!((lrs[0] - 0.1).abs() < 1e-12 && (lrs[1] - 0.1).abs() < 1e-12);
    assert!((lrs[2] - 0.01).abs() < 1e-12 && (lrs[3] - 0.001).abs() < 1e-12);
}

#[test]
fn warmup_ramps_linearly_then_follows_the_steps() {
    let mut cfg = TrainConfig::paper(Arch::Resnet, 26, 42);
    cfg.warmup_epochs = 4;
    assert!((lr_at(&cfg, 0) - 0.02).abs() < 1e-12);
    assert!((lr_at(&cfg, 3) - 0.08).abs() < 1e-12);
    assert!((lr_at(&cfg, 4) - 0.1).abs() < 1e-12);
}

#[test]
fn images_follow_the_data_and_the_subsets() {
    let mut job = JobSpec {
        train: TrainConfig::paper(Arch::Resnet, 26, 1),
        analysis: None,
        data: DataSpec::Cifar10,
        repeat: 0,
        program: None,
    };
    assert_eq!((job.train_images(), job.test_images()), (50_000, 10_000));
    // (4 blocks per stage + 0.5) x 300 epochs x 50,000 images.
    assert_eq!(job.cost(), 4.5 * 300.0 * 50_000.0);
    job.train.train_subset = Some(2_000);
    job.train.test_subset = Some(20_000);
    assert_eq!((job.train_images(), job.test_images()), (2_000, 10_000));
    job.data = DataSpec::Synthetic { train: 512, test: 256, seed: 0 };
    assert_eq!((job.train_images(), job.test_images()), (512, 256));
    assert_eq!(job.cost(), 4.5 * 300.0 * 512.0);
}

#[test]
fn a_later_setting_at_its_default_keeps_the_jobs_id() {
    let job = JobSpec {
        train: TrainConfig::paper(Arch::Grid, 26, 42),
        analysis: None,
        data: DataSpec::Cifar10,
        repeat: 0,
        program: None,
    };
    // The id as hashed before `deterministic` existed (the spec's JSON without it).
    let before = {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_string(&job)
            .unwrap_or_default()
            .replace(",\"deterministic\":false", "")
            .replace(",\"precision\":{\"conv\":\"tf32\",\"matmul\":\"highest\"}", "");
        assert!(!json.contains("deterministic") && !json.contains("precision"), "{json}");
        Sha256::digest(json.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect::<String>()
    };
    assert_eq!(job.id(), before);
    let strict = JobSpec { train: TrainConfig { deterministic: true, ..job.train.clone() }, ..job.clone() };
    assert_ne!(strict.id(), job.id(), "a deterministic job is another job");
    let ieee = Precision { conv: ConvPrecision::Ieee, ..Precision::default() };
    let exact = JobSpec { train: TrainConfig { precision: ieee, ..job.train.clone() }, ..job.clone() };
    assert_ne!(exact.id(), job.id(), "another precision is another job");
}

#[test]
fn validation_names_the_field() {
    let mut cfg = TrainConfig::paper(Arch::Grid, 26, 1);
    assert_eq!(cfg.validate(), Ok(()));
    cfg.epochs = 0;
    let mut job = JobSpec { train: cfg.clone(), analysis: None, data: DataSpec::Cifar10, repeat: 0, program: None };
    assert!(job.validate().unwrap_err().to_string().starts_with("epochs = 0"));
    job.analysis = Some(AnalysisConfig { at_epochs: vec![0], ..AnalysisConfig::default() });
    assert_eq!(job.validate(), Ok(()), "analysis only");
    job.train.epochs = 4;
    job.analysis = Some(AnalysisConfig { at_epochs: vec![0, 2, 2], ..AnalysisConfig::default() });
    assert_eq!(job.validate().unwrap_err().to_string(), "analysis.at_epochs[2] = 2: appears twice");
    job.analysis = Some(AnalysisConfig { at_epochs: vec![0, 5], ..AnalysisConfig::default() });
    assert!(job.validate().unwrap_err().to_string().starts_with("analysis.at_epochs[1] = 5 (epochs: 4): is beyond"));
    job.analysis = Some(AnalysisConfig { at_epochs: vec![3, 1], ..AnalysisConfig::default() });
    assert!(job.validate().unwrap_err().to_string().contains("increasing"));
    cfg.epochs = 10;
    cfg.batch_size = 1;
    assert!(cfg.validate().unwrap_err().to_string().starts_with("batch_size = 1"));
    cfg.batch_size = 128;
    cfg.depth = 20;
    assert!(cfg.validate().unwrap_err().to_string().contains("8 or 26"));
}

/// The id as the first release's code computed it: serde's JSON of the spec with the settings
/// added later cut out of the text at their defaults. Kept here only to check the canonical form
/// against it.
fn id_as_before(job: &JobSpec) -> String {
    use sha2::{Digest, Sha256};
    let mut json = serde_json::to_string(job).unwrap();
    for default in [",\"deterministic\":false", ",\"precision\":{\"conv\":\"tf32\",\"matmul\":\"highest\"}"] {
        json = json.replacen(default, "", 1);
    }
    Sha256::digest(json.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// A varied job from `n`: every setting moves through several values, odd floats included.
fn varied(n: u64) -> JobSpec {
    let pick = |k: u64, m: u64| ((n / k) ^ (n.wrapping_mul(2_654_435_761) >> 7)) % m;
    let arch = [Arch::Vgg, Arch::Resnet, Arch::Grid][pick(1, 3) as usize];
    let mut t =
        TrainConfig::paper(arch, [8, 26, 98, 1538][pick(3, 4) as usize], [0, 42, u64::MAX][pick(5, 3) as usize]);
    t.epochs = [1, 2, 300][pick(7, 3) as usize];
    t.lr = [0.1, 1e-5, 0.05, 3.0, 1e-7, 0.1 + 0.2, 1e17][pick(11, 7) as usize];
    t.momentum = [0.9, 0.0, 0.99][pick(13, 3) as usize];
    t.nesterov = t.momentum > 0.0 && pick(17, 2) == 0;
    t.weight_decay = [4e-4, 0.0, 5e-5][pick(19, 3) as usize];
    t.lr_milestones = [vec![0.5, 0.75], vec![], vec![0.3]][pick(23, 3) as usize].clone();
    t.warmup_epochs = [0, 1][pick(29, 2) as usize].min(t.epochs - 1);
    t.crop_padding = [4, 0][pick(31, 2) as usize];
    t.flip = pick(37, 2) == 0;
    t.train_subset = [None, Some(2000)][pick(41, 2) as usize];
    t.test_subset = [None, Some(500)][pick(43, 2) as usize];
    t.eval_batch_size = [500, 50][pick(47, 2) as usize];
    t.deterministic = pick(53, 3) == 0;
    t.precision = Precision {
        conv: [ConvPrecision::Tf32, ConvPrecision::Ieee][pick(59, 2) as usize],
        matmul: [MatmulPrecision::Highest, MatmulPrecision::High][pick(61, 2) as usize],
    };
    let analysis = match pick(67, 3) {
        0 => None,
        1 => Some(AnalysisConfig::default()),
        _ => Some(AnalysisConfig { batch_size: 25, bn_train_mode: true, at_epochs: vec![0, 1] }),
    };
    let data = match pick(71, 2) {
        0 => DataSpec::Cifar10,
        _ => DataSpec::Synthetic { train: 64, test: 32, seed: n },
    };
    JobSpec { train: t, analysis, data, repeat: pick(73, 3) as u32, program: None }
}

#[test]
fn the_canonical_form_gives_the_ids_of_before() {
    for n in 0..3000 {
        let job = varied(n);
        assert_eq!(job.id(), id_as_before(&job), "job {n}: {}", job.canonical_text());
    }
}

#[test]
fn a_setting_added_at_its_default_is_left_out_by_rule() {
    let job = JobSpec {
        train: TrainConfig::paper(Arch::Grid, 26, 42),
        analysis: None,
        data: DataSpec::Cifar10,
        repeat: 0,
        program: None,
    };
    let text = job.canonical_text();
    assert!(!text.contains("deterministic") && !text.contains("precision"), "{text}");
    // A setting added later, optional (default: absent), written by the rule: absent, nothing
    // moves; present, it is written and the text differs.
    let with = |program: Option<&str>| {
        let mut out = String::new();
        object(&mut out, |f| {
            f.always("job", &text.as_str()).unless_default("program", &program, &None);
        });
        out
    };
    assert_eq!(with(None), format!("{{\"job\":{}}}", canonical_json_string(&text)));
    assert!(with(Some("train.py")).ends_with(",\"program\":\"train.py\"}"));
    assert_eq!(CANONICAL_VERSION, 1);
}

/// `s` as a JSON string, by serde (to check the form's own quoting).
fn canonical_json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn no_data_set_is_for_programs_only_and_hashes_apart() {
    let mut job = JobSpec {
        train: TrainConfig::paper(Arch::Grid, 26, 42),
        analysis: None,
        data: DataSpec::None,
        repeat: 0,
        program: None,
    };
    let e = job.validate().unwrap_err().to_string();
    assert!(e.starts_with("data = none: the built-in trainer needs a data set"), "{e}");
    assert!(job.canonical_text().contains("\"data\":{\"kind\":\"none\"}"), "{}", job.canonical_text());
    let json = serde_json::to_string(&job).unwrap();
    assert_eq!(serde_json::from_str::<JobSpec>(&json).unwrap(), job, "{json}");
    let cifar = JobSpec { data: DataSpec::Cifar10, ..job.clone() };
    assert_ne!(job.id(), cifar.id());
    job.program = Some(crate::job::ProgramSpec {
        command: vec!["t".to_owned()],
        env: Default::default(),
        metric: crate::job::Metric { name: "a".to_owned(), goal: crate::job::Goal::Max },
        settings: Default::default(),
    });
    assert_eq!(job.validate(), Ok(()));
}
