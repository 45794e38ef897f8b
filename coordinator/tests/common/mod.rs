//! What the in-process service tests share: a scratch directory, and the Coordinator service
//! serving a four-job synthetic sweep (resnet and grid at depth 8, seeds 1 and 2) over a fresh
//! SQLite state on 127.0.0.1:0. Each test binary uses a part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use coordinator::server::{Shared, serve};
use coordinator::store::Store;
use tokio::net::TcpListener;

/// A fresh scratch directory for this test process: `gridsweep-<binary>-<pid>-<name>`.
pub fn scratch(binary: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gridsweep-{binary}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A served coordinator.
pub struct Grpc {
    /// Its shared state.
    pub shared: Arc<Shared>,
    /// Its URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The sweep's job ids, in the file's order.
    pub jobs: Vec<String>,
    /// The state directory.
    pub state: PathBuf,
}

/// Serves sweep `sweep` (the four jobs, `epochs` epochs each) from a state under `dir`, with
/// `token` required when given.
pub async fn serve_sweep(dir: &std::path::Path, sweep: &str, epochs: u32, token: Option<&str>) -> Grpc {
    let sweep_file = dir.join("s.yaml");
    std::fs::write(
        &sweep_file,
        format!(
            "name: {sweep}\ndata: {{kind: synthetic, train: 64, test: 32, seed: 1}}\n\
             train: {{epochs: {epochs}, batch_size: 32}}\naxes:\n  arch: [resnet, grid]\n  depth: [8]\n  seed: [1, 2]\n"
        ),
    )
    .unwrap();
    let sweep = coordinator::sweep::load(&sweep_file).unwrap();
    let state = dir.join("state");
    let store = Store::open(&state).unwrap();
    store.add_sweep(&sweep.name, "s.yaml", &sweep.jobs, 3).unwrap();
    let jobs = sweep.jobs.iter().map(|j| j.id()).collect();
    let shared = Arc::new(Shared::new(
        store,
        sweep.name.clone(),
        Duration::from_secs(30),
        false,
        None,
        token.map(str::to_owned),
        None,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, shared.clone(), std::future::pending()));
    Grpc { shared, url, jobs, state }
}
