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
    pub fn from_flags(ca: Option<&std::path::Path>, domain: Option<String>) -> Result<Option<Self>, FlagError> {
        let Some(ca) = ca else { return Ok(None) };
        let ca_pem = std::fs::read(ca).map_err(|source| FlagError::TlsCa { path: ca.to_path_buf(), source })?;
        Ok(Some(ClientTls { ca_pem, domain }))
    }
}

/// A client's flags that cannot be used: the user's input, which a command reports and exits 2.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    /// The token file (or `GRIDSWEEP_TOKEN`).
    #[error(transparent)]
    Token(#[from] crate::auth::TokenError),
    /// The CA file could not be read.
    #[error("--tls-ca {}: {source}", path.display())]
    TlsCa {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The command-line flags of every client (the worker, `coordinator status`): the token file
/// and the TLS trust settings.
#[derive(Clone, Debug, Default)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ClientFlags {
    /// File holding the coordinator's shared token (else the GRIDSWEEP_TOKEN variable).
    #[cfg_attr(feature = "cli", arg(long))]
    pub token_file: Option<std::path::PathBuf>,
    /// PEM file of the CA (or self-signed certificate) to trust: talk TLS to an https:// coordinator.
    #[cfg_attr(feature = "cli", arg(long))]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The server name in the coordinator's certificate (default: the URL's host).
    #[cfg_attr(feature = "cli", arg(long, requires = "tls_ca"))]
    pub tls_domain: Option<String>,
}

impl ClientFlags {
    /// The token (from the file, else the environment); the error names where it came from.
    pub fn token(&self) -> Result<Option<String>, FlagError> {
        Ok(crate::auth::read_token(self.token_file.as_deref())?)
    }

    /// The TLS settings; the error names the CA file.
    pub fn tls(&self) -> Result<Option<ClientTls>, FlagError> {
        ClientTls::from_flags(self.tls_ca.as_deref(), self.tls_domain.clone())
    }

    /// The same flags as arguments, for a child process.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let mut out = Vec::new();
        let mut push = |flag: &str, value: std::ffi::OsString| {
            out.push(flag.into());
            out.push(value);
        };
        if let Some(f) = &self.token_file {
            push("--token-file", f.clone().into());
        }
        if let Some(ca) = &self.tls_ca {
            push("--tls-ca", ca.clone().into());
        }
        if let Some(d) = &self.tls_domain {
            push("--tls-domain", d.into());
        }
        out
    }
}

/// Why a client could not connect. The caller decides on the variant, never on the text: a
/// bad URL or TLS setting will not pass by retrying, an unreachable coordinator may.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("bad coordinator URL {url}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// Why it is not one.
        reason: String,
    },
    /// The TLS settings cannot be used.
    #[error("TLS settings for {url}: {reason}")]
    BadTls {
        /// The coordinator's URL.
        url: String,
        /// What is wrong with them.
        reason: String,
    },
    /// The coordinator was not reached: down, unreachable, or the handshake failed.
    #[error("connecting to {url}: {reason}")]
    Unreachable {
        /// The coordinator's URL.
        url: String,
        /// The transport's error with its causes.
        reason: String,
    },
}

impl ConnectError {
    /// Whether trying again cannot help (the settings are wrong, not the network).
    pub fn is_permanent(&self) -> bool {
        matches!(self, ConnectError::BadUrl { .. } | ConnectError::BadTls { .. })
    }
}

/// The endpoint for `url` (`http://` or, with `tls`, `https://`).
pub fn endpoint(url: &str, tls: Option<&ClientTls>) -> Result<Endpoint, ConnectError> {
    let mut ep = Endpoint::from_shared(url.to_owned())
        .map_err(|e| ConnectError::BadUrl { url: url.to_owned(), reason: e.to_string() })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    if let Some(tls) = tls {
        let mut cfg = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
        if let Some(d) = &tls.domain {
            cfg = cfg.domain_name(d.clone());
        }
        ep = ep.tls_config(cfg).map_err(|e| ConnectError::BadTls { url: url.to_owned(), reason: e.to_string() })?;
    }
    Ok(ep)
}

/// Connects to `url` and returns a client sending `token`.
pub async fn connect(url: &str, tls: Option<&ClientTls>, token: Option<&str>) -> Result<Client, ConnectError> {
    let channel = endpoint(url, tls)?
        .connect()
        .await
        .map_err(|e| ConnectError::Unreachable { url: url.to_owned(), reason: error_chain(&e) })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_errors_are_permanent() {
        let e = endpoint("not a url", None).unwrap_err();
        assert!(matches!(e, ConnectError::BadUrl { .. }) && e.is_permanent(), "{e}");
        assert!(e.to_string().starts_with("bad coordinator URL not a url: "), "{e}");
        let unreachable = ConnectError::Unreachable { url: "http://x".into(), reason: "refused".into() };
        assert!(!unreachable.is_permanent());
    }

    #[test]
    fn unusable_flags_are_typed_and_name_their_file() {
        let flags = ClientFlags { tls_ca: Some("/nonexistent/ca.pem".into()), ..Default::default() };
        let e = flags.tls().unwrap_err();
        assert!(matches!(e, FlagError::TlsCa { .. }), "{e:?}");
        assert!(e.to_string().starts_with("--tls-ca /nonexistent/ca.pem: "), "{e}");
        let flags = ClientFlags { token_file: Some("/nonexistent/token".into()), ..Default::default() };
        let e = flags.token().unwrap_err();
        assert!(matches!(e, FlagError::Token(crate::auth::TokenError::Io { .. })), "{e:?}");
        assert!(e.to_string().starts_with("token file /nonexistent/token: "), "{e}");
        assert!(ClientFlags::default().tls().unwrap().is_none(), "no CA file, no TLS");
    }
}
