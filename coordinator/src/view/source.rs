//! [`Source`]: what every read surface of a sweep shares: the store (through its async
//! [`StoreHandle`]), the sweep's name and lease TTL, the state version that changes wake
//! watchers with, whether it is draining, the attach line and the metrics. The gRPC server's
//! `Shared` holds one beside what only the server needs; `coordinator dashboard` makes one of
//! its own over a stored state, with nothing made up.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use super::SweepView;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, StoreHandle, TaskFailed, now};

/// The read side of a sweep.
#[derive(Debug)]
pub struct Source {
    /// The durable state.
    pub store: StoreHandle,
    /// The sweep's name.
    pub sweep_name: String,
    /// Lease time-to-live: tells live workers from quiet ones (`WorkerState`).
    pub lease_ttl: Duration,
    /// Bumped on every state change, for status watchers, the progress and the dashboard.
    pub changed: watch::Sender<u64>,
    /// Set when shutting down: heartbeats answer "stop", pulls get nothing, the dashboard says so.
    pub stopping: AtomicBool,
    /// The command that attaches a worker from another machine, once `run` has bound its
    /// address (the status and the dashboard show it); unset for a stored sweep's dashboard.
    pub attach: OnceLock<String>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
}

impl Source {
    /// The read side of sweep `sweep_name` in `store`, with fresh metrics that the store's
    /// commits are recorded in.
    pub fn new(store: StoreHandle, sweep_name: String, lease_ttl: Duration) -> Source {
        let metrics = Arc::new(Metrics::new());
        store.record_commits(metrics.store_commits());
        Source {
            store,
            sweep_name,
            lease_ttl,
            changed: watch::channel(0).0,
            stopping: AtomicBool::new(false),
            attach: OnceLock::new(),
            metrics,
        }
    }

    /// Records a state change.
    pub fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// The state version now.
    pub fn version(&self) -> u64 {
        *self.changed.borrow()
    }

    /// The sweep's view at a fresh snapshot (blocking: a store read).
    pub fn view(&self) -> Result<SweepView, StoreError> {
        let (jobs, workers) = self.store.snapshot()?;
        Ok(SweepView::build(&self.sweep_name, jobs, workers, now(), self.lease_ttl.as_secs_f64()))
    }

    /// The view, read on the blocking pool; `what` names the read if its task fails.
    pub async fn view_async<E>(self: &Arc<Self>, what: &'static str) -> Result<SweepView, E>
    where
        E: From<StoreError> + From<TaskFailed> + Send + 'static,
    {
        let source = self.clone();
        self.store.call(what, move |_: &Store| source.view().map_err(E::from)).await
    }

    /// The status message of a fresh snapshot, on the blocking pool.
    pub async fn status_async<E>(self: &Arc<Self>) -> Result<gridsweep_proto::v1::SweepStatus, E>
    where
        E: From<StoreError> + From<TaskFailed> + Send + 'static,
    {
        let view = self.view_async::<E>("reading the status").await?;
        Ok(view.to_status(self.attach.get().map_or("", String::as_str)))
    }
}

/// What a read surface can be built over: a [`Source`], or the server's `Shared` (its source).
pub trait IntoSource {
    /// The read side.
    fn into_source(self) -> Arc<Source>;
}

impl IntoSource for Arc<Source> {
    fn into_source(self) -> Arc<Source> {
        self
    }
}
