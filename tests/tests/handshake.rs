//! A real `coordinator` process on loopback answers the protocol handshake, and refuses to bind
//! a non-loopback address while no token is configured.

use gridsweep_e2e::{run, start_coordinator};
use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::v1::GetServerInfoRequest;
use gridsweep_proto::v1::coordinator_client::CoordinatorClient;

#[tokio::test]
async fn coordinator_process_answers_the_handshake() {
    let (_coordinator, url) = start_coordinator(&[]);
    let mut client = CoordinatorClient::connect(url).await.unwrap();
    let info = client
        .get_server_info(GetServerInfoRequest { client_protocol_version: PROTOCOL_VERSION })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(info.protocol_version, PROTOCOL_VERSION);
    let err = client.get_server_info(GetServerInfoRequest { client_protocol_version: 999 }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

#[test]
fn coordinator_refuses_a_public_address_without_a_token() {
    let out = run("coordinator", &["serve", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("non-loopback"), "{stderr}");
}
