//! `coordinator run SWEEP.yaml`: expand the sweep into the state database, serve workers,
//! start local ones (`local.rs`), show progress (`crate::progress`), and write the outputs when
//! every job has ended (`outputs.rs`). Running it again on the same state resumes: finished jobs
//! are kept, never run again. Store and file work goes to the blocking pool (`store::off_runtime`,
//! the store handle); children are `tokio::process` children. The progress renders the read
//! model's status (`view::Source::status_async`); whether any worker is still connected is the
//! read model's `WorkerState`, by the one liveness rule.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gridsweep_proto::job::DataSpec;
use gridsweep_proto::v1 as pb;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::http::{self, Dashboard, HttpAddr, HttpError};
use crate::progress::{Board, Screen};
use crate::server::{Shared, serve};
use crate::store::{Store, StoreError, TaskFailed, off_runtime};
use crate::sweep::{self, Sweep, SweepError};
use crate::tables::{TablesError, TablesSummary};
use crate::view::WorkerState;
use crate::{live, pace};

mod attach;
mod local;
mod outputs;

pub use crate::live::records;
pub use attach::Attach;
pub use local::{LocalWorkers, Pool};
pub use outputs::write_tables;

/// Everything `run` needs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The sweep file.
    pub sweep: PathBuf,
    /// State directory; default `state/<sweep name>`.
    pub state: Option<PathBuf>,
    /// Address to serve on.
    pub listen: SocketAddr,
    /// Local workers to start.
    pub local_workers: LocalWorkers,
    /// Output directory; default `results/<sweep name>`.
    pub out: Option<PathBuf>,
    /// Hand out jobs in file order instead of longest first.
    pub fifo: bool,
    /// The coordinator's CIFAR-10 (served to workers that lack it, given to local workers).
    pub data: Option<PathBuf>,
    /// The worker binary; default `worker` beside this executable.
    pub worker_bin: Option<PathBuf>,
    /// `--device` for local workers (with a count); `auto` lets each pick.
    pub worker_device: String,
    /// The shared token every call must carry (given to local workers through their
    /// environment, never their command line).
    pub token: Option<String>,
    /// Serve TLS.
    pub tls: Option<RunTls>,
    /// Give jobs that failed in an earlier run a fresh attempt budget before serving.
    pub retry_failed: bool,
    /// Where to serve the dashboard and `/metrics`, if anywhere.
    pub http: HttpAddr,
    /// Local workers log JSON lines (the coordinator's own `--log-format json`).
    pub worker_log_json: bool,
    /// The host name other machines reach this one by, for the attach line (`--advertise`).
    pub advertise: Option<String>,
    /// The file the token came from (`--token-file`), named in the attach line.
    pub token_file: Option<PathBuf>,
}

/// The coordinator's TLS identity.
#[derive(Clone, Debug)]
pub struct RunTls {
    /// PEM certificate (chain).
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// The name in the certificate that local workers check (they connect to 127.0.0.1).
    pub domain: String,
}

/// Why `run` stopped without tables.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The sweep file.
    #[error(transparent)]
    Sweep(#[from] SweepError),
    /// The data set the sweep needs is not at hand (checked before anything is served).
    #[error("{0}")]
    Data(String),
    /// The state.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing tables.
    #[error(transparent)]
    Tables(#[from] TablesError),
    /// Binding or serving.
    #[error("serving on {addr}: {message}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        message: String,
    },
    /// Local workers.
    #[error("local workers: {0}")]
    Workers(String),
    /// A blocking task (opening the sweep, a status, writing the outputs) that did not return,
    /// named by what it was doing.
    #[error(transparent)]
    Task(#[from] TaskFailed),
    /// The TLS identity.
    #[error("TLS: {0}")]
    Tls(String),
    /// The dashboard's address.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// Stopped by a signal before the sweep finished; the state is consistent and resumable.
    #[error("interrupted; the state is saved, run the same command again to resume")]
    Interrupted,
}

/// What a finished run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// Jobs new to the state at start.
    pub new_jobs: usize,
    /// Jobs already known at start.
    pub known_jobs: usize,
    /// The tables written (Table 1 and 2 count the built-in trainer's jobs only).
    pub tables: TablesSummary,
    /// The sweep's program jobs, which `results.csv`/`results.md` report.
    pub program_jobs: usize,
    /// Where they are.
    pub out_dir: PathBuf,
}

/// The sweep loaded and its state opened with the sweep's jobs added.
struct Prepared {
    /// The sweep file, expanded.
    sweep: Sweep,
    /// The data set local workers get and the coordinator serves.
    data_dir: Option<PathBuf>,
    /// Where the state lives.
    state_dir: PathBuf,
    /// Where the outputs go.
    out_dir: PathBuf,
    /// The state.
    store: Store,
    /// Jobs new to the state, and jobs it already knew.
    counts: (usize, usize),
    /// The TLS identity to serve with.
    tls: Option<tonic::transport::ServerTlsConfig>,
}

