//! `coordinator`: the command-line entry point. Parses flags, sets up logging, binds, and hands
//! over to the library.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

/// The gridsweep coordinator.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the coordinator protocol (the handshake only, for now) until Ctrl-C.
    Serve {
        /// Address to listen on. Only loopback addresses are allowed until token auth exists.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: std::net::SocketAddr,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { listen } => {
            if !listen.ip().is_loopback() {
                bail!(
                    "refusing to listen on non-loopback address {listen}: token authentication is not implemented yet"
                );
            }
            let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
            // The bound address on stdout, for scripts and tests that asked for port 0.
            println!("coordinator listening on {}", listener.local_addr()?);
            coordinator::run(listener, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        }
    }
    Ok(())
}
