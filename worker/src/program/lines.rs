//! The program's metrics file, read as it grows: each complete line is one JSON object, an
//! epoch line (`{"epoch": 3, "test_acc": 61.2}`), a checkpoint line (`{"checkpoint": true,
//! "epoch": 3}`) or the result line (`{"result": {...}}`, with `"diverged": true` beside it when
//! the loss went non-finite). A line that is none of these is reported, not guessed at.
//!
//! Python's `json.dumps` writes a non-finite float as the bare word `NaN`, `Infinity` or
//! `-Infinity`, which is not JSON; a diverging run writes exactly that. Those words (outside
//! strings) are read as null, the protocol's "no figure", and a result line that had one is
//! a diverged result unless it says `"diverged": false`.

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use serde_json::{Map, Value as Json};

/// One line of the metrics file.
#[derive(Debug, PartialEq)]
pub(crate) enum Line {
    /// An epoch's figures, `epoch` (1-based) among them.
    Epoch {
        /// The epoch.
        epoch: u32,
        /// The whole object, as the coordinator stores it.
        metrics: Map<String, Json>,
    },
    /// The checkpoint folder holds the state after `epoch`.
    Checkpoint {
        /// The epoch it holds; none when the line leaves it out (then the last epoch line's).
        epoch: Option<u32>,
    },
    /// The final result.
    Result {
        /// The result object.
        result: Map<String, Json>,
        /// The program said its loss went non-finite.
        diverged: bool,
    },
    /// A line that is not one of the above: what is wrong with it.
    Bad(String),
}

/// Parses one line (without its newline).
pub(crate) fn parse(text: &str) -> Line {
    let (json, non_finite) = non_finite_as_null(text);
    let object = match serde_json::from_str::<Json>(&json) {
        Ok(Json::Object(o)) => o,
        Ok(_) => return Line::Bad(format!("not a JSON object: {}", clip(text))),
        Err(e) => return Line::Bad(format!("not JSON ({e}): {}", clip(text))),
    };
    let epoch_of = |o: &Map<String, Json>| o.get("epoch").and_then(Json::as_u64).and_then(|e| u32::try_from(e).ok());
    if let Some(result) = object.get("result") {
        let Json::Object(result) = result else {
            return Line::Bad(format!("`result` is not an object: {}", clip(text)));
        };
        let diverged = object.get("diverged").and_then(Json::as_bool).unwrap_or(non_finite);
        return Line::Result { result: result.clone(), diverged };
    }
    if object.get("checkpoint").and_then(Json::as_bool) == Some(true) {
        return Line::Checkpoint { epoch: epoch_of(&object) };
    }
    match epoch_of(&object) {
        Some(epoch) if epoch >= 1 => match object.iter().find(|(_, v)| !(v.is_number() || v.is_null())) {
            Some((k, _)) => Line::Bad(format!("epoch line: `{k}` is not a number or null: {}", clip(text))),
            None => Line::Epoch { epoch, metrics: object },
        },
        _ => {
            Line::Bad(format!("neither an epoch (a whole number >= 1), a checkpoint nor a result line: {}", clip(text)))
        }
    }
}