/// Loads the sweep, checks the data set, opens the state and adds the jobs (blocking work: run
/// it on the blocking pool).
fn prepare(opts: &RunOptions) -> Result<Prepared, RunError> {
    let sweep = sweep::load(&opts.sweep)?;
    let data_dir = outputs::resolve_data(opts.data.as_deref(), sweep.data == DataSpec::Cifar10)?;
    let state_dir = opts.state.clone().unwrap_or_else(|| PathBuf::from("state").join(&sweep.name));
    let out_dir = opts.out.clone().unwrap_or_else(|| PathBuf::from("results").join(&sweep.name));
    let store = Store::open(&state_dir)?;
    let counts = store.add_sweep(&sweep.name, &sweep.source.to_string_lossy(), &sweep.jobs, sweep.max_attempts)?;
    println!(
        "sweep {}: {} jobs ({} new, {} already in {})",
        sweep.name,
        sweep.jobs.len(),
        counts.0,
        counts.1,
        state_dir.display()
    );
    if opts.retry_failed {
        let retried = store.retry_failed(&[])?.retried;
        println!("--retry-failed: {} failed jobs back in the queue with a fresh attempt budget", retried.len());
    }
    let tls = match &opts.tls {
        Some(t) => {
            let read = |p: &Path| std::fs::read(p).map_err(|e| RunError::Tls(format!("{}: {e}", p.display())));
            let identity = tonic::transport::Identity::from_pem(read(&t.cert)?, read(&t.key)?);
            Some(tonic::transport::ServerTlsConfig::new().identity(identity))
        }
        None => None,
    };
    Ok(Prepared { sweep, data_dir, state_dir, out_dir, store, counts, tls })
}

/// Runs the sweep until every job has ended (or `shutdown` resolves).
pub async fn run(opts: RunOptions, shutdown: impl std::future::Future<Output = ()>) -> Result<RunOutcome, RunError> {
    let p = {
        let opts = opts.clone();
        off_runtime("opening the sweep", move || prepare(&opts)).await?
    };
    let ttl = Duration::from_secs(p.sweep.lease_ttl_s);
    let shared = Arc::new(Shared::new(
        p.store,
        p.sweep.name.clone(),
        ttl,
        opts.fifo,
        p.data_dir.clone(),
        opts.token.clone(),
        p.tls,
    ));
    let serving = Serving::start(&opts, shared.clone()).await?;
    let attach = attach::of_run(&opts, serving.addr).await;
    let _ = shared.attach.set(attach.command.clone());
    let mut status = status_of(&shared).await?;
    let mut workers = match status.finished {
        true => Pool::default(),
        false => Pool::start(&opts, p.data_dir.as_deref(), &p.state_dir, serving.addr, &attach).await?,
    };
    if watch(&shared, &mut status, &mut workers, &p.out_dir, shutdown).await? {
        wind_down(&shared, ttl).await;
        // The workers have given their jobs back and get no new ones: SIGTERM them now.
        workers.stop(Duration::ZERO).await;
        serving.close().await;
        return Err(RunError::Interrupted);
    }
    // Finished: probes see NOT_SERVING while the outputs are written; workers still pulling are
    // told the sweep is finished.
    shared.not_serving().await;
    let program_jobs = p.sweep.jobs.iter().filter(|j| j.program.is_some()).count();
    let tables = {
        let (shared, name, source, out) = (shared.clone(), p.sweep.name.clone(), p.sweep.source, p.out_dir.clone());
        off_runtime("writing the outputs", move || outputs::write_outputs(&shared.store, &name, Some(&source), &out))
            .await?
    };
    workers.stop(Duration::from_secs(30)).await;
    serving.close().await;
    Ok(RunOutcome { new_jobs: p.counts.0, known_jobs: p.counts.1, tables, program_jobs, out_dir: p.out_dir })
}

