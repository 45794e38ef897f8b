//! Files over the wire between the worker and its coordinator: a job's checkpoint down (to
//! resume) and up (after every epoch), and CIFAR-10 down when the worker has none. Files move in
//! pieces, are hashed on the way and renamed into place only once their sha256 checks. Every
//! read, write, rename and md5 check runs on the blocking pool, never on a runtime thread.

use std::path::{Path, PathBuf};

use gridsweep_proto::client::Client;
use gridsweep_proto::pieces::{Receiving, for_each_piece};
use gridsweep_proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::checkpoint;
use crate::data::{self, DataError};

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum TransferError {
    /// The coordinator refused the transfer or the stream broke off.
    #[error("{what}: {message}")]
    Rpc {
        /// Which transfer, as the message names it.
        what: &'static str,
        /// The coordinator's (or the transport's) message.
        message: String,
    },
    /// A local file could not be created, written or moved.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The checkpoint to upload could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The checkpoint file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A downloaded checkpoint is not the one the coordinator holds.
    #[error("checkpoint of job {job}: sha256 {actual}, coordinator said {claimed}")]
    CheckpointHash {
        /// The job.
        job: String,
        /// The sha256 of what arrived.
        actual: String,
        /// The sha256 the coordinator sent with it.
        claimed: String,
    },
    /// The coordinator named a data file that could land outside the data folder.
    #[error("coordinator sent a bad file name {name:?}")]
    BadFileName {
        /// The name it sent.
        name: String,
    },
    /// A data file's sha256 differs from the one the coordinator sent.
    #[error("{name}: checksum mismatch in transfer")]
    PieceHash {
        /// The file.
        name: String,
    },
    /// The fetched set fails the official md5 check.
    #[error("{0}")]
    Verify(#[from] DataError),
    /// The blocking task doing the file work panicked or was cancelled.
    #[error("{0}")]
    Blocking(#[from] tokio::task::JoinError),
}

impl TransferError {
    /// The rpc of transfer `what` failed with `status`.
    fn rpc(what: &'static str, status: &Status) -> Self {
        TransferError::Rpc { what, message: status.message().to_owned() }
    }

    /// Local I/O on `path` failed.
    fn io(path: &Path, source: std::io::Error) -> Self {
        TransferError::Io { path: path.to_owned(), source }
    }
}

/// Downloads the checkpoint `lease` resumes from into `dest`.
pub(super) async fn download_checkpoint(
    client: &mut Client,
    worker: &str,
    lease: &pb::Lease,
    dest: &Path,
) -> Result<(), TransferError> {
    const WHAT: &str = "checkpoint download";
    let req = pb::DownloadCheckpointRequest {
        worker_id: worker.to_owned(),
        job_id: lease.job_id.clone(),
        fencing_token: lease.fencing_token,
    };
    let mut stream = client.download_checkpoint(req).await.map_err(|s| TransferError::rpc(WHAT, &s))?.into_inner();
    // Into a temporary file piece by piece (a depth-1538 checkpoint is ~200 MB), hashed on the way.
    let (dest, job) = (dest.to_owned(), lease.job_id.clone());
    pump(&mut stream, WHAT, move |rx| write_checkpoint(rx, &dest, &job)).await
}

/// Receives a checkpoint's chunks into `dest` (through `dest.download`), on a blocking thread.
fn write_checkpoint(
    mut rx: mpsc::Receiver<Option<pb::CheckpointChunk>>,
    dest: &Path,
    job: &str,
) -> Result<(), TransferError> {
    let tmp = dest.with_extension("download");
    let mut file = Receiving::create(&tmp).map_err(|e| TransferError::io(&tmp, e))?;
    let mut claimed = String::new();
    loop {
        match rx.blocking_recv() {
            Some(Some(chunk)) => {
                file.write(&chunk.data).map_err(|e| TransferError::io(&tmp, e))?;
                if !chunk.sha256.is_empty() {
                    claimed = chunk.sha256;
                }
            }
            Some(None) => break,
            // The stream broke off: `pump` says why.
            None => return Ok(()),
        }
    }
    let (actual, _) = file.finish().map_err(|e| TransferError::io(&tmp, e))?;
    if actual != claimed {
        let _ = std::fs::remove_file(&tmp);
        return Err(TransferError::CheckpointHash { job: job.to_owned(), actual, claimed });
    }
    std::fs::rename(&tmp, dest).map_err(|e| TransferError::io(dest, e))
}

/// Sends the job's checkpoint file, read piece by piece on a blocking thread.
pub(super) async fn upload_checkpoint(
    client: &mut Client,
    worker: &str,
    job: &str,
    token: u64,
    epoch: u32,
    job_dir: &Path,
) {
    let path = job_dir.join(checkpoint::FILE);
    let (tx, rx) = mpsc::channel(4);
    let (job_id, worker_id) = (job.to_owned(), worker.to_owned());
    let reader = tokio::task::spawn_blocking(move || {
        for_each_piece(&path, |data, sha| {
            let chunk = pb::CheckpointChunk {
                job_id: job_id.clone(),
                fencing_token: token,
                epoch,
                data,
                sha256: sha.unwrap_or_default(),
                worker_id: worker_id.clone(),
            };
            tx.blocking_send(chunk).is_ok()
        })
        .map_err(|source| TransferError::Read { path, source })
    });
    // A read error ends the stream without the sha256, so the coordinator discards the upload.
    let sent = client.upload_checkpoint(tokio_stream::wrappers::ReceiverStream::new(rx)).await;
    if let Ok(Err(e)) = reader.await {
        tracing::warn!("checkpoint upload for epoch {epoch}: {e}");
    } else if let Err(s) = sent {
        tracing::warn!("checkpoint upload for epoch {epoch} failed: {}", s.message());
    } else {
        tracing::debug!("checkpoint of epoch {epoch} uploaded");
    }
}

/// Streams CIFAR-10 from the coordinator into `dest` and checks every file's md5.
pub(super) async fn fetch_data(client: &mut Client, worker: &str, dest: &Path) -> Result<(), TransferError> {
    tracing::info!("fetching CIFAR-10 from the coordinator into {}", dest.display());
    let dir = dest.to_owned();
    tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir).map_err(|e| TransferError::io(&dir, e)))
        .await??;
    let mut stream = client
        .fetch_data(pb::FetchDataRequest { worker_id: worker.to_owned() })
        .await
        .map_err(|s| TransferError::rpc("fetching data from the coordinator", &s))?
        .into_inner();
    let dir = dest.to_owned();
    pump(&mut stream, "fetching data", move |rx| write_pieces(rx, &dir)).await?;
    let dir = dest.to_owned();
    tokio::task::spawn_blocking(move || data::fetch::verify(&dir)).await??;
    Ok(())
}

