//! What each of the coordinator's subcommands does with its parsed flags, over the library. Every
//! function returns the exit code with the message on failure: 2 for the user's input (a sweep
//! file with errors, a missing token, a state directory that is not one, an unknown job), 1 for
//! anything else, 130 for an interrupted run.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use coordinator::display;
use coordinator::forecast::Forecast;
use coordinator::http::{HttpAddr, HttpError, StoredError, serve_stored};
use coordinator::plan::seeds;
use coordinator::progress::{Board, Screen};
use coordinator::run::{self, RunError, RunOptions, RunTls};
use coordinator::store::{Store, StoreError};
use coordinator::tables::TablesError;
use gridsweep_proto::auth::{TOKEN_ENV, read_token};
use gridsweep_proto::client::{ClientFlags, ClientTls};
use gridsweep_proto::v1::{GetStatusRequest, RetryJobsRequest};

use crate::cli::RunArgs;

/// A failure: the exit code and the message.
type Failure = (u8, String);

/// `--advertise HOST` is a host name or an address, without a scheme, port or path (the port
/// is --listen's).
fn check_advertise(host: &str) -> Result<(), Failure> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let ok = !host.is_empty()
        && (bare.parse::<std::net::IpAddr>().is_ok()
            || host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'));
    if ok {
        Ok(())
    } else {
        Err((2, format!("--advertise {host:?}: expected a host name or an IP address (no scheme, port or path)")))
    }
}

/// `coordinator run`: the sweep to its end, then the tables' summary and Table 1.
pub async fn run(
    args: RunArgs,
    worker_log_json: bool,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), Failure> {
    let token = read_token(args.token_file.as_deref()).map_err(|e| (2, e.to_string()))?;
    if !args.listen.ip().is_loopback() && token.is_none() {
        return Err((
            2,
            format!(
                "refusing to listen on non-loopback address {} without a token: give --token-file FILE (or set \
                 {TOKEN_ENV})",
                args.listen
            ),
        ));
    }
    if let Some(h) = &args.advertise {
        check_advertise(h)?;
    }
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(RunTls { cert, key, domain: args.tls_domain }),
        _ => None,
    };
    let opts = RunOptions {
        sweep: args.sweep,
        state: args.state,
        listen: args.listen,
        local_workers: args.local_workers,
        out: args.out,
        fifo: args.fifo,
        data: args.data,
        worker_bin: args.worker_bin,
        worker_device: args.worker_device,
        token,
        tls,
        retry_failed: args.retry_failed,
        http: args.http.unwrap_or(HttpAddr::Default),
        worker_log_json,
        advertise: args.advertise,
        token_file: args.token_file,
    };
    match run::run(opts, shutdown).await {
        Ok(o) => {
            let t = &o.tables;
            let built_in = t.completed + t.diverged + t.failed + t.pending;
            // Tables 1 and 2 are the built-in trainer's; a program sweep's figures are in results.md.
            let (shown, what) = match (built_in, o.program_jobs) {
                (0, 1) => ("results.md", "1 program job: results.md and results.csv".to_owned()),
                (0, p) if p > 0 => ("results.md", format!("{p} program jobs: results.md and results.csv")),
                (_, 0) => (
                    "table1.md",
                    format!("tables: {} completed, {} diverged, {} failed", t.completed, t.diverged, t.failed),
                ),
                (_, p) => (
                    "table1.md",
                    format!(
                        "tables: {} completed, {} diverged, {} failed built-in jobs; {p} program jobs in results.md",
                        t.completed, t.diverged, t.failed
                    ),
                ),
            };
            println!("outputs in {}: {what}", o.out_dir.display());
            if let Ok(text) = tokio::fs::read_to_string(o.out_dir.join(shown)).await {
                println!("\n{text}");
            }
            Ok(())
        }
        Err(e @ (RunError::Sweep(_) | RunError::Data(_) | RunError::Http(HttpError::NeedsToken(_)))) => {
            Err((2, e.to_string()))
        }
        Err(e @ RunError::Interrupted) => Err((130, e.to_string())),
        Err(e) => Err((1, e.to_string())),
    }
}

/// `coordinator expand`: the jobs a sweep file expands to, with their expected times.
pub fn expand(sweep: &Path, calibration: Option<&Path>, json: bool) -> Result<(), Failure> {
    let f = Forecast::load(sweep, calibration).map_err(|e| (2, e.to_string()))?;
    let text = if json { f.expand_json().map_err(|e| (1, e.to_string()))? } else { f.expand_text() };
    print!("{text}");
    Ok(())
}

/// `coordinator plan`: the sweep's makespan on `workers` identical workers; with `seeds_for`
/// (a state directory), the seeds its comparisons need.
pub fn plan(
    sweep: &Path,
    workers: usize,
    calibration: Option<&Path>,
    json: bool,
    seeds_for: Option<&Path>,
) -> Result<(), Failure> {
    let f = Forecast::load(sweep, calibration).map_err(|e| (2, e.to_string()))?;
    let p = f.plan(workers).map_err(|e| (2, e.to_string()))?;
    let mut text = if json { f.plan_json(&p).map_err(|e| (1, e.to_string()))? } else { f.plan_text(&p) };
    if let Some(state) = seeds_for {
        let store = Store::open_existing(state).map_err(|e| match e {
            StoreError::NotAState(_) => (2, e.to_string()),
            e => (1, e.to_string()),
        })?;
        let runs = coordinator::live::records(&store).map_err(|e| (1, e.to_string()))?;
        let advice = seeds::seeds_for(&f.sweep.jobs, &runs).map_err(|e| (1, e.to_string()))?;
        text.push_str(&seeds::advice_text(&advice));
    }
    print!("{text}");
    Ok(())
}

