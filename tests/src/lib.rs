//! Helpers for the end-to-end tests: find the workspace's built binaries and run them as child
//! processes that are killed when the test ends, pass or fail.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};

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

/// Starts `coordinator serve` on an ephemeral loopback port and returns it with its URL.
pub fn start_coordinator(extra: &[&str]) -> (Proc, String) {
    let mut child = Command::new(bin("coordinator"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn coordinator");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc { child };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("read coordinator stdout");
    let addr = line.trim().strip_prefix("coordinator listening on ").unwrap_or_else(|| panic!("unexpected: {line:?}"));
    (proc, format!("http://{addr}"))
}
