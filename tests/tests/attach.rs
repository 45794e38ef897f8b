//! The attach line as an operator uses it: `coordinator run --listen 0.0.0.0:PORT --token-file F`
//! (and the same under TLS) prints a command naming this machine, the token file and the CA; the
//! dashboard's data and `coordinator status` (while the sweep waits for a worker) show the same
//! command; and that command, pasted into a shell, attaches a worker that trains the sweep.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gridsweep_e2e::{Proc, bin, free_port, run, scratch, tiny_sweep};

/// A coordinator started on 0.0.0.0, with what it printed up to its attach line.
struct Started {
    /// The coordinator.
    proc: Proc,
    /// The gRPC port.
    port: u16,
    /// The dashboard's loopback address.
    dashboard: String,
    /// The command after `attach workers with: `.
    attach: String,
}

/// Starts `coordinator run SWEEP --listen 0.0.0.0:PORT --local-workers 0` with `extra` from
/// `dir`, the dashboard on loopback, and reads its output up to the attach line.
fn start(dir: &Path, sweep: &Path, extra: &[&str]) -> Started {
    let port = free_port();
    let mut child = Command::new(bin("coordinator"))
        .arg("run")
        .arg(sweep)
        .args(["--listen", &format!("0.0.0.0:{port}"), "--http", "127.0.0.1:0", "--local-workers", "0"])
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--out")
        .arg(dir.join("out"))
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn coordinator");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let proc = Proc { child };
    let (mut dashboard, mut line) = (None, String::new());
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "coordinator exited before its attach line");
        if let Some(rest) = line.trim().strip_prefix("dashboard on http://") {
            dashboard = rest.split('/').next().map(str::to_owned);
        }
        if let Some(cmd) = line.trim().strip_prefix("no local workers; attach workers with: ") {
            let attach = cmd.to_owned();
            std::thread::spawn(move || for _ in reader.lines() {});
            return Started { proc, port, dashboard: dashboard.expect("dashboard line first"), attach };
        }
    }
}

/// GET `path` from `addr`; the body.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
}

/// This machine's fully qualified name, as the Slurm script finds it (`hostname -f`).
fn fqdn() -> String {
    let out = Command::new("hostname").arg("-f").output().expect("hostname -f");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Checks what the dashboard and `status` show while no worker is attached, then runs the attach
/// command through `sh -c` from `dir` with the built `worker` first on PATH, and checks that the
/// sweep finishes with every job completed. `status` connects with `scheme` and `status_flags`.
fn attach_and_finish(dir: &Path, s: Started, scheme: &str, status_flags: &[&str]) {
    let view: serde_json::Value = serde_json::from_str(&http_get(&s.dashboard, "/api/sweep")).unwrap();
    assert_eq!(view["attach"].as_str(), Some(s.attach.as_str()), "{view}");
    let connect = format!("{scheme}://127.0.0.1:{}", s.port);
    let mut args = vec!["status", "--connect", &connect];
    args.extend(status_flags);
    let status = run("coordinator", &args);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{text}{}", String::from_utf8_lossy(&status.stderr));
    assert!(text.contains("STALLED: 2 jobs pending and no worker connected"), "{text}");
    assert!(text.contains(&format!("attach workers with: {}\n", s.attach)), "{text}");

    let path = format!("{}:{}", bin("worker").parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let worker = Command::new("sh")
        .args(["-c", &format!("{} --device cpu --threads 1", s.attach)])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove(gridsweep_proto::auth::TOKEN_ENV)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut worker = Proc { child: worker };
    let mut coordinator = s.proc;
    assert!(coordinator.child.wait().unwrap().success(), "the sweep finishes");
    assert!(worker.child.wait().unwrap().success(), "the attached worker exits 0 at the end");
    let runs = std::fs::read_to_string(dir.join("out/runs.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(runs.as_bytes());
    let k = reader.headers().unwrap().iter().position(|h| h == "state").unwrap();
    let states: Vec<String> = reader.records().map(|r| r.unwrap()[k].to_owned()).collect();
    assert_eq!(states, ["completed", "completed"], "{runs}");
}

/// A token file with a fresh token; the token too.
fn token_file(dir: &Path) -> (PathBuf, String) {
    let token = format!("attach-test-{}", std::process::id());
    let path = dir.join("sweep.token");
    std::fs::write(&path, &token).unwrap();
    (path, token)
}

#[test]
fn the_printed_attach_line_attaches_a_worker_that_trains() {
    let dir = scratch("attach");
    let sweep = tiny_sweep(&dir, "attach", "resnet", "1, 2");
    let (file, token) = token_file(&dir);
    // A relative --token-file, as an operator types it; the line names it absolutely.
    let s = start(&dir, &sweep, &["--token-file", "sweep.token"]);
    let expected = format!("worker --coordinator http://{}:{} --token-file {}", fqdn(), s.port, file.display());
    assert_eq!(s.attach, expected);
    assert!(!s.attach.contains(&token), "the token itself is never printed");
    attach_and_finish(&dir, s, "http", &["--token-file", file.to_str().unwrap()]);
}

#[test]
fn under_tls_the_line_has_https_the_ca_and_the_name_the_certificate_holds() {
    let dir = scratch("attach-tls");
    let sweep = tiny_sweep(&dir, "attachtls", "resnet", "1, 2");
    let (file, _) = token_file(&dir);
    // A certificate for `localhost` only (not this machine's name): the line says to check that.
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("cert.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let flags = [
        "--token-file",
        file.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let s = start(&dir, &sweep, &flags);
    let expected = format!(
        "worker --coordinator https://{}:{} --token-file {} --tls-ca {} --tls-domain localhost",
        fqdn(),
        s.port,
        file.display(),
        cert.display()
    );
    assert_eq!(s.attach, expected);
    let status_flags =
        ["--token-file", file.to_str().unwrap(), "--tls-ca", cert.to_str().unwrap(), "--tls-domain", "localhost"];
    attach_and_finish(&dir, s, "https", &status_flags);
}
