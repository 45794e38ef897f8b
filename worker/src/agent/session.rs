//! The worker's connection to its coordinator: connect and register (retried until it works,
//! or refused for good), capped exponential backoff with jitter between tries, and the retry
//! of a call that failed only because the coordinator was not reached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::client::Client;
use gridsweep_proto::v1 as pb;
use tch::Device;
use tonic::{Code, Status};

use super::{AgentConfig, AgentError};

/// Capped exponential backoff with jitter: ~0.5 s, 1 s, 2 s, ... up to 15 s.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 500u64.saturating_mul(1 << attempt.min(5)).min(15_000);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(base / 2 + u64::from(nanos) % (base / 2 + 1))
}

/// Connects, checks the protocol version and registers; retries until it works or `stop`.
pub(super) async fn connect(cfg: &AgentConfig, stop: &AtomicBool) -> Result<Option<(Client, String)>, AgentError> {
    let device = match cfg.device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => format!("cpu, {} threads", tch::get_num_threads()),
    };
    // So that a job that ran out of memory elsewhere comes here only if this worker has more:
    // its share of the device under `--slots K`.
    let memory = crate::devices::registered_memory_bytes(cfg.device).unwrap_or(0);
    let mut attempt = 0;
    while !stop.load(Ordering::SeqCst) {
        match gridsweep_proto::client::connect(&cfg.coordinator, cfg.tls.as_ref(), cfg.token.as_deref()).await {
            Ok(mut client) => {
                let req = pb::RegisterWorkerRequest {
                    protocol_version: PROTOCOL_VERSION,
                    name: cfg.name.clone(),
                    device: device.clone(),
                    device_memory_bytes: memory,
                };
                match client.register_worker(req).await {
                    Ok(r) => return Ok(Some((client, r.into_inner().worker_id))),
                    Err(s) if s.code() == Code::FailedPrecondition => {
                        return Err(AgentError::Refused(s.message().to_owned()));
                    }
                    Err(s) if s.code() == Code::Unauthenticated => {
                        return Err(AgentError::unauthenticated(&cfg.coordinator, &s));
                    }
                    Err(s) => tracing::warn!("registering with {}: {}; retrying", cfg.coordinator, s.message()),
                }
            }
            Err(e) if e.is_permanent() => return Err(AgentError::Refused(e.to_string())),
            Err(e) => tracing::warn!("{e}; retrying"),
        }
        tokio::time::sleep(backoff(attempt)).await;
        attempt += 1;
    }
    Ok(None)
}

/// Retries a call on transient errors (coordinator down or unreachable) with backoff, for about
/// three minutes: a finished result is worth waiting for.
pub(super) async fn retry<T, F, Fut>(mut f: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Err(s) if is_transient(&s) && attempt < 16 => {
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Errors that say nothing about the request, only that the coordinator was not reached.
fn is_transient(s: &Status) -> bool {
    matches!(s.code(), Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled)
}
