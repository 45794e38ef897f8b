//! The `run` command's local workers: child processes of this coordinator, one per device,
//! each logging to `<state>/workers/local-K.log`. A worker on GPU `cuda:N` sees only that GPU
//! (`CUDA_VISIBLE_DEVICES`) and trains on it as `cuda:0`, so that neither libtorch nor cuBLAS
//! sets up a context on its neighbours' cards. They are started, watched and stopped through
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
        let visible = std::env::var(CUDA_VISIBLE).ok();
        let child = self
            .command(opts, k, device, visible.as_deref())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| RunError::Workers(format!("starting {}: {e}", self.bin.display())))?;
        let pid = child.id().map_or_else(|| "?".to_owned(), |p| p.to_string());
        println!("local worker {k} on {device} (pid {pid}, log {})", log_path.display());
        Ok(child)
    }

    /// Local worker `k`'s command on `device`, `visible` being this process's own
    /// `CUDA_VISIBLE_DEVICES`.
    fn command(&self, opts: &RunOptions, k: usize, device: &str, visible: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.bin);
        let (device, own_gpu) = one_gpu(device, visible);
        if let Some(gpu) = own_gpu {
            cmd.env(CUDA_VISIBLE, gpu);
        }
        cmd.arg("--coordinator").arg(&self.url).arg("--device").arg(&device);
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
        cmd
    }
}

/// CUDA's variable naming the GPUs a process sees (and their order: `cuda:0` is the first).
const CUDA_VISIBLE: &str = "CUDA_VISIBLE_DEVICES";

/// The `--device` a worker meant for `device` gets, and the `CUDA_VISIBLE_DEVICES` that shows
/// it only its GPU: `cuda:N` becomes `cuda:0` with the N-th GPU this process sees, which is
/// the N-th entry of `visible` (this process's own `CUDA_VISIBLE_DEVICES`) when that is set,
/// else GPU N. Any other device is left alone.
fn one_gpu(device: &str, visible: Option<&str>) -> (String, Option<String>) {
    let Some(n) = device.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()) else {
        return (device.to_owned(), None);
    };
    let gpu = match visible.map(|v| v.split(',').map(str::trim).collect::<Vec<_>>()) {
        Some(list) if list.len() > n => list[n].to_owned(),
        // Fewer entries than N: let the worker fail on the device it was given, as it would have.
        Some(_) => return (device.to_owned(), None),
        None => n.to_string(),
    };
    ("cuda:0".to_owned(), Some(gpu))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The options `run` passes on to its local workers, without TLS or a token.
    fn options() -> RunOptions {
        RunOptions {
            sweep: PathBuf::from("s.yaml"),
            state: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            local_workers: LocalWorkers::Auto,
            out: None,
            fifo: false,
            data: None,
            worker_bin: None,
            worker_device: "auto".to_owned(),
            token: None,
            tls: None,
            retry_failed: false,
            http: crate::http::HttpAddr::Off,
            worker_log_json: false,
            advertise: None,
            token_file: None,
        }
    }

    /// What a command runs with: its arguments and the variables it sets (None: removed).
    fn seen(cmd: &Command) -> (Vec<String>, Vec<(String, Option<String>)>) {
        let std = cmd.as_std();
        let args = std.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
        let envs = std.get_envs().map(|(k, v)| (text(k), v.map(text))).collect();
        (args, envs)
    }

    #[test]
    fn each_gpu_worker_sees_only_its_own_gpu_as_cuda_0() {
        let launch = Launch {
            bin: PathBuf::from("/bin/worker"),
            url: "http://127.0.0.1:1".to_owned(),
            threads: 2,
            data: None,
            dir: PathBuf::from("/state/workers"),
        };
        let opts = options();
        for (device, visible, gpu) in [("cuda:0", None, "0"), ("cuda:3", None, "3"), ("cuda:1", Some("4,6"), "6")] {
            let (args, envs) = seen(&launch.command(&opts, 1, device, visible));
            let at = args.iter().position(|a| a == "--device").unwrap();
            assert_eq!(args[at + 1], "cuda:0", "{device}: {args:?}");
            assert!(envs.contains(&(CUDA_VISIBLE.to_owned(), Some(gpu.to_owned()))), "{device}: {envs:?}");
            assert!(!args.contains(&"--threads".to_owned()), "GPU workers keep libtorch's threads");
        }
        // A CPU worker's GPUs are left alone, and it gets its share of the CPUs.
        let (args, envs) = seen(&launch.command(&opts, 0, "cpu", Some("0")));
        assert_eq!(args[..4], ["--coordinator", "http://127.0.0.1:1", "--device", "cpu"]);
        assert!(args.windows(2).any(|w| w == ["--threads", "2"]), "{args:?}");
        assert!(envs.iter().all(|(k, _)| k != CUDA_VISIBLE), "{envs:?}");
        // More GPUs asked for than this process sees: the device as given, no variable.
        assert_eq!(one_gpu("cuda:2", Some("5")), ("cuda:2".to_owned(), None));
    }
}
