//! Getting a leased job ready to train: its spec parsed and validated, its data set on disk
//! (a synthetic set made here, CIFAR-10 from `--data` or fetched from the coordinator once),
//! and its checkpoint folder holding the coordinator's latest checkpoint when it resumes.
//! Loading, writing and md5-checking data sets run on the blocking pool.

use std::path::PathBuf;

use gridsweep_proto::client::Client;
use gridsweep_proto::job::{ConfigError, DataSpec, JobSpec};
use gridsweep_proto::v1 as pb;
use tch::Device;

use super::AgentConfig;
use super::transfer::{TransferError, download_checkpoint, fetch_data};
use crate::checkpoint;
use crate::data::{self, DataError};

/// What a job needs on disk before it trains.
pub(super) struct Prepared {
    /// The job, validated.
    pub spec: JobSpec,
    /// The data set's folder; `None` for a program job whose sweep names no data set.
    pub data_dir: Option<PathBuf>,
    /// The job's checkpoint folder (with the checkpoint to resume from, if any).
    pub job_dir: PathBuf,
}

/// Why a job could not be prepared.
#[derive(Debug, thiserror::Error)]
pub(super) enum PrepareError {
    /// The lease's spec is not JSON of a job.
    #[error("job spec: {0}")]
    SpecJson(#[from] serde_json::Error),
    /// The spec parses but a field is out of range.
    #[error("job spec: {0}")]
    SpecInvalid(#[from] ConfigError),
    /// The synthetic set could not be written.
    #[error("{0}")]
    Synthetic(#[from] DataError),
    /// The job's checkpoint folder could not be made.
    #[error("{}: {source}", path.display())]
    Io {
        /// The folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The blocking task doing the file work panicked or was cancelled.
    #[error("{0}")]
    Blocking(#[from] tokio::task::JoinError),
    /// The data set or the checkpoint could not be fetched from the coordinator.
    #[error("{0}")]
    Transfer(#[from] TransferError),
}

/// The job's spec, its data folder and its checkpoint folder (with the coordinator's latest
/// checkpoint in it, when there is one).
pub(super) async fn prepare(
    cfg: &AgentConfig,
    client: &mut Client,
    worker: &str,
    lease: &pb::Lease,
) -> Result<Prepared, PrepareError> {
    let spec: JobSpec = serde_json::from_str(&lease.spec_json)?;
    spec.validate()?;
    let data_dir = data_dir(cfg, client, worker, &spec.data).await?;
    let job_dir = cfg.work_dir.join("jobs").join(&lease.job_id);
    let checkpoint = job_dir.join(checkpoint::FILE);
    let dir = job_dir.clone();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|source| PrepareError::Io { path: dir.clone(), source })?;
        let _ = std::fs::remove_file(&checkpoint);
        Ok::<_, PrepareError>(())
    })
    .await??;
    if lease.checkpoint_epoch > 0 {
        download_checkpoint(client, worker, lease, &job_dir.join(checkpoint::FILE)).await?;
        tracing::debug!("checkpoint of epoch {} downloaded", lease.checkpoint_epoch);
    }
    Ok(Prepared { spec, data_dir, job_dir })
}

/// The folder of the job's data set, made or fetched when this worker has none; `None`, with
/// nothing fetched, when the job has no data set.
async fn data_dir(
    cfg: &AgentConfig,
    client: &mut Client,
    worker: &str,
    spec: &DataSpec,
) -> Result<Option<PathBuf>, PrepareError> {
    Ok(Some(match spec {
        DataSpec::None => return Ok(None),
        DataSpec::Synthetic { train, test, seed } => {
            let dest = cfg.work_dir.join(format!("synthetic-{train}-{test}-{seed}"));
            let (dir, (train, test, seed)) = (dest.clone(), (*train, *test, *seed));
            let made = tokio::task::spawn_blocking(move || match data::load(&dir, Device::Cpu) {
                Ok(_) => Ok(false),
                Err(_) => data::synth::write(&dir, train, test, seed).map(|_| true),
            })
            .await??;
            if made {
                tracing::debug!("synthetic set written to {}", dest.display());
            }
            dest
        }
        DataSpec::Cifar10 => match &cfg.data_dir {
            Some(d) if verified(data::resolve_dir(d)).await => d.clone(),
            _ => {
                let dest = cfg.work_dir.join("cifar10");
                if !verified(dest.join(data::SET_DIR)).await {
                    fetch_data(client, worker, &dest.join(data::SET_DIR)).await?;
                }
                dest
            }
        },
    }))
}

/// Whether `dir` holds the official set (every file's md5 checked; ~180 MB hashed, so on the
/// blocking pool).
async fn verified(dir: PathBuf) -> bool {
    tokio::task::spawn_blocking(move || data::fetch::verify(&dir).is_ok()).await.unwrap_or(false)
}
