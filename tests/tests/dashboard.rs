//! The dashboard as a person sees it: a real `coordinator run` with a real local worker on a
//! small synthetic sweep, its page opened in headless Chromium (Debian's, driven by
//! playwright-core through `tests/browser/dashboard.mjs`). Checked from the rendered DOM: every
//! job the sweep expands to is listed, and on a running job's page a new epoch appears without
//! a reload. The figures (first render, epoch report to page) are printed; screenshots are left
//! in the target directory. Without Chromium, Node or playwright-core (`make browser-deps`
//! installs them) the test says SKIPPED loudly and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use gridsweep_e2e::{run, scratch, start_coordinator_with_dashboard};

/// What the browser test needs, or why it cannot run here.
fn browser_setup() -> Result<(PathBuf, PathBuf), String> {
    let chromium = std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.exists() {
        return Err(format!("no Chromium at {} (set CHROMIUM, or `make browser-deps`)", chromium.display()));
    }
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node_ok {
        return Err("no `node` on PATH".to_owned());
    }
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    if !browser.join("node_modules/playwright-core").is_dir() {
        return Err(format!("playwright-core not installed under {} (`make browser-deps`)", browser.display()));
    }
    Ok((chromium, browser))
}

#[test]
fn dashboard_lists_every_job_and_shows_a_new_epoch_without_a_reload() {
    let (chromium, browser) = match browser_setup() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("\n**************** SKIPPED: dashboard browser test: {why} ****************\n");
            return;
        }
    };
    let dir = scratch("dashboard");
    let sweep = dir.join("dash.yaml");
    // Epochs of a few seconds on two CPU threads, so that the page is open while one arrives.
    std::fs::write(
        &sweep,
        "name: dash\ndata: {kind: synthetic, train: 1200, test: 100, seed: 1}\n\
         train: {epochs: 4, batch_size: 64}\naxes:\n  arch: [resnet, grid]\n  depth: [8]\n  seed: [1]\n\
         lease_ttl_s: 30\n",
    )
    .unwrap();
    let expand = run("coordinator", &["expand", sweep.to_str().unwrap(), "--json"]);
    assert!(expand.status.success(), "{}", String::from_utf8_lossy(&expand.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&expand.stdout).unwrap();
    let ids: Vec<&str> = plan["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
    let ids_file = dir.join("ids.txt");
    std::fs::write(&ids_file, ids.join("\n")).unwrap();

    let (state, out) = (dir.join("state"), dir.join("out"));
    let (_coordinator, _grpc, dashboard) = start_coordinator_with_dashboard(
        &sweep,
        "127.0.0.1:0",
        &["--state", state.to_str().unwrap(), "--out", out.to_str().unwrap(), "--local-workers", "1"],
    );
    let dashboard = dashboard.expect("the dashboard's address");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let driven = Command::new("node")
        .arg(browser.join("dashboard.mjs"))
        .args([dashboard.as_str(), ids_file.to_str().unwrap(), shots.to_str().unwrap()])
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&driven.stdout);
    let stderr = String::from_utf8_lossy(&driven.stderr);
    assert!(driven.status.success(), "browser check failed:\n{stdout}\n{stderr}");
    let figures: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap();
    assert_eq!(figures["jobs_listed"], ids.len());
    assert!(figures["epochs_after"].as_u64() > figures["epochs_before"].as_u64());
    eprintln!(
        "dashboard in Chromium: {} jobs listed; first render {} ms; epoch stored -> shown on the open page {} ms; \
         screenshots in {}",
        figures["jobs_listed"],
        figures["first_render_ms"],
        figures["epoch_to_page_ms"],
        shots.display()
    );
}
