//! `coordinator`: the command-line entry point. Parses flags, sets up logging, and hands over to
//! the library. Bad input (a sweep file with errors, a bad flag) exits with status 2.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use coordinator::display;
use coordinator::forecast::Forecast;
use coordinator::http::{HttpAddr, HttpError, StoredError, serve_stored};
use coordinator::run::{self, LocalWorkers, RunError, RunOptions, RunTls};
use coordinator::store::{Store, StoreError};
use gridsweep_proto::auth::{TOKEN_ENV, read_token};
use gridsweep_proto::client::{ClientFlags, ClientTls};
use gridsweep_proto::v1::{GetStatusRequest, RetryJobsRequest};

/// The gridsweep coordinator: expands a sweep into jobs, leases them to workers, writes the
/// paper's tables.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log lines on stderr as text, or as one JSON object per line for machines (local workers
    /// then log JSON too). Which lines: RUST_LOG (default `warn`); job events carry a `job` field.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object per line, with the event's fields.
    Json,
}

/// Logs to stderr, filtered by RUST_LOG (default `warn`), in `format`.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a sweep to its end: serve workers, start local ones, write the tables, plots and report.
    Run {
        /// The sweep file.
        sweep: PathBuf,
        /// State directory (SQLite database, checkpoints, worker logs); default state/<sweep name>.
        #[arg(long)]
        state: Option<PathBuf>,
        /// Address to serve workers on. A non-loopback address needs a token.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: SocketAddr,
        /// File holding the shared token every worker and admin call must carry (else the
        /// GRIDSWEEP_TOKEN environment variable; else no token, loopback only).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Serve TLS with this PEM certificate (chain); needs --tls-key.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's PEM private key.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The name in the certificate that local workers check.
        #[arg(long, default_value = "localhost")]
        tls_domain: String,
        /// Local workers: a number, or auto (one per CUDA device, else one CPU worker).
        #[arg(long, default_value = "auto")]
        local_workers: LocalWorkers,
        /// Device for each local worker when --local-workers is a number.
        #[arg(long, default_value = "auto")]
        worker_device: String,
        /// The worker binary; default: `worker` beside this one.
        #[arg(long)]
        worker_bin: Option<PathBuf>,
        /// CIFAR-10 folder given to local workers and streamed to remote workers that lack it.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Output directory for the tables, plots and report.md; default results/<sweep name>.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Hand out jobs in file order instead of longest-expected-first.
        #[arg(long)]
        fifo: bool,
        /// Give the jobs that failed in an earlier run a fresh attempt budget before serving.
        #[arg(long)]
        retry_failed: bool,
        /// Serve the dashboard and Prometheus /metrics on this address, or `off`. A non-loopback
        /// address needs the token (a login form, or `Authorization: Bearer`). Default: the
        /// first free port of 127.0.0.1:8080 to 8089.
        #[arg(long)]
        http: Option<HttpAddr>,
    },
    /// Serve the dashboard of a stored sweep (stopped, finished, or run by another process),
    /// read-only.
    Dashboard {
        /// The state directory.
        #[arg(long)]
        state: PathBuf,
        /// The address. A non-loopback address needs the token.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// File holding the token the dashboard requires on a non-loopback address (else
        /// GRIDSWEEP_TOKEN).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Print the jobs a sweep file expands to, without running anything, with each job's
    /// expected device time (relative cost units without --calibration) and the total.
    Expand {
        /// The sweep file.
        sweep: PathBuf,
        /// A device's speed from `worker bench --calibrate`: estimates in seconds.
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// How long a sweep takes on N identical workers: the scheduler's makespan (simulated)
    /// beside FIFO's and beside a lower bound no order can beat.
    Plan {
        /// The sweep file.
        sweep: PathBuf,
        /// Identical workers pulling jobs.
        #[arg(long)]
        workers: usize,
        /// A device's speed from `worker bench --calibrate`: figures in seconds.
        #[arg(long)]
        calibration: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show a running sweep's jobs and workers.
    Status {
        /// The coordinator.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        connect: String,
        /// Keep showing it as it changes.
        #[arg(long)]
        watch: bool,
        /// Print one JSON document (with --watch: one per line, per change) for scripts.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientFlags,
    },
    /// Give failed jobs a fresh attempt budget and put them back in the queue, on a stopped
    /// state (--state) or through a running coordinator (--connect). Earlier attempts and their
    /// errors stay in the state.
    Retry {
        /// Job ids; none: every failed job.
        jobs: Vec<String>,
        /// A state directory no coordinator is serving.
        #[arg(long, conflicts_with = "connect")]
        state: Option<PathBuf>,
        /// A running coordinator (the default when --state is not given).
        #[arg(long)]
        connect: Option<String>,
        #[command(flatten)]
        client: ClientFlags,
    },
    /// Write the tables, plots and report.md from a state directory.
    Tables {
        /// The state directory.
        #[arg(long)]
        state: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, cli.log_format)) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => {
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

async fn dispatch(command: Command, log_format: LogFormat) -> Result<(), (u8, String)> {
    match command {
        Command::Run {
            sweep,
            state,
            listen,
            token_file,
            tls_cert,
            tls_key,
            tls_domain,
            local_workers,
            worker_device,
            worker_bin,
            data,
            out,
            fifo,
            retry_failed,
            http,
        } => {
            let token = read_token(token_file.as_deref()).map_err(|e| (2, e.to_string()))?;
            if !listen.ip().is_loopback() && token.is_none() {
                return Err((
                    2,
                    format!(
                        "refusing to listen on non-loopback address {listen} without a token: \
                         give --token-file FILE (or set {TOKEN_ENV})"
                    ),
                ));
            }
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(RunTls { cert, key, domain: tls_domain }),
                _ => None,
            };
            let opts = RunOptions {
                sweep,
                state,
                listen,
                local_workers,
                out,
                fifo,
                data,
                worker_bin,
                worker_device,
                token,
                tls,
                retry_failed,
                http: http.unwrap_or(HttpAddr::Default),
                worker_log_json: log_format == LogFormat::Json,
            };
            match run::run(opts, shutdown_signal()).await {
                Ok(o) => {
                    println!(
                        "tables in {}: {} completed, {} diverged, {} failed",
                        o.out_dir.display(),
                        o.tables.completed,
                        o.tables.diverged,
                        o.tables.failed
                    );
                    if let Ok(t) = std::fs::read_to_string(o.out_dir.join("table1.md")) {
                        println!("\n{t}");
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
        Command::Expand { sweep, calibration, json } => {
            let f = Forecast::load(&sweep, calibration.as_deref()).map_err(|e| (2, e.to_string()))?;
            let text = if json { f.expand_json().map_err(|e| (1, e.to_string()))? } else { f.expand_text() };
            print!("{text}");
            Ok(())
        }
        Command::Plan { sweep, workers, calibration, json } => {
            let f = Forecast::load(&sweep, calibration.as_deref()).map_err(|e| (2, e.to_string()))?;
            let p = f.plan(workers).map_err(|e| (2, e.to_string()))?;
            let text = if json { f.plan_json(&p).map_err(|e| (1, e.to_string()))? } else { f.plan_text(&p) };
            print!("{text}");
            Ok(())
        }
        Command::Status { connect, watch, json, client } => {
            let token = client.token().map_err(|e| (2, e))?;
            let tls = client.tls().map_err(|e| (2, e))?;
            status(connect, watch, json, token, tls).await.map_err(|e| (1, e))
        }
        Command::Dashboard { state, http, token_file } => {
            let token = read_token(token_file.as_deref()).map_err(|e| (2, e.to_string()))?;
            serve_stored(&state, http, token, shutdown_signal()).await.map_err(|e| match e {
                StoredError::Store(StoreError::NotAState(_))
                | StoredError::NoSweep(_)
                | StoredError::Http(HttpError::NeedsToken(_)) => (2, e.to_string()),
                e => (1, e.to_string()),
            })
        }
        Command::Retry { jobs, state, connect, client } => retry(jobs, state, connect, client).await,
        Command::Tables { state, out } => {
            let t = run::write_tables(&state, &out).map_err(|e| match e {
                RunError::Store(StoreError::NotAState(_)) => (2, e.to_string()),
                e => (1, e.to_string()),
            })?;
            for f in &t.files {
                println!("{}", f.display());
            }
            Ok(())
        }
    }
}

async fn status(
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
        match json {
            true => println!("{}", display::to_json(&s)),
            false => print!("{}", display::render(&s, true)),
        }
        return Ok(());
    }
    let mut stream = client.watch_status(GetStatusRequest {}).await.map_err(|s| s.message().to_owned())?.into_inner();
    let tty = std::io::stdout().is_terminal() && !json;
    while let Some(s) = stream.message().await.map_err(|s| s.message().to_owned())? {
        if json {
            println!("{}", display::to_json(&s));
            if s.finished {
                break;
            }
            continue;
        }
        if tty {
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", display::render(&s, tty));
        if s.finished {
            break;
        }
    }
    Ok(())
}

/// `coordinator retry`: on a stopped state directly, else through the running coordinator's
/// admin rpc. An unknown job id exits 2 naming it, and nothing changes.
async fn retry(
    jobs: Vec<String>,
    state: Option<PathBuf>,
    connect: Option<String>,
    client: ClientFlags,
) -> Result<(), (u8, String)> {
    let (retried, not_failed) = match state {
        Some(dir) => {
            let store = Store::open_existing(&dir).map_err(|e| match e {
                StoreError::NotAState(_) => (2, e.to_string()),
                e => (1, e.to_string()),
            })?;
            match store.retry_failed(&jobs) {
                Ok(o) => (o.retried, o.not_failed.into_iter().map(|(id, s)| format!("{id} ({s})")).collect()),
                Err(e @ StoreError::UnknownJob(_)) => return Err((2, format!("{e} in {}", dir.display()))),
                Err(e) => return Err((1, e.to_string())),
            }
        }
        None => {
            let url = connect.unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
            let token = client.token().map_err(|e| (2, e))?;
            let tls = client.tls().map_err(|e| (2, e))?;
            let mut c = gridsweep_proto::client::connect(&url, tls.as_ref(), token.as_deref())
                .await
                .map_err(|e| (1, e.to_string()))?;
            match c.retry_jobs(RetryJobsRequest { job_ids: jobs }).await {
                Ok(r) => {
                    let r = r.into_inner();
                    (r.retried, r.not_failed)
                }
                Err(s) if s.code() == tonic::Code::NotFound => return Err((2, s.message().to_owned())),
                Err(s) => return Err((1, format!("{url}: {}", s.message()))),
            }
        }
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

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
