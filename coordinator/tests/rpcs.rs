//! Every rpc of the Coordinator service against the real server on 127.0.0.1:0 over a temporary
//! SQLite state, in the manner of tonic's own tests: no libtorch, no worker binary. Each rpc's
//! success, and the gRPC code of each way it can be refused: a version mismatch, an unknown
//! worker or job, a stale lease, a malformed report, a bad upload, a quarantined worker, no data
//! set to share, and a corrupt database row (DATA_LOSS, not the INVALID_ARGUMENT of a bad report).

use std::path::PathBuf;

use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::client::Client;
use gridsweep_proto::job::JobSpec;
use gridsweep_proto::result::{RunStatus, TrainResult};
use gridsweep_proto::v1::{self as pb, pull_job_response::Outcome};
use tonic::Code;

mod common;

/// A served coordinator over a four-job synthetic sweep.
struct Served {
    /// A connected client.
    client: Client,
    /// The state directory.
    state: PathBuf,
}

async fn start(name: &str) -> Served {
    let common::Grpc { url, state, .. } = common::serve_sweep(&common::scratch("rpcs", name), "rpcs", 2, None).await;
    let client = gridsweep_proto::client::connect(&url, None, None).await.unwrap();
    Served { client, state }
}

fn register(name: &str) -> pb::RegisterWorkerRequest {
    pb::RegisterWorkerRequest {
        protocol_version: PROTOCOL_VERSION,
        name: name.into(),
        device: "cpu".into(),
        device_memory_bytes: 0,
    }
}

async fn worker(c: &mut Client, name: &str) -> String {
    c.register_worker(register(name)).await.unwrap().into_inner().worker_id
}

async fn pull(c: &mut Client, worker: &str) -> Result<Option<pb::Lease>, Code> {
    match c.pull_job(pb::PullJobRequest { worker_id: worker.to_owned(), wait_ms: 0 }).await {
        Ok(r) => Ok(match r.into_inner().outcome {
            Some(Outcome::Lease(l)) => Some(l),
            _ => None,
        }),
        Err(s) => Err(s.code()),
    }
}

/// A well-formed result for `lease`'s job.
fn result_json(lease: &pb::Lease) -> String {
    let spec: JobSpec = serde_json::from_str(&lease.spec_json).unwrap();
    serde_json::to_string(&TrainResult::simulated(spec.train, RunStatus::Completed, &[40.0, 50.0])).unwrap()
}

fn complete(worker: &str, lease: &pb::Lease, token: u64, json: &str) -> pb::CompleteJobRequest {
    pb::CompleteJobRequest {
        worker_id: worker.to_owned(),
        job_id: lease.job_id.clone(),
        fencing_token: token,
        result_json: json.to_owned(),
    }
}

fn fail(worker: &str, lease: &pb::Lease, kind: i32) -> pb::FailJobRequest {
    pb::FailJobRequest {
        worker_id: worker.to_owned(),
        job_id: lease.job_id.clone(),
        fencing_token: lease.fencing_token,
        error: "boom".into(),
        kind,
    }
}

