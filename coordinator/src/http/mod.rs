//! The coordinator's HTTP surface: the dashboard (pages, their JSON, a server-sent event stream
//! that says when the state changed) and Prometheus `/metrics`. It reads the same store the
//! gRPC service serves, so it shows nothing the store does not
//! know. It reads through the sweep's read side (`view::Source`, the same the gRPC server's
//! `Shared` holds) and renders the read model (`view::SweepView`). `coordinator run` serves it
//! beside the gRPC service; `coordinator dashboard` serves it alone, read-only, over a stopped or
//! finished sweep's state. Every page, script and style,
//! and the vendored charting library, is compiled into the binary: it works with no network.
//!
//! Map: `pages` (the HTML shell and 404s), `html` (escaping, the error page), `sweep` (the
//! sweep's and the job list's JSON), `api` (one job, tables, plots, metrics), `error` (a request
//! that cannot be answered), `events` (SSE), `auth` (token login for non-loopback addresses),
//! `assets` (embedded files), `stored` (`coordinator dashboard` over a stored state).

mod api;
mod assets;
mod auth;
mod error;
mod events;
mod html;
mod pages;
mod stored;
mod sweep;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::middleware;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::view::{IntoSource, Source};

pub use auth::Access;
pub use stored::{StoredError, serve_stored};

/// Why the dashboard cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A non-loopback address without a token would show the sweep to anyone.
    #[error(
        "the dashboard on {0} would be reachable from other hosts: give the sweep's token (--token-file or \
         GRIDSWEEP_TOKEN), or serve it on a loopback address such as 127.0.0.1:8080"
    )]
    NeedsToken(SocketAddr),
    /// Binding the address.
    #[error("serving the dashboard on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// The HTTP address flag: an address, or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpAddr {
    /// The first free port of [`DEFAULT_PORTS`] on loopback (the flag left out).
    Default,
    /// Serve on this address.
    On(SocketAddr),
    /// No HTTP server.
    Off,
}

impl std::str::FromStr for HttpAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(HttpAddr::Off),
            a => a.parse().map(HttpAddr::On).map_err(|e| format!("expected ADDR:PORT or off, got {a:?}: {e}")),
        }
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct Dashboard {
    /// The sweep served: a running sweep's read side, or a stopped one's opened read-only.
    source: Arc<Source>,
    /// Who may look.
    access: Access,
    /// Serving a running sweep (`run`) rather than a stored one (`dashboard`).
    live: bool,
    /// Tables and plots drawn at one state version: drawing them reads every result, so it is
    /// done once per change, not once per request.
    rendered: Mutex<Option<(u64, Arc<api::Rendered>)>>,
    /// The varying settings of the sweep's jobs, worked out once.
    settings: Mutex<Option<Arc<sweep::SettingsCache>>>,
    /// The last snapshot of the store and what was built from it, shared by every open page.
    snapshot: Mutex<Option<Arc<sweep::Snapshot>>>,
    /// Set when the server stops, to end the event streams (a graceful shutdown waits for them).
    closing: watch::Sender<bool>,
}

impl Dashboard {
    /// The dashboard of `source` (a `view::Source`, or the server's `Shared`); `token`, when
    /// given, is required of every request (`run` and `dashboard` give it on non-loopback
    /// addresses).
    pub fn new(source: impl IntoSource, token: Option<String>, live: bool) -> Arc<Dashboard> {
        Arc::new(Dashboard {
            source: source.into_source(),
            access: Access::new(token),
            live,
            rendered: Mutex::new(None),
            settings: Mutex::new(None),
            snapshot: Mutex::new(None),
            closing: watch::channel(false).0,
        })
    }
}

/// The dashboard's address when none is given: the first free port of 8080 to 8089 on loopback,
/// so that a second sweep on the same machine gets its own page instead of failing to start.
pub const DEFAULT_PORTS: std::ops::RangeInclusive<u16> = 8080..=8089;

/// Binds the dashboard's default address (see [`DEFAULT_PORTS`]).
pub async fn bind_default() -> Result<TcpListener, HttpError> {
    let mut last = None;
    for port in DEFAULT_PORTS {
        match bind(SocketAddr::from(([127, 0, 0, 1], port)), None).await {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("the default port range is not empty"))
}

/// Binds `addr` for the dashboard, refusing a non-loopback address without a token.
pub async fn bind(addr: SocketAddr, token: Option<&str>) -> Result<TcpListener, HttpError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(HttpError::NeedsToken(addr));
    }
    TcpListener::bind(addr).await.map_err(|source| HttpError::Bind { addr, source })
}

/// The token the dashboard on `addr` requires: the sweep's on a non-loopback address, none on
/// loopback (like the gRPC service, where a token is optional on loopback).
pub fn required_token(addr: SocketAddr, token: Option<&str>) -> Option<String> {
    (!addr.ip().is_loopback()).then(|| token.map(str::to_owned)).flatten()
}

/// Serves the dashboard on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    dashboard: Arc<Dashboard>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = dashboard.clone();
    let app = router(dashboard);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            closing.closing.send_replace(true);
        })
        .await
}

/// Every route. The pages, their data and the metrics need the token (when one is required);
/// the login form and the static assets do not.
fn router(d: Arc<Dashboard>) -> Router {
    Router::new()
        .route("/", get(pages::shell))
        .route("/jobs", get(pages::shell))
        .route("/jobs/{id}", get(pages::job))
        .route("/tables", get(pages::shell))
        .route("/plots", get(pages::shell))
        .route("/plots/{file}", get(api::plot_svg))
        .route("/api/sweep", get(sweep::sweep))
        .route("/api/jobs", get(sweep::jobs))
        .route("/api/jobs/{id}", get(api::job))
        .route("/api/tables", get(api::tables))
        .route("/api/plots", get(api::plots))
        .route("/api/events", get(events::stream))
        .route("/metrics", get(api::metrics))
        .route("/logout", axum::routing::post(auth::logout))
        .layer(middleware::from_fn_with_state(d.clone(), auth::require))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/assets/{file}", get(assets::serve))
        .fallback(pages::not_found)
        .with_state(d)
}
