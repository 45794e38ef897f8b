//! The `run` command's local workers: child processes of this coordinator, one per device,
//! each logging to `<state>/workers/local-K.log`. They are started, watched and stopped through
//! `tokio::process`, so nothing here blocks a runtime thread; a graceful stop is SIGTERM (a worker
//! gives its lease back and exits), then a kill after `TERM_GRACE`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{Attach, RunError, RunOptions};

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

/// How long a local worker has after SIGTERM (it gives its lease back and exits) before it is
/// killed.
const TERM_GRACE: Duration = Duration::from_secs(10);

/// The running local workers.
#[derive(Debug, Default)]
pub struct Pool {
    /// The child processes, in the order they were started (worker K logs to `local-K.log`).
    children: Vec<Child>,
}

impl Pool {
    /// Starts the local workers `opts` asks for, connecting to `addr`, and prints how to attach
    /// more (`attach`): always without local workers, and with them when other machines can reach
    /// the coordinator.
    pub async fn start(
        opts: &RunOptions,
        data: Option<&Path>,
        state_dir: &Path,
        addr: SocketAddr,
        attach: &Attach,
    ) -> Result<Pool, RunError> {
        let bin = match &opts.worker_bin {
            Some(b) => b.clone(),
            None => std::env::current_exe().map_err(|e| RunError::Workers(e.to_string()))?.with_file_name("worker"),
        };
        let devices: Vec<String> = match opts.local_workers {
            LocalWorkers::Count(n) => (0..n).map(|_| opts.worker_device.clone()).collect(),
            LocalWorkers::Auto => match cuda_devices(&bin).await {
                0 => vec!["cpu".to_owned()],
                gpus => (0..gpus).map(|i| format!("cuda:{i}")).collect(),
            },
        };
        if devices.is_empty() {
            print_attach("no local workers; attach workers with", attach);
            return Ok(Pool::default());
        }
        if !bin.exists() {
            return Err(RunError::Workers(format!("worker binary {} not found (--worker-bin)", bin.display())));
        }
        let dir = state_dir.join("workers");
        tokio::fs::create_dir_all(&dir).await.map_err(|e| RunError::Workers(format!("{}: {e}", dir.display())))?;
        let local = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
        let launch = Launch {
            bin,
            url: format!("{}://{local}", if opts.tls.is_some() { "https" } else { "http" }),
            threads: (std::thread::available_parallelism().map_or(1, |n| n.get()) / devices.len()).max(1),
            data: data.map(Path::to_path_buf),
            dir,
        };
        let mut children = Vec::new();
        for (k, device) in devices.iter().enumerate() {
            children.push(launch.spawn(opts, k, device).await?);
        }
        if !attach.loopback_only {
            print_attach("attach more workers with", attach);
        }
        Ok(Pool { children })
    }

    /// Whether there were local workers and every one of them has exited.
    pub fn all_exited(&mut self) -> bool {
        !self.children.is_empty() && self.children.iter_mut().all(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Stops the local workers: waits up to `grace` for them to exit on their own (they see the
    /// sweep finished, or their jobs released), then sends SIGTERM to those still running, waits
    /// up to `TERM_GRACE`, and kills what is left.
    pub async fn stop(&mut self, grace: Duration) {
        if tokio::time::timeout(grace, self.wait_all()).await.is_ok() {
            return;
        }
        for c in &mut self.children {
            if matches!(c.try_wait(), Ok(None)) {
                terminate(c);
            }
        }
        if tokio::time::timeout(TERM_GRACE, self.wait_all()).await.is_ok() {
            return;
        }
        for c in &mut self.children {
            if matches!(c.try_wait(), Ok(None)) {
                tracing::warn!(pid = c.id(), "local worker still running {TERM_GRACE:?} after SIGTERM; killing it");
                let _ = c.kill().await;
            }
        }
    }

    /// Waits until every worker has exited (and is reaped).
    async fn wait_all(&mut self) {
        for c in &mut self.children {
            let _ = c.wait().await;
        }
    }
}

/// What every local worker's command line shares.
struct Launch {
    /// The worker binary.
    bin: PathBuf,
    /// The coordinator's URL as a local worker reaches it.
    url: String,
    /// `--threads` for a CPU worker: this machine's CPUs shared out.
    threads: usize,
    /// `--data`, the coordinator's data set.
    data: Option<PathBuf>,
    /// `<state>/workers`: the logs and work directories.
    dir: PathBuf,
}

impl Launch {
    /// Starts local worker `k` on `device`, logging to `local-K.log`.
    async fn spawn(&self, opts: &RunOptions, k: usize, device: &str) -> Result<Child, RunError> {
        let log_path = self.dir.join(format!("local-{k}.log"));
        let log = match tokio::fs::File::create(&log_path).await {
            Ok(f) => f.into_std().await,
            Err(e) => return Err(RunError::Workers(format!("{}: {e}", log_path.display()))),
        };
        let err = log.try_clone().map_err(|e| RunError::Workers(e.to_string()))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--coordinator").arg(&self.url).arg("--device").arg(device);
        cmd.arg("--work-dir").arg(self.dir.join(format!("local-{k}")));
        if opts.worker_log_json {
            cmd.arg("--log-format").arg("json");
        }
        if device == "cpu" || device == "auto" {
            cmd.arg("--threads").arg(self.threads.to_string());
        }
        if let Some(d) = &self.data {
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
            .map_err(|e| RunError::Workers(format!("starting {}: {e}", self.bin.display())))?;
        let pid = child.id().map_or_else(|| "?".to_owned(), |p| p.to_string());
        println!("local worker {k} on {device} (pid {pid}, log {})", log_path.display());
        Ok(child)
    }
}

/// `lead: COMMAND` on one line (to copy whole), then each note indented.
fn print_attach(lead: &str, attach: &Attach) {
    println!("{lead}: {}", attach.command);
    for note in &attach.notes {
        println!("  ({note})");
    }
}

/// CUDA devices the worker binary sees (0 when it cannot tell).
async fn cuda_devices(bin: &Path) -> usize {
    let out = Command::new(bin).args(["devices", "--json"]).stdin(Stdio::null()).output().await;
    out.ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["cuda_device_count"].as_u64())
        .unwrap_or(0) as usize
}

/// Sends SIGTERM to a worker that is still running.
fn terminate(c: &Child) {
    let Some(pid) = c.id().and_then(|p| libc::pid_t::try_from(p).ok()) else { return };
    // SAFETY: kill(2) takes any pid and signal and touches no memory of ours; `pid` is a child we
    // spawned and tokio has not reaped (`id()` is None once it has), so it names that process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}
