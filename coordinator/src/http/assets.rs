//! The files compiled into the binary: the page shell, the login page, the dashboard's script
//! and style, and the vendored uPlot (see `coordinator/assets/vendor/uplot/README.md`).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The shell of every view; `{{sweep}}` and `{{mode}}` are filled in.
pub const INDEX_HTML: &str = include_str!("../../assets/index.html");
/// The login page; `{{message}}` and `{{next}}` are filled in.
pub const LOGIN_HTML: &str = include_str!("../../assets/login.html");

/// The static files by name, with their content types.
const FILES: [(&str, &str, &str); 4] = [
    ("app.js", "text/javascript; charset=utf-8", include_str!("../../assets/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../assets/app.css")),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    ("uPlot.min.css", "text/css; charset=utf-8", include_str!("../../assets/vendor/uplot/uPlot.min.css")),
];

/// `/assets/{file}`.
pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => {
            ([(header::CONTENT_TYPE, *content_type), (header::CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => super::html::error_page(StatusCode::NOT_FOUND, &format!("There is no asset {file}.")),
    }
}
