//! `worker --slots K` end to end: each of the K worker processes registers its share of the
//! device's memory (1/K), which is what the coordinator records as the need of a job that runs
//! out of memory in a slot.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gridsweep_e2e::{Proc, bin, scratch, start_coordinator, tiny_sweep};
use gridsweep_proto::v1::GetStatusRequest;
use gridsweep_proto::v1::coordinator_client::CoordinatorClient;

/// This machine's RAM in bytes, as a CPU worker reads it (`MemTotal`).
fn ram_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn each_slot_registers_its_share_of_the_device() {
    let dir = scratch("slots-share");
    let sweep = tiny_sweep(&dir, "share", "resnet", "1, 2");
    let (state, out) = (dir.join("state"), dir.join("out"));
    let (_coordinator, url) = start_coordinator(
        &sweep,
        &["--local-workers", "0", "--state", state.to_str().unwrap(), "--out", out.to_str().unwrap()],
    );
    let log = std::fs::File::create(dir.join("slots.log")).unwrap();
    let child = Command::new(bin("worker"))
        .args(["--coordinator", &url, "--device", "cpu", "--threads", "1", "--slots", "2", "--work-dir"])
        .arg(dir.join("work"))
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut slots = Proc { child };
    let mut client = CoordinatorClient::connect(url).await.unwrap();
    let started = Instant::now();
    let workers = loop {
        let workers = client.get_status(GetStatusRequest {}).await.unwrap().into_inner().workers;
        if workers.len() == 2 {
            break workers;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "two slots registered: {workers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for w in &workers {
        assert_eq!(w.device_memory_bytes, ram_bytes() / 2, "{w:?}");
    }
    // The sweep ends, and with it both slots and their supervisor (no worker left behind).
    let exited = tokio::task::spawn_blocking(move || (slots.child.wait(), slots));
    let (status, _slots) = tokio::time::timeout(Duration::from_secs(180), exited).await.expect("slots exit").unwrap();
    assert!(status.unwrap().success());
}
