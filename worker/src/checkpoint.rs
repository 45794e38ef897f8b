//! Checkpoints at epoch boundaries: model variables (parameters and batch-norm statistics),
//! momentum buffers and the run's state so far, in one file written atomically (temporary file,
//! fsync, rename). Randomness needs no saved state: each epoch seeds libtorch from
//! (job seed, epoch), so a resumed run draws what an uninterrupted one would.
//!
//! Format: `GSCKPT1\n`, a little-endian u64 length, that many bytes of JSON (`Meta`), then the
//! tensors as libtorch's `save_multi` writes them (`model.<name>`, `momentum.<name>`).

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

use gridsweep_proto::result::{EpochMetrics, GradReport};

use crate::recipe::TrainConfig;

const MAGIC: &[u8; 8] = b"GSCKPT1\n";
/// The checkpoint's file name inside a checkpoint directory.
pub const FILE: &str = "checkpoint.gsck";

/// Why a checkpoint cannot be written or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File system failure.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a checkpoint of ours, or damaged.
    #[error("{path}: not a valid checkpoint: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint of another job.
    #[error("{path}: checkpoint was written for another config (differs in {field}); refusing to resume")]
    ConfigMismatch {
        /// The file.
        path: PathBuf,
        /// The first differing setting.
        field: String,
    },
}

/// The non-tensor state of a run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Meta {
    /// The job's config.
    pub config: TrainConfig,
    /// Epochs finished; training resumes at this (0-based) epoch.
    pub epochs_done: u32,
    /// Metrics of the finished epochs.
    pub history: Vec<EpochMetrics>,
    /// Gradient analyses taken so far (`analysis.at_epochs`), so that a resumed run does not
    /// repeat them; absent in checkpoints from before them.
    #[serde(default)]
    pub analyses: Vec<GradReport>,
    /// Training seconds spent before this checkpoint (all sessions).
    pub train_seconds: f64,
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    /// State and history.
    pub meta: Meta,
    /// Model variables by name.
    pub model: Vec<(String, Tensor)>,
    /// Momentum buffers by parameter name.
    pub momentum: Vec<(String, Tensor)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_owned(), source }
}

/// Writes `meta` and the tensors to `dir/checkpoint.gsck` atomically.
pub fn save(
    dir: &Path,
    meta: &Meta,
    model: &[(String, Tensor)],
    momentum: &[(String, Tensor)],
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let path = dir.join(FILE);
    let tmp = dir.join(format!("{FILE}.tmp"));
    let json =
        serde_json::to_vec(meta).map_err(|e| CheckpointError::Corrupt { path: path.clone(), reason: e.to_string() })?;
    // CPU copies with storage of their own: the file then names no device (a job may resume on
    // another GPU, or on a CPU), and a parameter may be a view into the optimizer's flat tensor,
    // whose whole storage libtorch would otherwise write.
    let own = |t: &Tensor| {
        if t.device() == Device::Cpu { t.detach().copy() } else { t.detach().to_device(Device::Cpu) }
    };
    let named: Vec<(String, Tensor)> = model
        .iter()
        .map(|(n, t)| (format!("model.{n}"), own(t)))
        .chain(momentum.iter().map(|(n, t)| (format!("momentum.{n}"), own(t))))
        .collect();
    let mut blob = Vec::new();
    Tensor::save_multi_to_stream(&named, &mut blob)
        .map_err(|e| CheckpointError::Corrupt { path: path.clone(), reason: e.to_string() })?;
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(MAGIC).map_err(io(&tmp))?;
    f.write_all(&(json.len() as u64).to_le_bytes()).map_err(io(&tmp))?;
    f.write_all(&json).map_err(io(&tmp))?;
    f.write_all(&blob).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(io(&path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(path)
}

/// Reads `dir/checkpoint.gsck`; `Ok(None)` when there is none.
pub fn load(dir: &Path) -> Result<Option<Checkpoint>, CheckpointError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        r => r.map_err(io(&path))?,
    };
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.clone(), reason };
    let mut r = Cursor::new(&bytes[..]);
    let mut magic = [0u8; 8];
    let mut len = [0u8; 8];
    r.read_exact(&mut magic).map_err(|e| corrupt(e.to_string()))?;
    if &magic != MAGIC {
        return Err(corrupt("wrong magic bytes".into()));
    }
    r.read_exact(&mut len).map_err(|e| corrupt(e.to_string()))?;
    let len = u64::from_le_bytes(len) as usize;
    let start = 16usize;
    let end = start.checked_add(len).filter(|&e| e <= bytes.len()).ok_or_else(|| corrupt("truncated header".into()))?;
    let meta: Meta = serde_json::from_slice(&bytes[start..end]).map_err(|e| corrupt(e.to_string()))?;
    // Onto the CPU whatever device a (pre-CPU-copy) checkpoint names; training copies the values
    // into its own variables.
    let tensors = Tensor::load_multi_from_stream_with_device(Cursor::new(&bytes[end..]), Device::Cpu)
        .map_err(|e| corrupt(format!("tensors: {e}")))?;
    let (mut model, mut momentum) = (Vec::new(), Vec::new());
    for (name, t) in tensors {
        if let Some(n) = name.strip_prefix("model.") {
            model.push((n.to_owned(), t));
        } else if let Some(n) = name.strip_prefix("momentum.") {
            momentum.push((n.to_owned(), t));
        } else {
            return Err(corrupt(format!("unexpected tensor {name}")));
        }
    }
    Ok(Some(Checkpoint { meta, model, momentum }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn views_are_saved_as_themselves_and_load_on_the_cpu() {
        let dir = std::env::temp_dir().join(format!("gridsweep-ckpt-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // A small parameter that is a view into a large flat tensor, laid out channels-last.
        let flat = Tensor::arange(1_000_000, (Kind::Float, Device::Cpu));
        let w = flat.as_strided([2, 3, 2, 2], [12, 1, 6, 3], Some(100));
        let meta = Meta {
            config: TrainConfig::paper(crate::models::Arch::Resnet, 8, 0),
            epochs_done: 1,
            history: Vec::new(),
            analyses: Vec::new(),
            train_seconds: 1.0,
        };
        let path = save(&dir, &meta, &[("w".into(), w.shallow_clone())], &[("w".into(), w.ones_like())]).unwrap();
        // Two 24-element tensors, not the 4 MB storage behind the view.
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 20_000, "checkpoint of {size} bytes");
        let ck = load(&dir).unwrap().unwrap();
        assert_eq!(ck.model[0].0, "w");
        assert!(ck.model[0].1.equal(&w) && ck.model[0].1.device() == Device::Cpu);
        assert_eq!(ck.momentum[0].1.sum(Kind::Double).double_value(&[]), 24.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