/// `text` with each of Python's non-finite words outside strings (`NaN`, `Infinity`,
/// `-Infinity`) replaced by `null`, and whether there was one.
fn non_finite_as_null(text: &str) -> (Cow<'_, str>, bool) {
    const WORDS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    if !(text.contains("NaN") || text.contains("Infinity")) {
        return (Cow::Borrowed(text), false);
    }
    let (mut out, mut rest, mut found) = (String::with_capacity(text.len()), text, false);
    let (mut in_string, mut escaped) = (false, false);
    while let Some(c) = rest.chars().next() {
        if !in_string && let Some(word) = WORDS.iter().find(|w| rest.starts_with(**w)) {
            out.push_str("null");
            rest = &rest[word.len()..];
            found = true;
            continue;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    (Cow::Owned(out), found)
}

/// At most 200 characters of `text`, for messages.
fn clip(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

/// Reads the complete lines appended to a file since the last call (a partial last line waits
/// for its newline).
pub(crate) struct Tail {
    /// The file.
    path: PathBuf,
    /// Bytes consumed so far.
    offset: u64,
    /// The start of a line whose newline has not arrived yet.
    partial: Vec<u8>,
}

impl Tail {
    /// A reader of `path` from its start (the file need not exist yet).
    pub(crate) fn new(path: PathBuf) -> Self {
        Tail { path, offset: 0, partial: Vec::new() }
    }

    /// The lines completed since the last call, parsed; `flush` takes a last line without its
    /// newline too (the program has exited).
    pub(crate) fn read(&mut self, flush: bool) -> std::io::Result<Vec<Line>> {
        let mut bytes = Vec::new();
        match File::open(&self.path) {
            Ok(mut f) => {
                f.seek(SeekFrom::Start(self.offset))?;
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let mut out = Vec::new();
        while let Some(n) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=n).collect();
            push(&mut out, &line[..n]);
        }
        if flush && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            push(&mut out, &line);
        }
        Ok(out)
    }
}

/// Parses `bytes` as a line onto `out`, skipping blank lines.
fn push(out: &mut Vec<Line>, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if !text.trim().is_empty() {
        out.push(parse(text.trim()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_line() {
        assert!(matches!(parse(r#"{"epoch": 3, "test_acc": 61.2, "train_loss": null}"#), Line::Epoch { epoch: 3, .. }));
        assert_eq!(parse(r#"{"checkpoint": true, "epoch": 2}"#), Line::Checkpoint { epoch: Some(2) });
        assert_eq!(parse(r#"{"checkpoint": true}"#), Line::Checkpoint { epoch: None });
        let Line::Result { result, diverged } = parse(r#"{"result": {"test_acc": 9.5}, "diverged": true}"#) else {
            panic!("a result line")
        };
        assert!(diverged && result.get("test_acc") == Some(&Json::from(9.5)));
        for bad in ["[1]", "{\"epoch\": 0}", "{\"epoch\": 1, \"x\": \"a\"}", "{\"result\": 3}", "nope"] {
            assert!(matches!(parse(bad), Line::Bad(_)), "{bad}");
        }
    }

    /// What Python's `json.dumps` writes for a diverging run: the bare words become null, a
    /// result line with one is diverged unless it says otherwise, and strings are left alone.
    #[test]
    fn pythons_non_finite_words_are_null_and_mark_a_result_diverged() {
        let Line::Epoch { epoch: 2, metrics } =
            parse(r#"{"epoch": 2, "train_loss": NaN, "test_acc": -Infinity, "x": Infinity}"#)
        else {
            panic!("an epoch line")
        };
        assert!(["train_loss", "test_acc", "x"].iter().all(|k| metrics[*k].is_null()), "{metrics:?}");
        let Line::Result { result, diverged } = parse(r#"{"result": {"test_acc": 10.0, "train_loss": NaN}}"#) else {
            panic!("a result line")
        };
        assert!(diverged && result["train_loss"].is_null() && result["test_acc"] == 10.0);
        let Line::Result { diverged, .. } = parse(r#"{"result": {"loss": NaN}, "diverged": false}"#) else {
            panic!("a result line")
        };
        assert!(!diverged, "the program's own word wins");
        let Line::Result { result, diverged } = parse(r#"{"result": {"note": "NaN \" Infinity", "acc": 1}}"#) else {
            panic!("a result line")
        };
        assert!(!diverged && result["note"] == "NaN \" Infinity", "{result:?}");
        assert!(matches!(parse("{\"epoch\": 1, \"loss\": NaNa}"), Line::Bad(_)), "only the whole words");
    }

    #[test]
    fn partial_lines_wait_for_their_newline() {
        let dir = std::env::temp_dir().join(format!("gridsweep-tail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.jsonl");
        let mut tail = Tail::new(path.clone());
        assert!(tail.read(false).unwrap().is_empty(), "no file yet");
        std::fs::write(&path, "{\"epoch\": 1}\n{\"epo").unwrap();
        assert_eq!(tail.read(false).unwrap().len(), 1);
        std::fs::write(&path, "{\"epoch\": 1}\n{\"epoch\": 2}").unwrap();
        assert!(tail.read(false).unwrap().is_empty());
        assert!(matches!(tail.read(true).unwrap()[..], [Line::Epoch { epoch: 2, .. }]));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
