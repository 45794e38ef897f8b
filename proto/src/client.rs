//! Connecting to a coordinator the same way from every client (worker, `coordinator status`,
//! tests): plain HTTP/2 or TLS (rustls, trusting a given CA), with the bearer token on every call.

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::auth::BearerToken;
use crate::v1::coordinator_client::CoordinatorClient;

/// A coordinator client that sends the token.
pub type Client = CoordinatorClient<InterceptedService<Channel, BearerToken>>;

/// TLS settings of a client.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// PEM of the CA (or self-signed certificate) to trust.
    pub ca_pem: Vec<u8>,
    /// The name the server's certificate must carry; default: the URL's host.
    pub domain: Option<String>,
}

impl ClientTls {
    /// The `--tls-ca FILE [--tls-domain NAME]` flags of a client: none without a CA file; the
    /// error names the file.
    pub fn from_flags(ca: Option<&std::path::Path>, domain: Option<String>) -> Result<Option<Self>, String> {
        let Some(ca) = ca else { return Ok(None) };
        let ca_pem = std::fs::read(ca).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        Ok(Some(ClientTls { ca_pem, domain }))
    }
}

/// The endpoint for `url` (`http://` or, with `tls`, `https://`).
pub fn endpoint(url: &str, tls: Option<&ClientTls>) -> Result<Endpoint, String> {
    let mut ep = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("bad coordinator URL {url}: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if let Some(tls) = tls {
        let mut cfg = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
        if let Some(d) = &tls.domain {
            cfg = cfg.domain_name(d.clone());
        }
        ep = ep.tls_config(cfg).map_err(|e| format!("TLS settings for {url}: {e}"))?;
    }
    Ok(ep)
}

/// Connects to `url` and returns a client sending `token`.
pub async fn connect(url: &str, tls: Option<&ClientTls>, token: Option<&str>) -> Result<Client, String> {
    let channel =
        endpoint(url, tls)?.connect().await.map_err(|e| format!("connecting to {url}: {}", error_chain(&e)))?;
    Ok(CoordinatorClient::with_interceptor(channel, BearerToken::new(token))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20))
}

/// An error with its causes, "a: b: c" (TLS failures hide the useful part in the source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}
