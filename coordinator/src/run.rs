//! `coordinator run SWEEP.yaml`: expand the sweep into the state database, serve workers,
//! start local ones, show progress, and write the tables when every job has ended. Running it
//! again on the same state resumes: finished jobs are kept, never run again.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use gridsweep_proto::v1 as pb;
use tokio::net::TcpListener;

use crate::display;
use crate::http::{self, Dashboard, HttpAddr, HttpError};
use crate::live;
use crate::server::{Shared, serve};
use crate::store::{Store, StoreError};
use crate::sweep::{self, SweepError};
use crate::tables::{self, RunRecord, TablesError, TablesSummary};
use gridsweep_proto::cifar;
use gridsweep_proto::job::DataSpec;

/// How many local workers `run` starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalWorkers {
    /// One per CUDA device the worker binary sees, else one CPU worker.
    Auto,
    /// This many (0: none; remote workers do the work).
    Count(u32),
}

impl std::str::FromStr for LocalWorkers {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(LocalWorkers::Auto),
            n => n.parse().map(LocalWorkers::Count).map_err(|_| format!("expected a number or auto, got {n:?}")),
        }
    }
}

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
    /// The tables written.
    pub tables: TablesSummary,
    /// Where they are.
    pub out_dir: PathBuf,
}

pub use crate::live::records;

/// Writes the tables of the state in `state_dir` to `out`, then `epochs.csv`, the plots and
/// the report.
pub fn write_tables(state_dir: &Path, out: &Path) -> Result<TablesSummary, RunError> {
    let store = Store::open_existing(state_dir)?;
    let name = store.sweep_name()?.unwrap_or_else(|| "sweep".to_owned());
    let runs = records(&store)?;
    let tables = tables::write_tables(&runs, &name, out)?;
    write_epochs(&store, out);
    write_plots_and_report(&runs, &name, None, out);
    Ok(tables)
}

/// Writes `epochs.csv`; a failure is logged with the file it concerns and the run goes on.
fn write_epochs(store: &Store, out: &Path) {
    if let Err(e) = live::write_epochs(store, out) {
        tracing::error!("{} not written: {e}", out.join(live::EPOCHS_CSV).display());
    }
}

/// The folder of CIFAR-10 files the sweep's workers get: `--data` when given, else `data/`
/// (where `make demo` and `make data` put the set) when it holds a verified set. A sweep on
/// CIFAR-10 without either is refused before anything is served or written, so that the
/// operator's mistake is not charged to the jobs.
fn resolve_data(given: Option<&Path>, needs_cifar: bool) -> Result<Option<PathBuf>, RunError> {
    let verified = |dir: &Path| {
        let inner = cifar::resolve_dir(dir);
        cifar::verify(&inner).map(|()| inner)
    };
    match (given, needs_cifar) {
        (Some(d), true) => verified(d).map(Some).map_err(|e| {
            RunError::Data(format!(
                "--data {}: not a verified CIFAR-10 set ({e}); fetch one with `worker data fetch --dest DIR`",
                d.display()
            ))
        }),
        (Some(d), false) => Ok(Some(cifar::resolve_dir(d))),
        (None, true) => match verified(Path::new("data")) {
            Ok(dir) => {
                println!("data: CIFAR-10 from {} (md5 verified)", dir.display());
                Ok(Some(dir))
            }
            Err(e) => Err(RunError::Data(format!(
                "this sweep trains on CIFAR-10, but no --data was given and data/ holds no verified set ({e}); \
                 give --data DIR, after `worker data fetch --dest DIR` if needed"
            ))),
        },
        (None, false) => Ok(None),
    }
}

/// Writes the plots and `report.md` beside tables already written. A failure here must not
/// lose the tables: it is logged as an error (the report says which plot is missing) and the
/// command goes on.
fn write_plots_and_report(runs: &[RunRecord], name: &str, sweep_source: Option<&Path>, out: &Path) {
    match crate::plots::write_plots(runs, out) {
        Ok(files) => tracing::info!(count = files.len(), "plots written"),
        Err(e) => tracing::error!("plots not written: {e}"),
    }
    match crate::report::write_report(runs, name, sweep_source, out) {
        Ok(path) => tracing::info!(path = %path.display(), "report written"),
        Err(e) => tracing::error!("report not written: {e}"),
    }
}

