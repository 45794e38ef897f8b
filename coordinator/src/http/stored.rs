//! `coordinator dashboard`: the dashboard alone, over a stored sweep's state (stopped, finished,
//! or served by a coordinator elsewhere on this machine). It opens the state read-only in
//! effect: it serves no gRPC and makes no transition. It opens the state on the blocking pool and
//! serves a `view::Source` of its own (no gRPC `Shared`). It watches SQLite's `data_version`, so
//! a sweep that another process is still running updates the open pages like `run`'s own would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Dashboard, HttpError, bind, required_token, serve};
use crate::store::{Store, StoreError, StoreHandle, TaskFailed, off_runtime};
use crate::view::Source;

/// The lease lifetime assumed for telling live workers from quiet ones (a sweep file's
/// default; the stored state does not keep it).
const ASSUMED_LEASE_TTL: Duration = Duration::from_secs(120);

/// How often the state is checked for another process's commits.
const POLL: Duration = Duration::from_secs(1);

/// Why `coordinator dashboard` could not serve.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    /// The state (`NotAState` for a directory without one).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A state without a sweep in it.
    #[error("{0} holds no sweep")]
    NoSweep(PathBuf),
    /// The address.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Serving.
    #[error("serving the dashboard: {0}")]
    Serve(std::io::Error),
    /// A blocking task (opening the state, a read) that did not return.
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// Serves the dashboard of the state in `dir` on `addr` until `shutdown` completes.
pub async fn serve_stored(
    dir: &Path,
    addr: SocketAddr,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StoredError> {
    let opened = {
        let dir = dir.to_owned();
        off_runtime("opening the state", move || -> Result<(Store, String), StoredError> {
            let store = Store::open_existing(&dir)?;
            let name = store.sweep_name()?.ok_or_else(|| StoredError::NoSweep(dir.clone()))?;
            Ok((store, name))
        })
        .await?
    };
    let (store, name) = opened;
    let listener = bind(addr, token.as_deref()).await?;
    let bound = listener.local_addr().map_err(StoredError::Serve)?;
    let source = Arc::new(Source::new(StoreHandle::new(store), name.clone(), ASSUMED_LEASE_TTL));
    println!("dashboard of sweep {name} ({}) on http://{bound}/ (read-only)", dir.display());
    let watcher = {
        let source = source.clone();
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                let version: Result<i64, StoredError> =
                    source.store.call("checking the state for changes", |s| Ok(s.data_version()?)).await;
                match version {
                    Ok(v) if seen.is_some_and(|old| old != v) => {
                        source.bump();
                        seen = Some(v);
                    }
                    Ok(v) => seen = Some(v),
                    Err(e) => tracing::warn!("{e}"),
                }
                tokio::time::sleep(POLL).await;
            }
        })
    };
    let dashboard = Dashboard::new(source, required_token(bound, token.as_deref()), false);
    let out = serve(listener, dashboard, shutdown).await.map_err(StoredError::Serve);
    watcher.abort();
    out
}