fn chunk(worker: &str, lease: &pb::Lease, data: &[u8], sha256: &str) -> pb::CheckpointChunk {
    pb::CheckpointChunk {
        job_id: lease.job_id.clone(),
        fencing_token: lease.fencing_token,
        epoch: 1,
        data: data.to_vec(),
        sha256: sha256.to_owned(),
        worker_id: worker.to_owned(),
    }
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn info_registration_and_pulls() {
    let Served { mut client, .. } = start("info").await;
    let ask = |v| pb::GetServerInfoRequest { client_protocol_version: v };
    let info = client.get_server_info(ask(PROTOCOL_VERSION)).await.unwrap().into_inner();
    assert_eq!((info.protocol_version, info.sweep_name.as_str()), (PROTOCOL_VERSION, "rpcs"));
    let e = client.get_server_info(ask(PROTOCOL_VERSION + 1)).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let old = pb::RegisterWorkerRequest { protocol_version: PROTOCOL_VERSION + 1, ..register("old") };
    assert_eq!(client.register_worker(old).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(pull(&mut client, "w-nobody").await.unwrap_err(), Code::NotFound);
    let w = worker(&mut client, "w").await;
    for _ in 0..4 {
        assert!(pull(&mut client, &w).await.unwrap().is_some());
    }
    assert_eq!(pull(&mut client, &w).await.unwrap(), None, "every job is leased");
}

#[tokio::test]
async fn reports_stale_leases_and_bad_reports() {
    let Served { mut client, .. } = start("reports").await;
    let w = worker(&mut client, "w").await;
    let l = pull(&mut client, &w).await.unwrap().unwrap();
    let beat = |token: u64, metrics: &str| pb::HeartbeatRequest {
        worker_id: w.clone(),
        job_id: l.job_id.clone(),
        fencing_token: token,
        epochs: vec![pb::EpochReport { epoch: 1, metrics_json: metrics.to_owned() }],
    };
    let good = r#"{"epoch":1,"lr":0.1,"train_loss":1.0,"train_acc":40.0,"test_loss":1.0,"test_acc":40.0,"seconds":1.0,"images_per_s":64.0}"#;
    assert!(client.heartbeat(beat(l.fencing_token, good)).await.unwrap().into_inner().proceed);
    let stale = client.heartbeat(beat(l.fencing_token + 100, good)).await.unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");
    let bad = client.heartbeat(beat(l.fencing_token, r#"{"epoch":1,"test_acc":"high"}"#)).await.unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad:?}");
    // A malformed result and one of another job's config are the worker's bad reports.
    let e = client.complete_job(complete(&w, &l, l.fencing_token, "{not json")).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = client.complete_job(complete(&w, &l, l.fencing_token + 100, &result_json(&l))).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    let done = client.complete_job(complete(&w, &l, l.fencing_token, &result_json(&l))).await.unwrap().into_inner();
    assert!(done.accepted, "{done:?}");
    let again = client.complete_job(complete(&w, &l, l.fencing_token, &result_json(&l))).await.unwrap().into_inner();
    assert!(!again.accepted, "a second completion changes nothing: {again:?}");

    // Fail, with an unknown kind refused; release.
    let l2 = pull(&mut client, &w).await.unwrap().unwrap();
    assert_eq!(client.fail_job(fail(&w, &l2, 99)).await.unwrap_err().code(), Code::InvalidArgument);
    let f = client.fail_job(fail(&w, &l2, pb::FailureKind::Job.into())).await.unwrap().into_inner();
    assert!(f.accepted && f.will_retry, "{f:?}");
    let l3 = pull(&mut client, &w).await.unwrap().unwrap();
    let release =
        |token| pb::ReleaseJobRequest { worker_id: w.clone(), job_id: l3.job_id.clone(), fencing_token: token };
    assert!(client.release_job(release(l3.fencing_token)).await.unwrap().into_inner().accepted);
    assert!(!client.release_job(release(l3.fencing_token)).await.unwrap().into_inner().accepted, "released once");
}

#[tokio::test]
async fn checkpoints_round_trip_and_bad_uploads_are_refused() {
    let Served { mut client, .. } = start("checkpoints").await;
    let w = worker(&mut client, "w").await;
    let l = pull(&mut client, &w).await.unwrap().unwrap();
    let download =
        |token| pb::DownloadCheckpointRequest { worker_id: w.clone(), job_id: l.job_id.clone(), fencing_token: token };
    let none = client.download_checkpoint(download(l.fencing_token)).await.map(|_| ()).unwrap_err();
    assert_eq!(none.code(), Code::NotFound, "{none:?}");
    let upload = |chunks: Vec<pb::CheckpointChunk>| tokio_stream::iter(chunks);
    let e = client.upload_checkpoint(upload(Vec::new())).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "empty upload: {e:?}");
    let mut sneaky = chunk(&w, &l, b"x", &sha256(b"x"));
    sneaky.job_id = "../../etc".into();
    assert_eq!(client.upload_checkpoint(upload(vec![sneaky])).await.unwrap_err().code(), Code::InvalidArgument);
    let mut stale = chunk(&w, &l, b"x", &sha256(b"x"));
    stale.fencing_token += 100;
    assert_eq!(client.upload_checkpoint(upload(vec![stale])).await.unwrap_err().code(), Code::FailedPrecondition);
    let data = vec![7u8; 300_000];
    let wrong = client.upload_checkpoint(upload(vec![chunk(&w, &l, &data, &sha256(b"other"))])).await.unwrap_err();
    assert_eq!(wrong.code(), Code::DataLoss, "{wrong:?}");
    let (a, b) = data.split_at(100_000);
    let sent = client
        .upload_checkpoint(upload(vec![chunk(&w, &l, a, ""), chunk(&w, &l, b, &sha256(&data))]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.bytes, data.len() as u64);
    let mut stream = client.download_checkpoint(download(l.fencing_token)).await.unwrap().into_inner();
    let (mut got, mut sha) = (Vec::new(), String::new());
    while let Some(c) = stream.message().await.unwrap() {
        got.extend(c.data);
        if !c.sha256.is_empty() {
            sha = c.sha256;
        }
    }
    assert_eq!((got, sha), (data.clone(), sha256(&data)));
}

#[tokio::test]
async fn no_data_set_status_retry_and_quarantine() {
    let Served { mut client, .. } = start("misc").await;
    let e = client.fetch_data(pb::FetchDataRequest { worker_id: "w".into() }).await.map(|_| ()).unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "no --data: {e:?}");
    let status = client.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.jobs.len(), 4);
    let mut watch = client.watch_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(watch.message().await.unwrap().unwrap().jobs.len(), 4, "the first status comes at once");
    let retry = |ids: Vec<String>| pb::RetryJobsRequest { job_ids: ids };
    assert_eq!(client.retry_jobs(retry(vec!["nope".into()])).await.unwrap_err().code(), Code::NotFound);
    let not_failed = client.retry_jobs(retry(vec![status.jobs[0].job_id.clone()])).await.unwrap().into_inner();
    assert_eq!(not_failed.not_failed.len(), 1, "{not_failed:?}");
    // Three failed jobs in a row quarantine a worker: its pulls are refused.
    let w = worker(&mut client, "bad").await;
    for _ in 0..3 {
        let l = pull(&mut client, &w).await.unwrap().unwrap();
        client.fail_job(fail(&w, &l, pb::FailureKind::Job.into())).await.unwrap();
    }
    assert_eq!(pull(&mut client, &w).await.unwrap_err(), Code::PermissionDenied);
}

/// A corrupt database row is DATA_LOSS: the coordinator's fault, not the caller's (a bad report
/// is INVALID_ARGUMENT, above).
#[tokio::test]
async fn a_corrupt_row_is_data_loss() {
    let Served { mut client, state, .. } = start("corrupt").await;
    assert!(client.get_status(pb::GetStatusRequest {}).await.is_ok());
    let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
    db.execute("UPDATE jobs SET state = 'bogus' WHERE seq = 0", []).unwrap();
    let e = client.get_status(pb::GetStatusRequest {}).await.unwrap_err();
    assert_eq!(e.code(), Code::DataLoss, "{e:?}");
    assert!(e.message().contains("unknown state"), "{e:?}");
}
