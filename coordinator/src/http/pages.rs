//! The pages: one HTML shell for every view (the script draws the view named by the path and
//! fills it from the JSON endpoints), a 404 page for an unknown job or path.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::Dashboard;
use super::assets::INDEX_HTML;
use super::error::ApiError;
use super::html::{error_page, escape};

/// The shell of every view.
pub async fn shell(State(d): State<Arc<Dashboard>>) -> Response {
    page(&d)
}

/// `/jobs/{id}`: the shell when the job exists, else 404.
pub async fn job(State(d): State<Arc<Dashboard>>, Path(id): Path<String>) -> Response {
    let lookup = id.clone();
    let found: Result<bool, ApiError> = d.source.store.call("looking up a job", move |s| Ok(s.has_job(&lookup)?)).await;
    match found {
        Ok(true) => page(&d),
        Ok(false) => not_found_page(&format!("There is no job {id} in sweep {}.", d.source.sweep_name)),
        Err(ApiError::NotFound(e) | ApiError::Internal(e)) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e),
    }
}

/// Any other path.
pub async fn not_found() -> Response {
    not_found_page("There is no such page.")
}

/// The shell, named for the sweep.
fn page(d: &Dashboard) -> Response {
    let html = INDEX_HTML
        .replace("{{sweep}}", &escape(&d.source.sweep_name))
        .replace("{{mode}}", if d.live { "live" } else { "stored" });
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// 404 with `message`.
fn not_found_page(message: &str) -> Response {
    error_page(StatusCode::NOT_FOUND, message)
}
