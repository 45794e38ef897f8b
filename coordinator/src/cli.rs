//! The coordinator's subcommands and their flags (clap derive); `main.rs` parses them and
//! `commands.rs` carries them out.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use coordinator::http::HttpAddr;
use coordinator::run::LocalWorkers;
use gridsweep_proto::client::ClientFlags;

/// What the coordinator is asked to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a sweep to its end: serve workers, start local ones, write the tables, plots and report.
    Run(RunArgs),
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
        /// A state directory of this sweep's runs: also print, for each grid-vs-resnet and
        /// grid-vs-vgg comparison, the seeds per side that would detect its observed difference
        /// with 80% power, and the `axes.seed` line that gives the sweep that many seeds.
        #[arg(long, value_name = "STATE", conflicts_with = "json")]
        seeds_for: Option<PathBuf>,
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
        /// Compare Table 1's accuracies along this axis: `arch` (grid against resnet and vgg, the
        /// default) or a setting in which the runs differ (`lr`: each pair of its values at each
        /// architecture, depth and value of the other settings). Written to comparisons.csv and
        /// under table1.md.
        #[arg(long, value_name = "AXIS", default_value = "arch")]
        compare: String,
    },
}

/// The flags of `coordinator run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The sweep file.
    pub sweep: PathBuf,
    /// State directory (SQLite database, checkpoints, worker logs); default state/<sweep name>.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Address to serve workers on. A non-loopback address needs a token.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// File holding the shared token every worker and admin call must carry (else the
    /// GRIDSWEEP_TOKEN environment variable; else no token, loopback only).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Serve TLS with this PEM certificate (chain); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name in the certificate that local workers check.
    #[arg(long, default_value = "localhost")]
    pub tls_domain: String,
    /// The host name (or address) other machines reach this coordinator by, printed in the line
    /// that attaches a worker; default: this machine's fully qualified name when --listen is an
    /// unspecified address (0.0.0.0, [::]), else the --listen address.
    #[arg(long, value_name = "HOST")]
    pub advertise: Option<String>,
    /// Local workers: a number, or auto (one per CUDA device, else one CPU worker).
    #[arg(long, default_value = "auto")]
    pub local_workers: LocalWorkers,
    /// Device for each local worker when --local-workers is a number.
    #[arg(long, default_value = "auto")]
    pub worker_device: String,
    /// The worker binary; default: `worker` beside this one.
    #[arg(long)]
    pub worker_bin: Option<PathBuf>,
    /// CIFAR-10 folder given to local workers and streamed to remote workers that lack it.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory for the tables, plots and report.md; default results/<sweep name>.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Hand out jobs in file order instead of longest-expected-first.
    #[arg(long)]
    pub fifo: bool,
    /// Give the jobs that failed in an earlier run a fresh attempt budget before serving.
    #[arg(long)]
    pub retry_failed: bool,
    /// Serve the dashboard and Prometheus /metrics on this address, or `off`. A non-loopback
    /// address needs the token (a login form, or `Authorization: Bearer`). Default: the
    /// first free port of 127.0.0.1:8080 to 8089.
    #[arg(long)]
    pub http: Option<HttpAddr>,
}
