//! `coordinator dashboard`: the dashboard alone, over a stored sweep's state (stopped, finished,
//! or served by a coordinator elsewhere on this machine). It opens the state read-only in
//! effect: it serves no gRPC and makes no transition. It watches SQLite's `data_version`, so a
//! sweep that another process is still running updates the open pages like `run`'s own would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Dashboard, HttpError, bind, required_token, serve};
use crate::server::Shared;
use crate::store::{Store, StoreError};

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
}

/// Serves the dashboard of the state in `dir` on `addr` until `shutdown` completes.
pub async fn serve_stored(
    dir: &Path,
    addr: SocketAddr,
    token: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StoredError> {
    let store = Store::open_existing(dir)?;
    let name = store.sweep_name()?.ok_or_else(|| StoredError::NoSweep(dir.to_owned()))?;
    let listener = bind(addr, token.as_deref()).await?;
    let bound = listener.local_addr().map_err(StoredError::Serve)?;
    let shared = Arc::new(Shared::new(store, name.clone(), ASSUMED_LEASE_TTL, false, None, None, None));
    println!("dashboard of sweep {name} ({}) on http://{bound}/ (read-only)", dir.display());
    let watcher = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                let s = shared.clone();
                if let Ok(Ok(v)) = tokio::task::spawn_blocking(move || s.store.data_version()).await {
                    if seen.is_some_and(|old| old != v) {
                        shared.bump();
                    }
                    seen = Some(v);
                }
                tokio::time::sleep(POLL).await;
            }
        })
    };
    let dashboard = Dashboard::new(shared, required_token(bound, token.as_deref()), false);
    let out = serve(listener, dashboard, shutdown).await.map_err(StoredError::Serve);
    watcher.abort();
    out
}
