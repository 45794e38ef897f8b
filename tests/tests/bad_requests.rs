//! Bad requests to a real coordinator, table-driven: each gets a clear status naming the
//! problem, nothing panics, and the sweep's state is untouched (the job is still pending).

use gridsweep_e2e::{scratch, start_coordinator, tiny_sweep};
use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::job::{JobSpec, TrainConfig};
use gridsweep_proto::result::{RunStatus, TrainResult};
use gridsweep_proto::v1 as pb;
use gridsweep_proto::v1::coordinator_client::CoordinatorClient;
use tonic::Code;

#[tokio::test]
async fn bad_requests_get_clear_errors_and_change_nothing() {
    let dir = scratch("bad-requests");
    let sweep = tiny_sweep(&dir, "bad", "resnet", "1");
    let state = dir.join("state");
    let (_coordinator, url) = start_coordinator(&sweep, &["--local-workers", "0", "--state", state.to_str().unwrap()]);
    let mut c = CoordinatorClient::connect(url).await.unwrap().max_encoding_message_size(64 << 20);
    let reg = |name: &str| pb::RegisterWorkerRequest {
        protocol_version: PROTOCOL_VERSION,
        name: name.into(),
        device: "cpu".into(),
        device_memory_bytes: 0,
    };
    let holder = c.register_worker(reg("holder")).await.unwrap().into_inner().worker_id;
    let other = c.register_worker(reg("other")).await.unwrap().into_inner().worker_id;
    let lease = match c
        .pull_job(pb::PullJobRequest { worker_id: holder.clone(), wait_ms: 1000 })
        .await
        .unwrap()
        .into_inner()
        .outcome
    {
        Some(pb::pull_job_response::Outcome::Lease(l)) => l,
        other => panic!("expected a lease, got {other:?}"),
    };
    let spec: JobSpec = serde_json::from_str(&lease.spec_json).expect("spec");
    let hb = |worker: &str, job: &str, token: u64| pb::HeartbeatRequest {
        worker_id: worker.into(),
        job_id: job.into(),
        fencing_token: token,
        epochs: vec![],
    };

    let mut cases: Vec<(&str, Result<(), tonic::Status>, Code, &str)> = Vec::new();
    let r = c.register_worker(pb::RegisterWorkerRequest { protocol_version: 99, ..reg("old") }).await.map(|_| ());
    cases.push(("incompatible protocol", r, Code::FailedPrecondition, "protocol version mismatch"));
    let r = c.heartbeat(hb(&holder, "000000000000", lease.fencing_token)).await.map(|_| ());
    cases.push(("unknown job id", r, Code::NotFound, "unknown job 000000000000"));
    let r = c.heartbeat(hb(&other, &lease.job_id, lease.fencing_token)).await.map(|_| ());
    cases.push(("report for a job the worker does not hold", r, Code::FailedPrecondition, "stale lease"));
    let r = c.heartbeat(hb(&holder, &lease.job_id, lease.fencing_token + 1)).await.map(|_| ());
    cases.push(("wrong fencing token", r, Code::FailedPrecondition, "stale lease"));
    let r = c.heartbeat(hb("w999-ffff", &lease.job_id, lease.fencing_token)).await.map(|_| ());
    cases.push(("unknown worker", r, Code::NotFound, "unknown worker"));
    let chunk = |data: Vec<u8>, sha: &str| pb::CheckpointChunk {
        job_id: lease.job_id.clone(),
        fencing_token: lease.fencing_token,
        epoch: 1,
        data,
        sha256: sha.into(),
        worker_id: holder.clone(),
    };
    let r = c.upload_checkpoint(tokio_stream::iter(vec![chunk(vec![1, 2, 3], "00")])).await.map(|_| ());
    cases.push(("checkpoint whose sha256 does not match", r, Code::DataLoss, "sha256"));
    let r = c.upload_checkpoint(tokio_stream::iter(vec![chunk(vec![0; 9 << 20], "")])).await.map(|_| ());
    cases.push(("oversized message", r, Code::OutOfRange, ""));
    let r = c
        .complete_job(pb::CompleteJobRequest {
            worker_id: holder.clone(),
            job_id: lease.job_id.clone(),
            fencing_token: lease.fencing_token,
            result_json: "{not json".into(),
        })
        .await
        .map(|_| ());
    cases.push(("malformed result", r, Code::InvalidArgument, "bad report for job"));
    let mut wrong =
        serde_json::to_value(TrainResult::simulated(spec.train.clone(), RunStatus::Completed, &[50.0])).expect("json");
    wrong["grad_analysis"] = serde_json::json!({"config": {"batch_size": 100}, "batches": 1, "total_gradients": 5,
        "mean": 0.0, "std": 0.1, "vanished": [{"eps": 1e-4, "count": 1, "ratio": 2.0}]});
    let r = c
        .complete_job(pb::CompleteJobRequest {
            worker_id: holder.clone(),
            job_id: lease.job_id.clone(),
            fencing_token: lease.fencing_token,
            result_json: wrong.to_string(),
        })
        .await
        .map(|_| ());
    cases.push(("result with a field out of range", r, Code::InvalidArgument, "grad_analysis.vanished[0].ratio"));
    let other = TrainResult::simulated(TrainConfig { lr: 0.5, ..spec.train.clone() }, RunStatus::Completed, &[50.0]);
    let r = c
        .complete_job(pb::CompleteJobRequest {
            worker_id: holder.clone(),
            job_id: lease.job_id.clone(),
            fencing_token: lease.fencing_token,
            result_json: serde_json::to_string(&other).expect("json"),
        })
        .await
        .map(|_| ());
    cases.push(("result of another config", r, Code::InvalidArgument, "config.lr"));

    for (what, result, code, text) in cases {
        let err = result.expect_err(what);
        let code_ok = err.code() == code || (what == "oversized message" && err.code() == Code::ResourceExhausted);
        assert!(code_ok, "{what}: got {:?} {}", err.code(), err.message());
        assert!(err.message().contains(text), "{what}: {}", err.message());
    }
    // The lease survived every bad request: its holder can still renew it.
    c.heartbeat(hb(&holder, &lease.job_id, lease.fencing_token)).await.expect("lease intact");
    let status = c.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.jobs[0].state(), pb::JobState::Running);
}