/// After an interrupt: stops granting, then keeps serving until the workers have given their
/// jobs back (a heartbeat comes every TTL/3), or for one TTL at most; what is still running then
/// expires later as usual.
async fn wind_down(shared: &Arc<Shared>, ttl: Duration) {
    shared.drain().await;
    println!("stopping: running jobs are released at their workers' next heartbeat");
    let deadline = tokio::time::Instant::now() + ttl;
    while tokio::time::Instant::now() < deadline
        && status_of(shared).await.is_ok_and(|s| s.jobs.iter().any(|j| j.state() == pb::JobState::Running))
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How long the servers may take to close their connections after `run` is done: a graceful
/// shutdown waits for clients to hang up, and an idle client (a script holding a channel) may
/// never do so.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// The gRPC server and the dashboard, running.
struct Serving {
    /// Where the gRPC server listens.
    addr: SocketAddr,
    /// Tells the gRPC server to stop.
    stop: oneshot::Sender<()>,
    /// The gRPC server's task.
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    /// The dashboard's stop signal and task, when one is served.
    http: Option<(oneshot::Sender<()>, JoinHandle<std::io::Result<()>>)>,
}

impl Serving {
    /// Binds and serves the gRPC service, and the dashboard unless it is off.
    async fn start(opts: &RunOptions, shared: Arc<Shared>) -> Result<Serving, RunError> {
        let serve_err = |addr, e: std::io::Error| RunError::Serve { addr, message: e.to_string() };
        let listener = TcpListener::bind(opts.listen).await.map_err(|e| serve_err(opts.listen, e))?;
        let addr = listener.local_addr().map_err(|e| serve_err(opts.listen, e))?;
        println!("coordinator listening on {addr}");
        let http_listener = match opts.http {
            HttpAddr::On(at) => Some(http::bind(at, opts.token.as_deref()).await?),
            HttpAddr::Default => Some(http::bind_default().await?),
            HttpAddr::Off => None,
        };
        let http = match http_listener {
            Some(http_listener) => {
                let bound = http_listener.local_addr().map_err(|e| serve_err(addr, e))?;
                println!("dashboard on http://{bound}/ (metrics at /metrics)");
                let dashboard =
                    Dashboard::new(shared.clone(), http::required_token(bound, opts.token.as_deref()), true);
                let (tx, rx) = oneshot::channel::<()>();
                let task = tokio::spawn(http::serve(http_listener, dashboard, async {
                    let _ = rx.await;
                }));
                Some((tx, task))
            }
            None => None,
        };
        let (stop, stop_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, shared, async {
            let _ = stop_rx.await;
        }));
        Ok(Serving { addr, stop, server, http })
    }

    /// Stops both servers, waiting for each at most `CLOSE_GRACE`; then it is dropped with the
    /// process.
    async fn close(self) {
        let _ = self.stop.send(());
        if tokio::time::timeout(CLOSE_GRACE, self.server).await.is_err() {
            tracing::info!("clients still connected after {CLOSE_GRACE:?}; closing anyway");
        }
        if let Some((stop, task)) = self.http {
            let _ = stop.send(());
            if tokio::time::timeout(CLOSE_GRACE, task).await.is_err() {
                tracing::info!("dashboard clients still connected after {CLOSE_GRACE:?}; closing anyway");
            }
        }
    }
}

/// The status, read through the store handle (on the blocking pool).
async fn status_of(shared: &Arc<Shared>) -> Result<pb::SweepStatus, RunError> {
    shared.source.status_async::<RunError>().await
}

/// Follows the sweep until it is finished (false) or interrupted (true), drawing progress and
/// keeping the live outputs (`epochs.csv`, the tables so far) up to date.
async fn watch(
    shared: &Arc<Shared>,
    status: &mut pb::SweepStatus,
    workers: &mut Pool,
    out_dir: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<bool, RunError> {
    let screen = Screen::stdout();
    let mut board = Board::default();
    let mut outputs = live::Refresh::new(out_dir, &shared.sweep_name);
    let mut changes = shared.changed.subscribe();
    let mut pause = STATUS_FLOOR;
    tokio::pin!(shutdown);
    loop {
        // A closed standard output loses the progress, not the sweep.
        let _ = screen.show(&board.changes(status, !screen.is_live()), status);
        outputs.update(shared, status).await;
        if status.finished {
            let _ = screen.finish(status);
            return Ok(false);
        }
        let live = status.workers.iter().any(|w| WorkerState::of_status(w) == Some(WorkerState::Live));
        if workers.all_exited() && !live {
            screen.clear();
            return Err(RunError::Workers(
                "every local worker has exited and no other worker is connected; see the logs under the state \
                 directory's workers/ folder"
                    .to_owned(),
            ));
        }
        // A change (or 2 s without one), then the pause; an interrupt ends either wait.
        let waited = async {
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
            tokio::time::sleep(pause).await;
        };
        tokio::select! {
            () = &mut shutdown => {
                screen.clear();
                return Ok(true);
            }
            () = waited => {}
        }
        let started = Instant::now();
        *status = status_of(shared).await?;
        pause = pace::wait_after(started.elapsed(), STATUS_FLOOR, STATUS_FACTOR);
    }
}

/// The least time between two statuses of `run`'s progress: changes come in bursts (a job's end,
/// its checkpoint, the next lease), and one status shows them all.
const STATUS_FLOOR: Duration = Duration::from_millis(100);
/// And at least this many times what the last status took (80 ms at 10,000 jobs on a 2-core
/// machine), so that the progress costs at most a fifth of a core at any sweep size.
const STATUS_FACTOR: u32 = 4;
