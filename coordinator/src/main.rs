//! `coordinator`: the command-line entry point. Parses flags (`cli.rs`), sets up logging, and
//! hands the command to `commands.rs`, which works over the library. Bad input (a sweep file with errors, a bad flag) exits with status 2.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

mod cli;
mod commands;

use cli::Command;

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

/// Carries out `command`; the error is the exit code and the message.
async fn dispatch(command: Command, log_format: LogFormat) -> Result<(), (u8, String)> {
    match command {
        Command::Run(args) => commands::run(args, log_format == LogFormat::Json, shutdown_signal()).await,
        Command::Expand { sweep, calibration, json } => commands::expand(&sweep, calibration.as_deref(), json),
        Command::Plan { sweep, workers, calibration, json, seeds_for } => {
            commands::plan(&sweep, workers, calibration.as_deref(), json, seeds_for.as_deref())
        }
        Command::Status { connect, watch, json, client } => {
            let token = client.token().map_err(|e| (2, e.to_string()))?;
            let tls = client.tls().map_err(|e| (2, e.to_string()))?;
            commands::status(connect, watch, json, token, tls).await.map_err(|e| (1, e))
        }
        Command::Dashboard { state, http, token_file } => {
            commands::dashboard(&state, http, token_file.as_deref(), shutdown_signal()).await
        }
        Command::Retry { jobs, state, connect, client } => commands::retry(jobs, state, connect, client).await,
        Command::Tables { state, out, compare } => commands::tables(&state, &out, &compare),
    }
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
