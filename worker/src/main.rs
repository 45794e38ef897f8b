//! `worker`: the command-line entry point. Parses flags and calls the library; bad input exits
//! with status 2 and a message, never a panic.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use worker::devices::DeviceReport;
use worker::inspect::Inspection;
use worker::models::{Arch, ModelSpec};

/// The gridsweep worker.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the libtorch version, CUDA/cuDNN availability and each CUDA device.
    Devices {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Build a model and print its parameters, FLOPs (thop convention, one 3x32x32 image),
    /// blocks, grid side and path lengths. A path's length counts the blocks whose residual
    /// branch it passes; a path may skip a block through its shortcut.
    Inspect {
        /// Architecture.
        #[arg(long, value_enum)]
        arch: Arch,
        /// Depth, 6n + 2 (grid: n a perfect square).
        #[arg(long)]
        depth: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Devices { json } => {
            let report = DeviceReport::probe();
            if json {
                print_json(&report)
            } else {
                print!("{}", report.to_text());
                ExitCode::SUCCESS
            }
        }
        Command::Inspect { arch, depth, json } => match ModelSpec::new(arch, depth) {
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
            Ok(spec) => {
                let report = Inspection::build(spec);
                if json {
                    print_json(&report)
                } else {
                    print!("{}", report.to_text());
                    ExitCode::SUCCESS
                }
            }
        },
    }
}

/// Prints `value` as one line of JSON.
fn print_json(value: &impl serde::Serialize) -> ExitCode {
    match serde_json::to_string(value) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot encode JSON: {e}");
            ExitCode::FAILURE
        }
    }
}
