//! The shared-token authentication of every call: the client sends `authorization: Bearer
//! <token>`, the server compares it in constant time. Tokens come from a file or the
//! `GRIDSWEEP_TOKEN` environment variable and are never logged.

use std::path::Path;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The environment variable that may carry the token.
pub const TOKEN_ENV: &str = "GRIDSWEEP_TOKEN";

/// Why a token could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file.
    #[error("token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// An empty or unusable token.
    #[error("token from {0} is empty or not printable ASCII")]
    Invalid(String),
}

/// The token from `file` when given, else from `GRIDSWEEP_TOKEN`, else none. Surrounding
/// whitespace (a trailing newline) is ignored.
pub fn read_token(file: Option<&Path>) -> Result<Option<String>, TokenError> {
    let (token, origin) = match file {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|source| TokenError::Io { path: p.display().to_string(), source })?,
            p.display().to_string(),
        ),
        None => match std::env::var(TOKEN_ENV) {
            Ok(t) => (t, TOKEN_ENV.to_owned()),
            Err(_) => return Ok(None),
        },
    };
    let token = token.trim().to_owned();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenError::Invalid(origin));
    }
    Ok(Some(token))
}

/// Equality whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Client side: adds the bearer token (if any) to every request.
#[derive(Clone, Debug, Default)]
pub struct BearerToken {
    /// `Bearer <token>`, ready to send.
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl BearerToken {
    /// An interceptor sending `token`, or nothing when `None`.
    pub fn new(token: Option<&str>) -> Self {
        BearerToken { header: token.and_then(|t| format!("Bearer {t}").parse().ok()) }
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert("authorization", h.clone());
        }
        Ok(request)
    }
}

/// Server side: requires `Bearer <token>` when a token is configured.
#[derive(Clone, Debug, Default)]
pub struct RequireToken {
    /// The expected `Bearer <token>` bytes; `None` lets every call through.
    expected: Option<Vec<u8>>,
}

impl RequireToken {
    /// Checks calls against `token`, or lets them all through when `None`.
    pub fn new(token: Option<&str>) -> Self {
        RequireToken { expected: token.map(|t| format!("Bearer {t}").into_bytes()) }
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else { return Ok(request) };
        match request.metadata().get("authorization") {
            Some(v) if constant_time_eq(v.as_bytes(), expected) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong token")),
            None => Err(Status::unauthenticated("missing token: this coordinator requires one (--token-file)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked() {
        let mut server = RequireToken::new(Some("s3cret"));
        let mut good = BearerToken::new(Some("s3cret"));
        let mut bad = BearerToken::new(Some("s3creT"));
        assert!(server.call(good.call(Request::new(())).unwrap()).is_ok());
        let err = server.call(bad.call(Request::new(())).unwrap()).unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        let err = server.call(Request::new(())).unwrap_err();
        assert!(err.message().contains("missing token"));
        assert!(RequireToken::new(None).call(Request::new(())).is_ok());
        assert!(
            constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd") && !constant_time_eq(b"ab", b"abc")
        );
    }
}
