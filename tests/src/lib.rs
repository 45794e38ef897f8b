//! Helpers for the end-to-end tests: find the workspace's built binaries and run them as child
//! processes that are killed when the test ends, pass or fail.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The path of a workspace binary (`worker`, `coordinator`) in the target directory the tests
/// were built into. `make test` builds the binaries before running the tests.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/<name>
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built; run `cargo build --workspace --bins` first", path.display());
    path
}

/// Runs a binary with `args` to completion.
pub fn run(name: &str, args: &[&str]) -> Output {
    Command::new(bin(name)).args(args).output().expect("spawn binary")
}

/// A child process killed on drop.
pub struct Proc {
    /// The running process.
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a worker on `url` with a CPU and one thread, its work folder `work` (created) and its
/// log in `work` with the extension `.log`.
pub fn start_worker(url: &str, work: &Path) -> Proc {
    let child = worker_command(url, work, &work.with_extension("log"), &[]).spawn().expect("spawn worker");
    Proc { child }
}

/// The command of a worker on `url` with a CPU and one thread, its work folder `work`
/// (created), stdout discarded and stderr into the file `log`; run through `under` when given
/// (a program and its arguments that start the worker's path and arguments as `"$0" "$@"`,
/// such as `sh -c 'ulimit -v N && exec "$0" "$@"'`). A test adds its environment and spawns it.
pub fn worker_command(url: &str, work: &Path, log: &Path, under: &[&str]) -> Command {
    std::fs::create_dir_all(work).expect("work dir");
    let log = std::fs::File::create(log).expect("worker log");
    let mut cmd = match under.split_first() {
        Some((program, args)) => {
            let mut cmd = Command::new(program);
            cmd.args(args).arg(bin("worker"));
            cmd
        }
        None => Command::new(bin("worker")),
    };
    cmd.args(["--coordinator", url, "--device", "cpu", "--threads", "1", "--work-dir"])
        .arg(work)
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    cmd
}

/// Numbers the default output directories of the coordinators a test process starts.
static OUTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gridsweep-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A small sweep on synthetic data: `archs` x depth 8 x `seeds`, 2 epochs, the gradient
/// analysis for grid jobs.
pub fn tiny_sweep(dir: &Path, name: &str, archs: &str, seeds: &str) -> PathBuf {
    let path = dir.join(format!("{name}.yaml"));
    let analysis = if archs.contains("grid") { "analysis:\n  when: {arch: [grid]}\n" } else { "" };
    let text = format!(
        "name: {name}\ndata: {{kind: synthetic, train: 160, test: 80, seed: 1}}\n\
         train: {{epochs: 2, batch_size: 32}}\naxes:\n  arch: [{archs}]\n  depth: [8]\n  seed: [{seeds}]\n\
         {analysis}lease_ttl_s: 30\n"
    );
    std::fs::write(&path, text).expect("write sweep");
    path
}

/// Runs `coordinator run SWEEP` to the end on an ephemeral loopback port with `workers` local
/// CPU workers, its state in `state` and its outputs in `out`, plus `extra` flags.
pub fn run_sweep(sweep: &Path, state: &Path, out: &Path, workers: u32, extra: &[&str]) -> Output {
    let (sweep, state, out, workers) =
        (sweep.to_string_lossy(), state.to_string_lossy(), out.to_string_lossy(), workers.to_string());
    let mut args = vec!["run", &sweep, "--listen", "127.0.0.1:0", "--state", &state, "--out", &out];
    if !extra.contains(&"--http") {
        args.extend(["--http", "127.0.0.1:0"]);
    }
    args.extend(["--local-workers", &workers, "--worker-device", "cpu"]);
    args.extend(extra);
    run("coordinator", &args)
}

/// Starts `coordinator run SWEEP` on an ephemeral loopback port with `extra` flags and returns
/// it with its URL (read from its `coordinator listening on ADDR` line).
pub fn start_coordinator(sweep: &Path, extra: &[&str]) -> (Proc, String) {
    start_coordinator_on(sweep, "127.0.0.1:0", extra)
}

/// Like `start_coordinator`, on a given address (to restart a coordinator where it was).
pub fn start_coordinator_on(sweep: &Path, listen: &str, extra: &[&str]) -> (Proc, String) {
    let (proc, url, _) = start_coordinator_with_dashboard(sweep, listen, extra);
    (proc, url)
}

/// Starts `coordinator run SWEEP` on `listen` with `extra` flags (the dashboard on an ephemeral
/// loopback port unless `extra` has `--http`) and returns it with its gRPC URL and its
/// dashboard's URL (none with `--http off`), read from what it prints.
pub fn start_coordinator_with_dashboard(sweep: &Path, listen: &str, extra: &[&str]) -> (Proc, String, Option<String>) {
    let http: &[&str] = if extra.contains(&"--http") { &[] } else { &["--http", "127.0.0.1:0"] };
    // Outputs go to a scratch directory unless the test names one: never into the source tree.
    let out_dir = scratch(&format!("out-{}", OUTS.fetch_add(1, Ordering::SeqCst)));
    let out: Vec<String> =
        if extra.contains(&"--out") { Vec::new() } else { vec!["--out".into(), out_dir.display().to_string()] };
    let http_off = extra.windows(2).any(|w| w == ["--http", "off"]);
    let mut child = Command::new(bin("coordinator"))
        .arg("run")
        .arg(sweep)
        .args(["--listen", listen])
        .args(http)
        .args(&out)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn coordinator");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc { child };
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let (mut grpc, mut dashboard) = (None, None);
    loop {
        line.clear();
        let n = reader.read_line(&mut line).expect("read coordinator stdout");
        assert!(n > 0, "coordinator exited before listening");
        if let Some(addr) = line.trim().strip_prefix("coordinator listening on ") {
            grpc = Some(format!("http://{addr}"));
        }
        if let Some(rest) = line.trim().strip_prefix("dashboard on ") {
            dashboard = rest.split_whitespace().next().map(|u| u.trim_end_matches('/').to_owned());
        }
        if let Some(url) = grpc.clone()
            && (http_off || dashboard.is_some())
        {
            // Keep draining stdout so the coordinator never blocks on a full pipe.
            std::thread::spawn(move || for _ in reader.lines() {});
            return (proc, url, dashboard);
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A TCP proxy to `upstream` that can cut the network: while `cut` is set, every connection
/// through it is closed and new ones are refused. Stands for a partition between a worker and
/// the coordinator.
pub struct Proxy {
    /// The address to connect to instead of `upstream`.
    pub addr: std::net::SocketAddr,
    /// Set to partition, clear to heal.
    pub cut: Arc<AtomicBool>,
}

/// Starts a `Proxy` to `upstream`; its threads live as long as the test process.
pub fn proxy(upstream: std::net::SocketAddr) -> Proxy {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("proxy addr");
    let cut = Arc::new(AtomicBool::new(false));
    let flag = cut.clone();
    std::thread::spawn(move || {
        for inbound in listener.incoming() {
            let Ok(inbound) = inbound else { continue };
            if flag.load(Ordering::SeqCst) {
                continue; // dropped: refused
            }
            let Ok(outbound) = std::net::TcpStream::connect(upstream) else { continue };
            let pipes = [(inbound.try_clone(), outbound.try_clone()), (outbound.try_clone(), inbound.try_clone())];
            for (from, to) in pipes {
                if let (Ok(mut from), Ok(mut to)) = (from, to) {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
            let flag = flag.clone();
            std::thread::spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                let _ = inbound.shutdown(std::net::Shutdown::Both);
                let _ = outbound.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    Proxy { addr, cut }
}
