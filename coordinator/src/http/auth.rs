//! Who may see the dashboard. When a token is required (a non-loopback address), a request
//! carries it as `Authorization: Bearer <token>` (scripts, Prometheus) or as a session cookie
//! that the login form sets (people). The cookie is HttpOnly and SameSite=Strict, and holds a
//! digest of the token and a secret drawn when the coordinator started, never the token; a token
//! is never taken from a URL. A request without either gets 401: a login page for pages, a
//! line of text for data.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use gridsweep_proto::auth::constant_time_eq;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::Dashboard;
use super::html::escape;

/// The session cookie's name.
const COOKIE: &str = "gridsweep_session";

/// The token a request must show, and the session cookie that stands for it.
#[derive(Debug)]
pub struct Access {
    /// The token, when one is required.
    token: Option<String>,
    /// The value of a valid session cookie.
    session: String,
}

impl Access {
    /// Access requiring `token`, or open when `None`.
    pub fn new(token: Option<String>) -> Access {
        let mut secret = [0u8; 32];
        // A secret per process: sessions end when the coordinator restarts. Without a random
        // source the digest still hides the token, keyed by the time.
        if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut secret)).is_err()
        {
            secret[..16].copy_from_slice(&crate::store::now().to_bits().to_le_bytes().repeat(2));
        }
        let session = match &token {
            Some(t) => hex::encode(Sha256::new().chain_update(secret).chain_update(t.as_bytes()).finalize()),
            None => String::new(),
        };
        Access { token, session }
    }

    /// Whether `headers` show the token (bearer or session cookie); always when none is required.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return true };
        let bearer = headers
            .get_all(header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.strip_prefix("Bearer "))
            .any(|t| constant_time_eq(t.trim().as_bytes(), token.as_bytes()));
        bearer || self.cookie(headers).is_some_and(|c| constant_time_eq(c.as_bytes(), self.session.as_bytes()))
    }

    /// The session cookie's value in `headers`, if any.
    fn cookie<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v)
    }
}

/// Middleware: passes requests that show the token, answers 401 to the others.
pub async fn require(State(d): State<Arc<Dashboard>>, request: Request, next: Next) -> Response {
    if d.access.admits(request.headers()) {
        return next.run(request).await;
    }
    let path = request.uri().path();
    if path.starts_with("/api/") || path == "/metrics" {
        let text = "401 Unauthorized: this dashboard needs the sweep's token, as `Authorization: Bearer <token>` or \
                    the session cookie set by logging in at /login\n";
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], text).into_response();
    }
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    login_response(StatusCode::UNAUTHORIZED, "This dashboard needs the sweep's token.", &target)
}

/// Where to go after logging in.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    /// A path on this server.
    next: Option<String>,
}

/// GET /login: the form.
pub async fn login_page(State(d): State<Arc<Dashboard>>, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    if d.access.token.is_none() {
        return Redirect::to(&next).into_response();
    }
    login_response(StatusCode::OK, "Enter the sweep's token to see its dashboard.", &next)
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The token typed in.
    token: String,
    /// Where to go next.
    next: Option<String>,
}

/// POST /login: checks the token, sets the session cookie and goes on; 401 with the form again
/// on a wrong token.
pub async fn login(State(d): State<Arc<Dashboard>>, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let Some(token) = &d.access.token else { return Redirect::to(&next).into_response() };
    if !constant_time_eq(form.token.trim().as_bytes(), token.as_bytes()) {
        return login_response(StatusCode::UNAUTHORIZED, "Wrong token: this is not the sweep's token.", &next);
    }
    let cookie = format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/", d.access.session);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
}

/// POST /logout: clears the session cookie.
pub async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// A path on this server to go to after logging in: `/` unless `next` is a local path (never
/// another host: `//host` and `/\host` are refused).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") && !n.contains(['\r', '\n']) => {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The login page with `message`, answered with `status`.
fn login_response(status: StatusCode, message: &str, next: &str) -> Response {
    let page = super::assets::LOGIN_HTML.replace("{{message}}", &escape(message)).replace("{{next}}", &escape(next));
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_next(Some("/jobs?arch=vgg")), "/jobs?arch=vgg");
        assert_eq!(safe_next(Some("//evil.example/x")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn bearer_or_session_cookie_admits_and_nothing_else() {
        let a = Access::new(Some("s3cret".to_owned()));
        let mut h = HeaderMap::new();
        assert!(!a.admits(&h));
        h.insert(header::AUTHORIZATION, "Bearer wrong".parse().unwrap());
        assert!(!a.admits(&h));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(a.admits(&h));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "gridsweep_session=s3cret".parse().unwrap());
        assert!(!a.admits(&h), "the cookie holds a digest, never the token");
        h.insert(header::COOKIE, format!("other=1; gridsweep_session={}", a.session).parse().unwrap());
        assert!(a.admits(&h));
        assert!(Access::new(None).admits(&HeaderMap::new()));
    }
}