/// Runs the sweep until every job has ended (or `shutdown` resolves).
pub async fn run(opts: RunOptions, shutdown: impl std::future::Future<Output = ()>) -> Result<RunOutcome, RunError> {
    let sweep = sweep::load(&opts.sweep)?;
    let needs_cifar = sweep.data == DataSpec::Cifar10;
    let given = opts.data.clone();
    let data_dir = tokio::task::spawn_blocking(move || resolve_data(given.as_deref(), needs_cifar))
        .await
        .map_err(|e| RunError::Data(format!("checking the data set: {e}")))??;
    let state_dir = opts.state.clone().unwrap_or_else(|| PathBuf::from("state").join(&sweep.name));
    let out_dir = opts.out.clone().unwrap_or_else(|| PathBuf::from("results").join(&sweep.name));
    let store = Store::open(&state_dir)?;
    let (new_jobs, known_jobs) =
        store.add_sweep(&sweep.name, &sweep.source.to_string_lossy(), &sweep.jobs, sweep.max_attempts)?;
    println!(
        "sweep {}: {} jobs ({new_jobs} new, {known_jobs} already in {})",
        sweep.name,
        sweep.jobs.len(),
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
    let shared = Arc::new(Shared::new(
        store,
        sweep.name.clone(),
        Duration::from_secs(sweep.lease_ttl_s),
        opts.fifo,
        data_dir.clone(),
        opts.token.clone(),
        tls,
    ));
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| RunError::Serve { addr: opts.listen, message: e.to_string() })?;
    let addr = listener.local_addr().map_err(|e| RunError::Serve { addr: opts.listen, message: e.to_string() })?;
    println!("coordinator listening on {addr}");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http_listener = match opts.http {
        HttpAddr::On(at) => Some(http::bind(at, opts.token.as_deref()).await?),
        HttpAddr::Default => Some(http::bind_default().await?),
        HttpAddr::Off => None,
    };
    let (http_stop, http) = match http_listener {
        Some(http_listener) => {
            let bound = http_listener.local_addr().map_err(|e| RunError::Serve { addr, message: e.to_string() })?;
            println!("dashboard on http://{bound}/ (metrics at /metrics)");
            let dashboard = Dashboard::new(shared.clone(), http::required_token(bound, opts.token.as_deref()), true);
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(http::serve(http_listener, dashboard, async {
                let _ = rx.await;
            }));
            (Some(tx), Some(task))
        }
        None => (None, None),
    };
    let server = tokio::spawn(serve(listener, shared.clone(), async {
        let _ = stop_rx.await;
    }));

    let mut status = status_of(&shared).await?;
    let mut workers = Vec::new();
    if !status.finished {
        workers = start_local_workers(&opts, data_dir.as_deref(), &state_dir, addr)?;
    }
    let interrupted = watch(&shared, &mut status, &mut workers, &out_dir, shutdown).await?;
    if interrupted {
        shared.drain().await;
        println!("stopping: running jobs are released at their workers' next heartbeat");
        // Keep serving until the workers have given their jobs back (a heartbeat comes every
        // TTL/3), or for one TTL at most; what is still running then expires later as usual.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(sweep.lease_ttl_s);
        while tokio::time::Instant::now() < deadline
            && status_of(&shared)
                .await
                .map(|s| s.jobs.iter().any(|j| j.state() == pb::JobState::Running))
                .unwrap_or(false)
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The workers have given their jobs back and get no new ones: SIGTERM them now.
        stop_workers(&mut workers, Duration::ZERO).await;
        let _ = stop_tx.send(());
        close(server).await;
        close_http(http_stop, http).await;
        return Err(RunError::Interrupted);
    }
    // Finished: probes see NOT_SERVING while the outputs are written; workers still pulling are
    // told the sweep is finished.
    shared.not_serving().await;
    let tables = {
        let (shared, name, source, out) = (shared.clone(), sweep.name.clone(), sweep.source.clone(), out_dir.clone());
        tokio::task::spawn_blocking(move || -> Result<TablesSummary, RunError> {
            let runs = records(&shared.store)?;
            let tables = tables::write_tables(&runs, &name, &out)?;
            write_epochs(&shared.store, &out);
            write_plots_and_report(&runs, &name, Some(&source), &out);
            Ok(tables)
        })
        .await
        .map_err(|e| RunError::Workers(format!("writing the outputs: {e}")))??
    };
    stop_workers(&mut workers, Duration::from_secs(30)).await;
    let _ = stop_tx.send(());
    close(server).await;
    close_http(http_stop, http).await;
    Ok(RunOutcome { new_jobs, known_jobs, tables, out_dir })
}