/// `coordinator dashboard`: a stored sweep's dashboard, read-only, until `shutdown`.
pub async fn dashboard(
    state: &Path,
    http: SocketAddr,
    token_file: Option<&Path>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Failure> {
    let token = read_token(token_file).map_err(|e| (2, e.to_string()))?;
    serve_stored(state, http, token, shutdown).await.map_err(|e| match e {
        StoredError::Store(StoreError::NotAState(_))
        | StoredError::NoSweep(_)
        | StoredError::Http(HttpError::NeedsToken(_)) => (2, e.to_string()),
        e => (1, e.to_string()),
    })
}

/// `coordinator tables`: the outputs of a state directory, Table 1 compared along `compare`,
/// each file's path printed.
pub fn tables(state: &Path, out: &Path, compare: &str) -> Result<(), Failure> {
    let t = run::write_tables(state, out, compare).map_err(|e| match e {
        RunError::Store(StoreError::NotAState(_)) | RunError::Tables(TablesError::UnknownAxis { .. }) => {
            (2, e.to_string())
        }
        e => (1, e.to_string()),
    })?;
    for f in &t.files {
        println!("{}", f.display());
    }
    Ok(())
}

/// `coordinator status`: the sweep once (every job), or with `watch` as it changes: on a
/// terminal a live block (progress, workers, running jobs) under the jobs that changed state;
/// elsewhere the progress line and then one line per change; with `json` one document per status.
pub async fn status(
    url: String,
    watch: bool,
    json: bool,
    token: Option<String>,
    tls: Option<ClientTls>,
) -> Result<(), String> {
    let mut client =
        gridsweep_proto::client::connect(&url, tls.as_ref(), token.as_deref()).await.map_err(|e| e.to_string())?;
    if !watch {
        let s = client.get_status(GetStatusRequest {}).await.map_err(|s| s.message().to_owned())?.into_inner();
        let text = if json { format!("{}\n", display::to_json(&s)) } else { display::render(&s, true) };
        return match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("writing the status: {e}")),
            _ => Ok(()),
        };
    }
    let mut stream = client.watch_status(GetStatusRequest {}).await.map_err(|s| s.message().to_owned())?.into_inner();
    let screen = (!json).then(Screen::stdout);
    let mut board = Board::default();
    let mut first = true;
    while let Some(s) = stream.message().await.map_err(|s| s.message().to_owned())? {
        let shown = match &screen {
            None => writeln!(std::io::stdout().lock(), "{}", display::to_json(&s)),
            Some(screen) => {
                let mut changes = board.changes(&s, !screen.is_live());
                if first && !screen.is_live() {
                    changes.insert(0, format!("sweep {}: {}", s.sweep_name, display::progress_line(&s)));
                }
                screen.show(&changes, &s).and_then(|()| if s.finished { screen.finish(&s) } else { Ok(()) })
            }
        };
        first = false;
        match shown {
            // Whoever read the output has gone (`status --watch | head`): done, quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(format!("writing the status: {e}")),
            Ok(()) if s.finished => break,
            Ok(()) => {}
        }
    }
    Ok(())
}

/// `coordinator retry`: on a stopped state directly, else through the running coordinator's
/// admin rpc. An unknown job id exits 2 naming it, and nothing changes.
pub async fn retry(
    jobs: Vec<String>,
    state: Option<PathBuf>,
    connect: Option<String>,
    client: ClientFlags,
) -> Result<(), Failure> {
    let (retried, not_failed) = match state {
        Some(dir) => retry_stored(&dir, &jobs)?,
        None => retry_served(connect, jobs, client).await?,
    };
    for job in &not_failed {
        println!("left alone, not failed: {job}");
    }
    match retried.len() {
        0 => println!("no failed job to retry"),
        n => println!("{n} failed jobs back in the queue with a fresh attempt budget: {}", retried.join(", ")),
    }
    Ok(())
}

/// Retries on a state no coordinator serves: (retried, left alone with their states).
fn retry_stored(dir: &Path, jobs: &[String]) -> Result<(Vec<String>, Vec<String>), Failure> {
    let store = Store::open_existing(dir).map_err(|e| match e {
        StoreError::NotAState(_) => (2, e.to_string()),
        e => (1, e.to_string()),
    })?;
    match store.retry_failed(jobs) {
        Ok(o) => Ok((o.retried, o.not_failed.into_iter().map(|(id, s)| format!("{id} ({s})")).collect())),
        Err(e @ StoreError::UnknownJob(_)) => Err((2, format!("{e} in {}", dir.display()))),
        Err(e) => Err((1, e.to_string())),
    }
}

/// Retries through a running coordinator's admin rpc: (retried, left alone).
async fn retry_served(
    connect: Option<String>,
    jobs: Vec<String>,
    client: ClientFlags,
) -> Result<(Vec<String>, Vec<String>), Failure> {
    let url = connect.unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let token = client.token().map_err(|e| (2, e.to_string()))?;
    let tls = client.tls().map_err(|e| (2, e.to_string()))?;
    let mut c =
        gridsweep_proto::client::connect(&url, tls.as_ref(), token.as_deref()).await.map_err(|e| (1, e.to_string()))?;
    match c.retry_jobs(RetryJobsRequest { job_ids: jobs }).await {
        Ok(r) => {
            let r = r.into_inner();
            Ok((r.retried, r.not_failed))
        }
        Err(s) if s.code() == tonic::Code::NotFound => Err((2, s.message().to_owned())),
        Err(s) => Err((1, format!("{url}: {}", s.message()))),
    }
}
