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
