//! `worker`: the command-line entry point, dispatch only. Parses flags (`cli`), sets up logging
//! and hands each command to its body in `worker::cli`; a failure's exit status is its kind's
//! (`CommandError::exit_code`: 2 for bad input, never a panic). Results (JSON, reports) go to
//! stdout; progress and diagnostics are log lines on stderr (`--log-format`).

use std::process::ExitCode;

use worker::cli::{Cli, Command, CommandError, DataCommand, agent_cmd, bench_cmd, tools_cmd, train_cmd};

fn main() -> ExitCode {
    worker::alloc::tune_for_training();
    worker::context::prepare_cublas_determinism();
    let cli = Cli::parse_checked();
    worker::logging::init(cli.log_format);
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The reason for a failing exit is shown even when RUST_LOG silences errors.
            if tracing::enabled!(tracing::Level::ERROR) {
                tracing::error!("{e}");
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// The command's body: the sweep participant without a subcommand, else the subcommand's.
fn dispatch(cli: Cli) -> Result<(), CommandError> {
    let Some(command) = cli.command else { return agent_cmd::run(cli.agent, cli.log_format) };
    match command {
        Command::Devices { json } => tools_cmd::devices(json),
        Command::Inspect { arch, depth, json } => tools_cmd::inspect(arch, depth, json),
        Command::Data(DataCommand::Fetch { dest, source }) => tools_cmd::fetch(&dest, source),
        Command::Data(DataCommand::Synth { dest, train, test, seed }) => tools_cmd::synth(&dest, train, test, seed),
        Command::Train(args) => train_cmd::run(*args, cli.log_format),
        Command::Bench(args) => bench_cmd::run(*args),
    }
}
