//! Forwarding the attempt's log (the program's stdout and stderr) to the coordinator, which
//! keeps it per attempt: what the file gained since the last call, read on the blocking pool,
//! at most `CHUNK` bytes a call, sent with `AppendLog` (a failed send is logged and skipped:
//! the log is a convenience, never a reason to stop the job).

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use gridsweep_proto::v1 as pb;

use super::Held;

/// Bytes sent at most per call (the rest goes with the next ones).
const CHUNK: u64 = 64 * 1024;

/// Where the forwarding stands.
pub(super) struct LogForward {
    /// The attempt's log file.
    path: PathBuf,
    /// Bytes sent so far.
    offset: u64,
}

impl LogForward {
    /// Forwards `path` from its start.
    pub(super) fn new(path: PathBuf) -> Self {
        LogForward { path, offset: 0 }
    }

    /// Sends what the log gained (up to `CHUNK` bytes; `all`: everything, chunk by chunk).
    pub(super) async fn send(&mut self, held: &mut Held<'_>, all: bool) {
        loop {
            let (path, offset) = (self.path.clone(), self.offset);
            let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                let mut f = std::fs::File::open(&path)?;
                f.seek(SeekFrom::Start(offset))?;
                let mut bytes = Vec::new();
                f.take(CHUNK).read_to_end(&mut bytes)?;
                Ok(bytes)
            })
            .await;
            let bytes = match read {
                Ok(Ok(b)) if !b.is_empty() => b,
                _ => return,
            };
            self.offset += bytes.len() as u64;
            let req = pb::AppendLogRequest {
                worker_id: held.worker.to_owned(),
                job_id: held.job.clone(),
                fencing_token: held.token,
                text: String::from_utf8_lossy(&bytes).into_owned(),
            };
            if let Err(s) = held.client.append_log(req).await {
                tracing::debug!("program log not forwarded: {}", s.message());
                return;
            }
            if !all || (bytes.len() as u64) < CHUNK {
                return;
            }
        }
    }
}
