//! TLS (rustls) with a self-signed certificate made in the test: a client trusting it talks to
//! the coordinator, one trusting another certificate or speaking plain HTTP does not, and a whole
//! sweep runs with its local worker over TLS.

use std::path::{Path, PathBuf};

use gridsweep_e2e::{run_sweep, scratch, start_coordinator, tiny_sweep};
use gridsweep_proto::client::{ClientTls, connect};
use gridsweep_proto::v1::GetStatusRequest;

/// Writes a self-signed certificate for `localhost` and its key; returns (cert, key).
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

#[tokio::test]
async fn only_clients_trusting_the_certificate_get_through() {
    let dir = scratch("tls");
    let (cert, key) = self_signed(&dir, "server");
    let (other, _) = self_signed(&dir, "other");
    let sweep = tiny_sweep(&dir, "tls", "resnet", "1");
    let (_coordinator, url) = start_coordinator(
        &sweep,
        &[
            "--local-workers",
            "0",
            "--state",
            dir.join("state").to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let https = url.replacen("http://", "https://", 1);
    let trust = |ca: &Path| ClientTls { ca_pem: std::fs::read(ca).unwrap(), domain: Some("localhost".to_owned()) };

    let mut good = connect(&https, Some(&trust(&cert)), None).await.expect("trusted TLS connection");
    assert_eq!(good.get_status(GetStatusRequest {}).await.unwrap().into_inner().sweep_name, "tls");

    let refused = match connect(&https, Some(&trust(&other)), None).await {
        Err(e) => e.to_string(),
        Ok(mut c) => c.get_status(GetStatusRequest {}).await.unwrap_err().to_string(),
    };
    assert!(refused.to_lowercase().contains("certificate") || refused.contains("BadSignature"), "{refused}");

    let plain = match connect(&url, None, None).await {
        Err(e) => e.to_string(),
        Ok(mut c) => {
            c.get_status(GetStatusRequest {}).await.map(|_| "answered".to_owned()).unwrap_or_else(|e| e.to_string())
        }
    };
    assert_ne!(plain, "answered", "plain HTTP/2 must not get an answer from a TLS coordinator");
}

#[test]
fn a_sweep_runs_over_tls_with_its_local_worker() {
    let dir = scratch("tls-sweep");
    let (cert, key) = self_signed(&dir, "server");
    let sweep = tiny_sweep(&dir, "tls-run", "grid", "1");
    let tls = ["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let out = run_sweep(&sweep, &dir.join("state"), &dir.join("out"), 1, &tls);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1/1 ended (1 completed"), "{stdout}");
}
