//! Results on stdout: a report as JSON or text, one JSON line, and a closed pipe turned into an
//! error rather than a panic.

use super::error::{CommandError, failed};

/// Prints `value` as JSON when `json`, else `text`.
pub fn print_report(json: bool, value: &impl serde::Serialize, text: &str) -> Result<(), CommandError> {
    if json {
        return print_json(value);
    }
    write_stdout(text)
}

/// Prints `value` as one line of JSON.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), CommandError> {
    let s = serde_json::to_string(value).map_err(|e| failed(format!("cannot encode JSON: {e}")))?;
    write_stdout(&(s + "\n"))
}

/// Writes to stdout; a closed pipe is an error message, not a panic.
pub fn write_stdout(text: &str) -> Result<(), CommandError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| failed(format!("writing to stdout: {e}")))
}
