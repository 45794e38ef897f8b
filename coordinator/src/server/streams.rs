//! Files in and out of the service in pieces: a response stream fed by a task, a file (a
//! checkpoint, the data set) streamed from the blocking pool, and an uploaded file written and
//! hashed piece by piece on the blocking pool.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use gridsweep_proto::pieces::{Receiving, for_each_piece};
use gridsweep_proto::v1 as pb;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::store::off_runtime;

/// A server-streaming response.
pub(super) type RpcStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A response stream fed by a task that sends into a channel.
pub(super) fn async_stream<T: Send + 'static, F, Fut>(f: F) -> RpcStream<T>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<T, Status>>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(ReceiverStream::new(rx))
}

/// Streams a file in chunks built by `make(data, is_last)`.
pub(super) fn stream_file<T: Send + 'static>(
    path: PathBuf,
    make: impl Fn(Vec<u8>, bool) -> T + Send + 'static,
) -> RpcStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let read = for_each_piece(&path, |data, sha| tx.blocking_send(Ok(make(data, sha.is_some()))).is_ok());
        if let Err(e) = read {
            let _ = tx.blocking_send(Err(Status::internal(format!("{}: {e}", path.display()))));
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// Streams the CIFAR-10 files under `dir`, one after the other, each piece with its file's name
/// and the last with the file's hash; a file that cannot be read ends the stream with NOT_FOUND.
pub(super) fn stream_data_set(dir: PathBuf) -> RpcStream<pb::DataChunk> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        for (name, _) in gridsweep_proto::cifar::MD5 {
            let path = dir.join(name);
            let mut open = true;
            let read = for_each_piece(&path, |data, sha| {
                let msg = pb::DataChunk { file: name.to_owned(), data, sha256: sha.unwrap_or_default() };
                open = tx.blocking_send(Ok(msg)).is_ok();
                open
            });
            if let Err(e) = read {
                let _ = tx.blocking_send(Err(Status::not_found(format!("{}: {e}", path.display()))));
                return;
            }
            if !open {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// A checkpoint upload written to its file.
pub(super) struct Received {
    /// The hex SHA-256 the sender claimed (its last non-empty one).
    pub(super) claimed: String,
    /// The hex SHA-256 of what was written.
    pub(super) actual: String,
    /// How many bytes were written.
    pub(super) bytes: u64,
}

/// Writes the chunks of a checkpoint upload, `first` and then the rest of `stream`, to a new
/// file at `part`; creating, writing and hashing happen on the blocking pool. An I/O error is
/// INTERNAL naming `part`.
pub(super) async fn receive_checkpoint(
    first: pb::CheckpointChunk,
    stream: &mut Streaming<pb::CheckpointChunk>,
    part: &Path,
) -> Result<Received, Status> {
    let io = |e: std::io::Error| Status::internal(format!("{}: {e}", part.display()));
    let created = part.to_owned();
    let mut file = off_runtime("creating an upload", move || Receiving::create(&created)).await.map_err(io)?;
    let mut claimed = String::new();
    let mut chunk = Some(first);
    while let Some(c) = chunk {
        // Writing and hashing happen on the blocking pool; the file comes back for the next piece.
        file = off_runtime("writing an upload", move || file.write(&c.data).map(|()| file)).await.map_err(io)?;
        if !c.sha256.is_empty() {
            claimed = c.sha256;
        }
        chunk = stream.message().await?;
    }
    let (actual, bytes) = off_runtime("hashing an upload", move || file.finish()).await.map_err(io)?;
    Ok(Received { claimed, actual, bytes })
}