/// How long the server may take to close its connections after `run` is done: a graceful
/// shutdown waits for clients to hang up, and an idle client (a script holding a channel) may
/// never do so.
const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// Waits for the server to close, at most `CLOSE_GRACE`; then it is dropped with the process.
async fn close(server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>) {
    if tokio::time::timeout(CLOSE_GRACE, server).await.is_err() {
        tracing::info!("clients still connected after {CLOSE_GRACE:?}; closing anyway");
    }
}

/// Stops the dashboard, waiting for it at most `CLOSE_GRACE`.
async fn close_http(
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
) {
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    if let Some(task) = task
        && tokio::time::timeout(CLOSE_GRACE, task).await.is_err()
    {
        tracing::info!("dashboard clients still connected after {CLOSE_GRACE:?}; closing anyway");
    }
}

/// The status, read on the blocking pool.
async fn status_of(shared: &Arc<Shared>) -> Result<pb::SweepStatus, RunError> {
    let s = shared.clone();
    tokio::task::spawn_blocking(move || s.status())
        .await
        .map_err(|e| RunError::Workers(format!("reading the status: {e}")))?
        .map_err(RunError::from)
}

/// Follows the sweep until it is finished (false) or interrupted (true), printing progress.
async fn watch(
    shared: &Arc<Shared>,
    status: &mut pb::SweepStatus,
    workers: &mut [Child],
    out_dir: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<bool, RunError> {
    let tty = std::io::stdout().is_terminal();
    let mut outputs = live::Refresh::new(out_dir, &shared.sweep_name);
    let mut stall = StallNotice::default();
    let mut seen: HashMap<String, (pb::JobState, u32)> = HashMap::new();
    let mut changes = shared.changed.subscribe();
    let mut drawn = 0usize;
    tokio::pin!(shutdown);
    loop {
        // On a terminal: state changes scroll above a live block (progress bar and one line per
        // running job) that is redrawn in place. Elsewhere: one plain line per change.
        let mut events = Vec::new();
        for j in &status.jobs {
            let key = (j.state(), j.epoch);
            let before = seen.insert(j.job_id.clone(), key);
            let changed = before.as_ref() != Some(&key) && (before.is_some() || j.state() != pb::JobState::Pending);
            let state_changed = before.as_ref().map(|b| &b.0) != Some(&key.0);
            if changed && (!tty || state_changed) {
                events.push(display::job_line(j));
            }
        }
        if tty {
            if drawn > 0 {
                print!("\x1b[{drawn}A\x1b[J");
            }
            for e in &events {
                println!("{e}");
            }
            let mut block = vec![display::progress_line(status)];
            block.extend(
                status
                    .jobs
                    .iter()
                    .filter(|j| j.state() == pb::JobState::Running)
                    .map(|j| format!("  {}", display::job_line(j))),
            );
            for line in &block {
                println!("{line}");
            }
            drawn = block.len();
        } else {
            for e in &events {
                println!("{e}");
            }
        }
        if let Some(line) = stall.check(&status.stalled) {
            match tty {
                true => {
                    if drawn > 0 {
                        print!("\x1b[{drawn}A\x1b[J");
                    }
                    println!("{line}");
                    drawn = 0;
                }
                false => println!("{line}"),
            }
        }
        outputs.update(shared, status).await;
        if status.finished {
            if !tty {
                println!("{}", display::progress_line(status));
            }
            return Ok(false);
        }
        if !workers.is_empty() && workers.iter_mut().all(|c| c.try_wait().ok().flatten().is_some()) {
            let recent = status.workers.iter().any(|w| w.last_seen_s < 60.0);
            if !recent {
                return Err(RunError::Workers(
                    "every local worker has exited and no other worker is connected; see the logs under the state \
                     directory's workers/ folder"
                        .to_owned(),
                ));
            }
        }
        tokio::select! {
            () = &mut shutdown => return Ok(true),
            _ = changes.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        *status = status_of(shared).await?;
    }
}

/// Says when the sweep has stalled: the explanation is printed once it has held for
/// `STALL_NOTICE_AFTER` (a sweep that just started has no worker yet), and again when it changes.
#[derive(Debug, Default)]
struct StallNotice {
    /// The explanation seen last, and since when.
    current: Option<(String, std::time::Instant)>,
    /// The explanation printed last.
    printed: Option<String>,
}

/// How long a stall must last before `run` prints it.
const STALL_NOTICE_AFTER: Duration = Duration::from_secs(10);

impl StallNotice {
    /// The line to print now, if any.
    fn check(&mut self, stalled: &str) -> Option<String> {
        if stalled.is_empty() {
            *self = StallNotice::default();
            return None;
        }
        match &self.current {
            Some((s, _)) if s == stalled => {}
            _ => self.current = Some((stalled.to_owned(), std::time::Instant::now())),
        }
        let (s, since) = self.current.as_ref()?;
        if since.elapsed() < STALL_NOTICE_AFTER || self.printed.as_ref() == Some(s) {
            return None;
        }
        self.printed = Some(s.clone());
        Some(format!("STALLED: {s}"))
    }
}

/// Starts the local workers, logging to `<state>/workers/local-K.log`.
fn start_local_workers(
    opts: &RunOptions,
    data: Option<&Path>,
    state_dir: &Path,
    addr: SocketAddr,
) -> Result<Vec<Child>, RunError> {
    let bin = match &opts.worker_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().map_err(|e| RunError::Workers(e.to_string()))?.with_file_name("worker"),
    };
    let devices: Vec<String> = match opts.local_workers {
        LocalWorkers::Count(n) => (0..n).map(|_| opts.worker_device.clone()).collect(),
        LocalWorkers::Auto => {
            let gpus = cuda_devices(&bin);
            if gpus == 0 { vec!["cpu".to_owned()] } else { (0..gpus).map(|i| format!("cuda:{i}")).collect() }
        }
    };
    if devices.is_empty() {
        println!("no local workers; attach workers with: worker --coordinator http://{addr}");
        return Ok(Vec::new());
    }
    if !bin.exists() {
        return Err(RunError::Workers(format!("worker binary {} not found (--worker-bin)", bin.display())));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = (cpus / devices.len()).max(1);
    let dir = state_dir.join("workers");
    std::fs::create_dir_all(&dir).map_err(|e| RunError::Workers(format!("{}: {e}", dir.display())))?;
    let local = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let url = format!("{}://{local}", if opts.tls.is_some() { "https" } else { "http" });
    let mut children = Vec::new();
    for (k, device) in devices.iter().enumerate() {
        let log_path = dir.join(format!("local-{k}.log"));
        let log =
            std::fs::File::create(&log_path).map_err(|e| RunError::Workers(format!("{}: {e}", log_path.display())))?;
        let err = log.try_clone().map_err(|e| RunError::Workers(e.to_string()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg("--coordinator").arg(&url).arg("--device").arg(device);
        cmd.arg("--work-dir").arg(dir.join(format!("local-{k}")));
        if opts.worker_log_json {
            cmd.arg("--log-format").arg("json");
        }
        if device == "cpu" || device == "auto" {
            cmd.arg("--threads").arg(threads.to_string());
        }
        if let Some(d) = data {
            cmd.arg("--data").arg(d);
        }
        if let Some(t) = &opts.tls {
            cmd.arg("--tls-ca").arg(&t.cert).arg("--tls-domain").arg(&t.domain);
        }
        match &opts.token {
            Some(t) => cmd.env(gridsweep_proto::auth::TOKEN_ENV, t),
            None => cmd.env_remove(gridsweep_proto::auth::TOKEN_ENV),
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| RunError::Workers(format!("starting {}: {e}", bin.display())))?;
        println!("local worker {k} on {device} (pid {}, log {})", child.id(), log_path.display());
        children.push(child);
    }
    Ok(children)
}

/// CUDA devices the worker binary sees (0 when it cannot tell).
fn cuda_devices(bin: &Path) -> usize {
    let out = Command::new(bin).args(["devices", "--json"]).output();
    out.ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["cuda_device_count"].as_u64())
        .unwrap_or(0) as usize
}

/// How long a local worker has after SIGTERM (it gives its lease back and exits) before it is
/// killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// Stops the local workers: waits up to `grace` for them to exit on their own (they see the sweep
/// finished, or their jobs released), then sends SIGTERM to those still running, waits up to
/// `TERM_GRACE`, and kills what is left.
async fn stop_workers(workers: &mut [Child], grace: Duration) {
    wait_for_exit(workers, grace).await;
    for c in workers.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            terminate(c);
        }
    }
    wait_for_exit(workers, TERM_GRACE).await;
    for c in workers.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            tracing::warn!(pid = c.id(), "local worker still running {TERM_GRACE:?} after SIGTERM; killing it");
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

/// Waits up to `limit` for every worker to have exited, polling without blocking the runtime.
async fn wait_for_exit(workers: &mut [Child], limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline && workers.iter_mut().any(|c| matches!(c.try_wait(), Ok(None))) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends SIGTERM to a worker that is still running.
fn terminate(c: &Child) {
    let Ok(pid) = libc::pid_t::try_from(c.id()) else { return };
    // SAFETY: kill(2) takes any pid and signal and touches no memory of ours; `pid` is a child we
    // spawned and have not reaped (try_wait just saw it running), so it names that process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}