/// Receives data files into `dest`, on a blocking thread: each file into `NAME.part`, hashed on
/// the way, renamed into place once its sha256 checks.
fn write_pieces(mut rx: mpsc::Receiver<Option<pb::DataChunk>>, dest: &Path) -> Result<(), TransferError> {
    let mut current: Option<(String, PathBuf, Receiving)> = None;
    // The end of the stream and a stream broken off alike leave nothing to finish.
    while let Some(Some(chunk)) = rx.blocking_recv() {
        let (_, part, file) = match &mut current {
            Some(c) => c,
            None => {
                let name = chunk.file.clone();
                if name.contains(['/', '\\']) || name.starts_with('.') {
                    return Err(TransferError::BadFileName { name });
                }
                let part = dest.join(format!("{name}.part"));
                let file = Receiving::create(&part).map_err(|e| TransferError::io(&part, e))?;
                current.insert((name, part, file))
            }
        };
        file.write(&chunk.data).map_err(|e| TransferError::io(part, e))?;
        if !chunk.sha256.is_empty() {
            let Some((name, part, file)) = current.take() else { continue };
            let (sha, _) = file.finish().map_err(|e| TransferError::io(&part, e))?;
            if sha != chunk.sha256 {
                let _ = std::fs::remove_file(&part);
                return Err(TransferError::PieceHash { name });
            }
            let path = dest.join(&name);
            std::fs::rename(&part, &path).map_err(|e| TransferError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Hands `stream`'s messages to `write`, which runs on the blocking pool, over a small channel:
/// the network and the disk work at once and no write blocks a runtime thread. `write` gets
/// `Some(message)` for each message, then `None` when the stream ended cleanly; a channel that
/// closes without the `None` means the stream broke off (the error is then the stream's,
/// `what` naming the transfer). A write error ends the transfer and is the one returned.
async fn pump<T, W>(stream: &mut Streaming<T>, what: &'static str, write: W) -> Result<(), TransferError>
where
    T: Send + 'static,
    W: FnOnce(mpsc::Receiver<Option<T>>) -> Result<(), TransferError> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(4);
    let writer = tokio::task::spawn_blocking(move || write(rx));
    let received = loop {
        let next = match stream.message().await {
            Ok(Some(message)) => Some(message),
            Ok(None) => None,
            Err(s) => break Err(TransferError::rpc(what, &s)),
        };
        let end = next.is_none();
        // A closed channel means the writer failed: its error says why.
        if tx.send(next).await.is_err() || end {
            break Ok(());
        }
    };
    drop(tx);
    writer.await??;
    received
}
