//! HTML text the pages and the asset route share: escaping, and the error page.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

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
