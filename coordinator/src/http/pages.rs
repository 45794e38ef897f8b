//! The pages: one HTML shell for every view (the script draws the view named by the path and
//! fills it from the JSON endpoints), a 404 page for an unknown job or path.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::Dashboard;
use super::assets::INDEX_HTML;

/// The shell of every view.
pub async fn shell(State(d): State<Arc<Dashboard>>) -> Response {
    page(&d)
}

/// `/jobs/{id}`: the shell when the job exists, else 404.
pub async fn job(State(d): State<Arc<Dashboard>>, Path(id): Path<String>) -> Response {
    let shared = d.shared.clone();
    let lookup = id.clone();
    match tokio::task::spawn_blocking(move || shared.store.has_job(&lookup)).await {
        Ok(Ok(true)) => page(&d),
        Ok(Ok(false)) => not_found_page(&format!("There is no job {id} in sweep {}.", d.shared.sweep_name)),
        Ok(Err(e)) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Any other path.
pub async fn not_found() -> Response {
    not_found_page("There is no such page.")
}

/// The shell, named for the sweep.
fn page(d: &Dashboard) -> Response {
    let html = INDEX_HTML
        .replace("{{sweep}}", &escape(&d.shared.sweep_name))
        .replace("{{mode}}", if d.live { "live" } else { "stored" });
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// 404 with `message`.
fn not_found_page(message: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, message)
}

/// An error page.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} · gridsweep</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main class=\"narrow\">\
         <h1>{code}</h1><p id=\"message\">{msg}</p><p><a href=\"/\">Back to the sweep</a></p></main></body></html>",
        code = status,
        msg = escape(message)
    );
    (status, Html(html)).into_response()
}

/// `s` safe inside HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
