//! A device's measured speed, as `worker bench --calibrate` writes it and the coordinator reads
//! it: training and evaluation images per second for each (architecture, depth, batch size) a
//! sweep uses, with what was measured on (device, libtorch, speed switches) and when. With it a
//! job's expected device time is a number of seconds instead of relative cost units (see
//! `estimate`).
//!
//! The file is JSON, written through a temporary file and a rename so that a reader never sees
//! half of it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::job::{Arch, JobSpec, TrainConfig};

/// The format written by this build; a file of another format is refused, not misread.
pub const CALIBRATION_FORMAT: u32 = 1;

/// One device's speed on the models of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// `CALIBRATION_FORMAT` when written; checked on load.
    pub format: u32,
    /// The device as the worker names it (`cpu`, `cuda:0`): figures hold for that kind of device.
    pub device: String,
    /// The GPU's name or the CPU and its thread count, so a reader can tell whose speed this is.
    pub device_name: String,
    /// The libtorch that ran the measurement (kernels and their speed change between versions).
    pub libtorch_version: String,
    /// When it was measured, seconds since the Unix epoch: a stale calibration can be spotted.
    pub created_unix_s: u64,
    /// How grid stages ran (`sequential` or `wavefront`): a job run otherwise runs at another speed.
    pub grid_exec: String,
    /// Memory layout of activations and weights (`contiguous` or `channels-last`), likewise.
    pub memory_format: String,
    /// Whether TF32 was allowed on CUDA, likewise.
    pub tf32: bool,
    /// CPU threads libtorch used (the CPU's figures scale with them).
    pub threads: i32,
    /// Untimed training steps before each model's timed ones.
    pub warmup_steps: u32,
    /// Timed training steps of each model.
    pub steps: u32,
    /// Timed evaluation batches of each model.
    pub eval_batches: u32,
    /// One entry per measured (architecture, depth, batch size, evaluation batch size).
    pub entries: Vec<CalibrationEntry>,
}

/// The measured speed of one model at one batch size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationEntry {
    /// The architecture.
    pub arch: Arch,
    /// Its depth.
    pub depth: u32,
    /// Images per training step: speed per image depends on it.
    pub batch_size: i64,
    /// Images per evaluation batch the evaluation rate was measured at.
    pub eval_batch_size: i64,
    /// Training images per second: augmentation, forward, backward and the SGD update.
    pub train_images_per_s: f64,
    /// Evaluation images per second: forward passes in evaluation mode without gradients.
    pub eval_images_per_s: f64,
}

/// Why a calibration file cannot be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The file could not be read.
    #[error("{}: cannot read the calibration: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a calibration in JSON.
    #[error("{}:{line}:{column}: not a calibration file: {message}", file.display())]
    Parse {
        /// The file.
        file: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde's description.
        message: String,
    },
    /// The file parses but a field holds what no measurement gives.
    #[error("{}: {field}: {reason}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// The field's path, e.g. `entries[2].train_images_per_s`.
        field: String,
        /// What it must be.
        reason: String,
    },
    /// The file could not be written.
    #[error("{}: cannot write the calibration: {source}", file.display())]
    Write {
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A job's model and batch size that a calibration has not measured.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "no entry for {arch} at depth {depth} with batch_size {batch_size} (measure it with \
     `worker bench --calibrate SWEEP --out FILE`)"
)]
pub struct MissingEntry {
    /// The job's architecture.
    pub arch: Arch,
    /// Its depth.
    pub depth: u32,
    /// Its batch size.
    pub batch_size: i64,
}

impl Calibration {
    /// Reads and checks the calibration in `file`.
    pub fn load(file: &Path) -> Result<Self, CalibrationError> {
        let text =
            std::fs::read_to_string(file).map_err(|source| CalibrationError::Read { file: file.to_owned(), source })?;
        let cal: Calibration = serde_json::from_str(&text).map_err(|e| {
            // serde's message ends with the position, which the error puts in front.
            let mut message = e.to_string();
            let position = format!(" at line {} column {}", e.line(), e.column());
            if message.ends_with(&position) {
                message.truncate(message.len() - position.len());
            }
            CalibrationError::Parse { file: file.to_owned(), line: e.line(), column: e.column(), message }
        })?;
        cal.check().map_err(|(field, reason)| CalibrationError::Invalid { file: file.to_owned(), field, reason })?;
        Ok(cal)
    }

