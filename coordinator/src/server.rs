//! The gRPC service and the serving loop: `run(listener, shutdown)` serves until `shutdown`
//! resolves, so that `main` and the tests drive the same code.

use std::future::Future;

use gridsweep_proto::PROTOCOL_VERSION;
use gridsweep_proto::v1::coordinator_server::{Coordinator, CoordinatorServer};
use gridsweep_proto::v1::{GetServerInfoRequest, ServerInfo};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

/// The result type of every rpc handler.
type RpcResult<T> = Result<Response<T>, Status>;

/// The coordinator's gRPC service.
#[derive(Debug, Default)]
pub struct CoordinatorService {}

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn get_server_info(&self, request: Request<GetServerInfoRequest>) -> RpcResult<ServerInfo> {
        let client = request.get_ref().client_protocol_version;
        if client != PROTOCOL_VERSION {
            return Err(Status::failed_precondition(format!(
                "protocol version mismatch: client speaks {client}, this coordinator speaks {PROTOCOL_VERSION}; \
                 run a worker and coordinator built from the same release"
            )));
        }
        Ok(Response::new(ServerInfo {
            protocol_version: PROTOCOL_VERSION,
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
        }))
    }
}

/// Serves the coordinator on `listener` until `shutdown` completes.
pub async fn run(listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(CoordinatorServer::new(CoordinatorService::default()))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsweep_proto::v1::coordinator_client::CoordinatorClient;

    async fn serve() -> (String, tokio::sync::oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(run(listener, async {
            let _ = rx.await;
        }));
        (url, tx)
    }

    #[tokio::test]
    async fn handshake_reports_the_protocol_version() {
        let (url, _stop) = serve().await;
        let mut client = CoordinatorClient::connect(url).await.unwrap();
        let info = client
            .get_server_info(GetServerInfoRequest { client_protocol_version: PROTOCOL_VERSION })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.protocol_version, PROTOCOL_VERSION);
    }

    #[tokio::test]
    async fn handshake_refuses_another_protocol_version() {
        let (url, _stop) = serve().await;
        let mut client = CoordinatorClient::connect(url).await.unwrap();
        let err = client
            .get_server_info(GetServerInfoRequest { client_protocol_version: PROTOCOL_VERSION + 1 })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.message().contains("protocol version mismatch"), "{}", err.message());
    }
}
