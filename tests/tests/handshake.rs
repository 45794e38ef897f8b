//! A real `coordinator` process on loopback answers the protocol handshake and its status, and
//! refuses to bind a non-loopback address while no token is configured.

use gridsweep_e2e::{run, run_sweep, scratch, start_coordinator, tiny_sweep};
use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::v1::coordinator_client::CoordinatorClient;
use gridsweep_proto::v1::{GetServerInfoRequest, GetStatusRequest};

#[tokio::test]
async fn coordinator_process_answers_the_handshake() {
    let dir = scratch("handshake");
    let sweep = tiny_sweep(&dir, "hello", "resnet, grid", "1");
    let state = dir.join("state");
    let (_coordinator, url) = start_coordinator(&sweep, &["--local-workers", "0", "--state", state.to_str().unwrap()]);
    let mut client = CoordinatorClient::connect(url).await.unwrap();
    let info = client
        .get_server_info(GetServerInfoRequest { client_protocol_version: PROTOCOL_VERSION })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.protocol_version, PROTOCOL_VERSION);
    assert_eq!(info.sweep_name, "hello");
    let err = client.get_server_info(GetServerInfoRequest { client_protocol_version: 999 }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    let status = client.get_status(GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.jobs.len(), 2);
    assert!(status.jobs.iter().all(|j| j.state() == gridsweep_proto::v1::JobState::Pending));
    assert!(!status.finished);
}

#[test]
fn coordinator_refuses_a_public_address_without_a_token() {
    let dir = scratch("public");
    let sweep = tiny_sweep(&dir, "public", "resnet", "1");
    let out = run("coordinator", &["run", sweep.to_str().unwrap(), "--listen", "0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("non-loopback"), "{stderr}");
}

#[tokio::test]
async fn a_token_is_required_on_every_call_when_configured() {
    use gridsweep_proto::auth::BearerToken;
    let dir = scratch("token");
    let sweep = tiny_sweep(&dir, "guarded", "resnet", "1");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "correct-horse-battery\n").unwrap();
    let state = dir.join("state");
    let (_coordinator, url) = start_coordinator(
        &sweep,
        &["--local-workers", "0", "--state", state.to_str().unwrap(), "--token-file", token_file.to_str().unwrap()],
    );
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    for (token, ok) in [(None, false), (Some("wrong"), false), (Some("correct-horse-battery"), true)] {
        let mut client = CoordinatorClient::with_interceptor(channel.clone(), BearerToken::new(token));
        let r = client.get_status(GetStatusRequest {}).await;
        match (r, ok) {
            (Ok(_), true) => {}
            (Err(s), false) => assert_eq!(s.code(), tonic::Code::Unauthenticated, "{token:?}: {s}"),
            (r, _) => panic!("{token:?}: unexpected {r:?}"),
        }
    }
}

#[test]
fn a_guarded_sweep_completes_with_local_workers() {
    let dir = scratch("token-sweep");
    let sweep = tiny_sweep(&dir, "guarded-run", "resnet", "1, 2");
    let token_file = dir.join("token");
    std::fs::write(&token_file, "s3cret").unwrap();
    let token = token_file.to_str().unwrap();
    let out = run_sweep(&sweep, &dir.join("state"), &dir.join("out"), 1, &["--token-file", token]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2/2 ended (2 completed"), "{stdout}");
    let cmdline = std::fs::read_to_string(dir.join("state/workers/local-0.log")).unwrap_or_default();
    assert!(!cmdline.contains("s3cret"), "the token is never logged");
}