    /// Writes the calibration to `file` as pretty JSON, through `FILE.tmp` and a rename.
    pub fn save(&self, file: &Path) -> Result<(), CalibrationError> {
        let failed = |source| CalibrationError::Write { file: file.to_owned(), source };
        let json = serde_json::to_string_pretty(self).map_err(|e| failed(std::io::Error::other(e)))?;
        let mut tmp = file.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, json + "\n").map_err(failed)?;
        std::fs::rename(&tmp, file).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            failed(e)
        })
    }

    /// The first problem with the fields, as (field path, what it must be).
    fn check(&self) -> Result<(), (String, String)> {
        if self.format != CALIBRATION_FORMAT {
            return Err(("format".into(), format!("is {}, this build reads {CALIBRATION_FORMAT}", self.format)));
        }
        for (i, e) in self.entries.iter().enumerate() {
            let rates = [("train_images_per_s", e.train_images_per_s), ("eval_images_per_s", e.eval_images_per_s)];
            if let Some((name, v)) = rates.into_iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
                return Err((format!("entries[{i}].{name}"), format!("is {v}, must be a positive number")));
            }
            if e.batch_size < 1 || e.eval_batch_size < 1 {
                return Err((format!("entries[{i}]"), "batch sizes must be at least 1".into()));
            }
        }
        Ok(())
    }

    /// The entry measured for `arch` at `depth` and `batch_size` (the first, if several).
    pub fn entry(&self, arch: Arch, depth: u32, batch_size: i64) -> Option<&CalibrationEntry> {
        self.entries.iter().find(|e| e.arch == arch && e.depth == depth && e.batch_size == batch_size)
    }

    /// The entry for a training config: its model and batch size, preferring the one measured
    /// at its evaluation batch size too.
    pub fn entry_for(&self, cfg: &TrainConfig) -> Option<&CalibrationEntry> {
        let same = |e: &&CalibrationEntry| e.arch == cfg.arch && e.depth == cfg.depth && e.batch_size == cfg.batch_size;
        let mut matching = self.entries.iter().filter(same);
        let first = matching.clone().next();
        matching.find(|e| e.eval_batch_size == cfg.eval_batch_size).or(first)
    }

    /// Expected device seconds of `job`: epochs x (training images / training rate + test
    /// images / evaluation rate), the images as `JobSpec::train_images` and `test_images`
    /// count them, plus each gradient analysis as a forward and backward pass over the test
    /// images at the training rate. None when the job's model and batch size were not measured.
    pub fn expected_seconds(&self, job: &JobSpec) -> Option<f64> {
        let e = self.entry_for(&job.train)?;
        let per_epoch =
            job.train_images() as f64 / e.train_images_per_s + job.test_images() as f64 / e.eval_images_per_s;
        let analyses = job.analysis.as_ref().map_or(0, |a| a.epochs(job.train.epochs).len()) as f64;
        let analysis = analyses * job.test_images() as f64 / e.train_images_per_s;
        Some(f64::from(job.train.epochs) * per_epoch + analysis)
    }

    /// `expected_seconds`, or an error naming what is missing.
    pub fn seconds_or_missing(&self, job: &JobSpec) -> Result<f64, MissingEntry> {
        self.expected_seconds(job).ok_or(MissingEntry {
            arch: job.train.arch,
            depth: job.train.depth,
            batch_size: job.train.batch_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::DataSpec;

    /// A calibration with one resnet-26 entry at batch 64.
    fn one() -> Calibration {
        Calibration {
            format: CALIBRATION_FORMAT,
            device: "cpu".into(),
            device_name: "cpu, 2 threads".into(),
            libtorch_version: "2.11.0".into(),
            created_unix_s: 1_700_000_000,
            grid_exec: "sequential".into(),
            memory_format: "contiguous".into(),
            tf32: false,
            threads: 2,
            warmup_steps: 2,
            steps: 3,
            eval_batches: 2,
            entries: vec![CalibrationEntry {
                arch: Arch::Resnet,
                depth: 26,
                batch_size: 64,
                eval_batch_size: 500,
                train_images_per_s: 100.0,
                eval_images_per_s: 400.0,
            }],
        }
    }

    fn job(arch: Arch, batch: i64) -> JobSpec {
        let mut train = TrainConfig::paper(arch, 26, 1);
        train.batch_size = batch;
        train.epochs = 2;
        train.train_subset = Some(2_000);
        train.test_subset = Some(500);
        JobSpec { train, analysis: None, data: DataSpec::Cifar10, repeat: 0, program: None }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gridsweep-cal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn expected_seconds_counts_training_and_evaluation() {
        // 2 epochs x (2,000 / 100 + 500 / 400) = 2 x 21.25 = 42.5 s.
        assert_eq!(one().expected_seconds(&job(Arch::Resnet, 64)), Some(42.5));
        let missing = one().seconds_or_missing(&job(Arch::Grid, 64)).unwrap_err();
        assert_eq!(missing, MissingEntry { arch: Arch::Grid, depth: 26, batch_size: 64 });
        assert!(missing.to_string().starts_with("no entry for grid at depth 26 with batch_size 64"));
        assert_eq!(one().expected_seconds(&job(Arch::Resnet, 128)), None, "another batch size is not guessed");
    }

    #[test]
    fn save_then_load_round_trips() {
        let file = scratch("round").join("cal.json");
        one().save(&file).unwrap();
        assert_eq!(Calibration::load(&file).unwrap(), one());
        assert!(!file.with_extension("json.tmp").exists());
    }

    #[test]
    fn bad_files_name_the_file_and_the_place() {
        let dir = scratch("bad");
        let file = dir.join("cal.json");
        let e = Calibration::load(&file).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: cannot read", file.display())), "{e}");
        std::fs::write(&file, "{\n  \"format\": 1,\n  \"device\": 3\n}\n").unwrap();
        let e = Calibration::load(&file).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}:3:", file.display())), "{e}");
        assert!(!e.contains("at line"), "the position is said once: {e}");
        let mut cal = one();
        cal.entries[0].eval_images_per_s = 0.0;
        cal.save(&file).unwrap();
        let e = Calibration::load(&file).unwrap_err().to_string();
        assert!(e.contains("entries[0].eval_images_per_s: is 0, must be a positive number"), "{e}");
    }
}
