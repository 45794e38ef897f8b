//! A `program:` job: the user's own training program in place of the built-in trainer. The spec
//! holds the command template (an argv, no shell), extra environment variables, the metric the
//! tables report, and the job's resolved settings; `{name}` in an argument or an environment
//! value is replaced by the setting `name` (`{{` and `}}` stand for literal braces). All of it is
//! part of the job's identity (`JobSpec::id` hashes it), so a changed command is a new job.
//!
//! Also here: the names of the environment variables a program is given ([`env`]), and the
//! result a program job delivers ([`ProgramResult`]), both agreed on by the worker that runs the
//! program and the coordinator that stores what it reported.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// The environment variables the worker sets for a program (documented in the README's
/// "Programs" section).
pub mod env {
    /// The job's id.
    pub const JOB_ID: &str = "GRIDSWEEP_JOB_ID";
    /// The attempt's fencing token: a number that grows with every lease of the job.
    pub const ATTEMPT: &str = "GRIDSWEEP_ATTEMPT";
    /// The resolved settings as one JSON object.
    pub const SETTINGS: &str = "GRIDSWEEP_SETTINGS";
    /// The file the program appends its JSON lines to.
    pub const METRICS: &str = "GRIDSWEEP_METRICS";
    /// The folder the program keeps its checkpoint in (restored before a resumed attempt).
    pub const CHECKPOINT_DIR: &str = "GRIDSWEEP_CHECKPOINT_DIR";
    /// The epoch the restored checkpoint holds, 0 when there is none.
    pub const CHECKPOINT_EPOCH: &str = "GRIDSWEEP_CHECKPOINT_EPOCH";
    /// The data set's folder on this worker; unset when the sweep names no data set.
    pub const DATA_DIR: &str = "GRIDSWEEP_DATA_DIR";
    /// `cuda` or `cpu`: the device the worker was started for.
    pub const DEVICE: &str = "GRIDSWEEP_DEVICE";
    /// Every variable the worker owns; a sweep's `program.env` may not set these.
    pub const RESERVED: [&str; 9] = [
        JOB_ID,
        ATTEMPT,
        SETTINGS,
        METRICS,
        CHECKPOINT_DIR,
        CHECKPOINT_EPOCH,
        DATA_DIR,
        DEVICE,
        "CUDA_VISIBLE_DEVICES",
    ];
}

/// Whether a higher or a lower value of the reported metric is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Higher is better (an accuracy).
    Max,
    /// Lower is better (a loss).
    Min,
}

/// The metric of a program's result that the tables report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metric {
    /// Its key in the result line (`test_acc`).
    pub name: String,
    /// Which direction is better, for the reader of the tables.
    pub goal: Goal,
}

/// A program job: what to run and with which settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramSpec {
    /// The argv template: the program and its arguments, each possibly holding `{setting}`.
    pub command: Vec<String>,
    /// Extra environment variables (values may hold `{setting}`); left out of the id when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// The result's metric the tables report.
    pub metric: Metric,
    /// The job's resolved settings (the sweep's `train` block with the job's axis values or
    /// include entry over it), exactly as the program receives them.
    pub settings: Map<String, Json>,
}

/// Why a program spec cannot run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProgramError {
    /// `command` is empty, or its first element is.
    #[error("the command is empty: give the program and its arguments, e.g. [python3, train.py]")]
    EmptyCommand,
    /// A `{name}` that names no setting.
    #[error("{{{name}}} names no setting of the job (settings: {known})")]
    UnknownPlaceholder {
        /// The placeholder's name.
        name: String,
        /// The job's settings, comma-separated.
        known: String,
    },
    /// A `{` without its `}` or a lone `}`.
    #[error("unbalanced brace in {text:?} at byte {at}: write {{{{ or }}}} for a literal brace")]
    Brace {
        /// The argument or value.
        text: String,
        /// The brace's byte offset.
        at: usize,
    },
    /// An environment variable name that is empty, holds `=` or NUL, or is one the worker sets.
    #[error("environment variable {name:?}: {reason}")]
    Env {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// The pieces of a template: literal text and placeholder names.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text kept as it is (with `{{`/`}}` already turned into one brace).
    Text(String),
    /// `{name}`.
    Setting(&'a str),
}

/// Splits `text` into literal text and `{name}` placeholders.
pub fn pieces(text: &str) -> Result<Vec<Piece<'_>>, ProgramError> {
    let mut out = Vec::new();
    let mut literal = String::new();
    let mut rest = text.char_indices().peekable();
    let brace = |at| ProgramError::Brace { text: text.to_owned(), at };
    while let Some((i, c)) = rest.next() {
        match c {
            '{' if rest.peek().is_some_and(|&(_, n)| n == '{') => {
                rest.next();
                literal.push('{');
            }
            '}' if rest.peek().is_some_and(|&(_, n)| n == '}') => {
                rest.next();
                literal.push('}');
            }
            '{' => {
                let close = text[i + 1..].find('}').ok_or_else(|| brace(i))?;
                let name = &text[i + 1..i + 1 + close];
                if name.is_empty() || name.contains('{') {
                    return Err(brace(i));
                }
                if !literal.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut literal)));
                }
                out.push(Piece::Setting(name));
                while rest.peek().is_some_and(|&(j, _)| j <= i + 1 + close) {
                    rest.next();
                }
            }
            '}' => return Err(brace(i)),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        out.push(Piece::Text(literal));
    }
    Ok(out)
}

/// A setting's value as it goes into an argument: a string as it is, anything else as compact
/// JSON (`0.1`, `true`, `null`, `[0.5,0.75]`).
pub fn render(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl ProgramSpec {
    /// `text` with every placeholder replaced by its setting.
    pub fn fill(&self, text: &str) -> Result<String, ProgramError> {
        let mut out = String::new();
        for piece in pieces(text)? {
            match piece {
                Piece::Text(t) => out.push_str(&t),
                Piece::Setting(name) => match self.settings.get(name) {
                    Some(v) => out.push_str(&render(v)),
                    None => {
                        let known = self.settings.keys().cloned().collect::<Vec<_>>().join(", ");
                        return Err(ProgramError::UnknownPlaceholder { name: name.to_owned(), known });
                    }
                },
            }
        }
        Ok(out)
    }

    /// The command with the job's settings filled in.
    pub fn argv(&self) -> Result<Vec<String>, ProgramError> {
        if self.command.first().is_none_or(String::is_empty) {
            return Err(ProgramError::EmptyCommand);
        }
        self.command.iter().map(|a| self.fill(a)).collect()
    }

    /// The extra environment variables with the job's settings filled in, names checked.
    pub fn env_vars(&self) -> Result<Vec<(String, String)>, ProgramError> {
        self.env
            .iter()
            .map(|(name, value)| {
                check_env_name(name)?;
                Ok((name.clone(), self.fill(value)?))
            })
            .collect()
    }

    /// Whether the settings name a model (`arch` and `depth`): else `JobSpec::train`'s are
    /// placeholders, and listings show the job as `program`.
    pub fn names_model(&self) -> bool {
        self.settings.contains_key("arch") && self.settings.contains_key("depth")
    }

    /// Everything `argv` and `env_vars` check, without building them.
    pub fn check(&self) -> Result<(), ProgramError> {
        self.argv()?;
        self.env_vars().map(|_| ())
    }
}

/// An error unless `name` can be set as an environment variable for a program.
pub fn check_env_name(name: &str) -> Result<(), ProgramError> {
    let reason = if name.is_empty() {
        "is empty"
    } else if name.contains(['=', '\0']) {
        "may not hold `=` or NUL"
    } else if env::RESERVED.contains(&name) {
        "is set by the worker for every program"
    } else {
        return Ok(());
    };
    Err(ProgramError::Env { name: name.to_owned(), reason })
}

/// What a program job delivers in `CompleteJob` (the worker builds it from the program's lines).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramResult {
    /// The program's result line's object (numbers, or null where not finite).
    pub result: Map<String, Json>,
    /// The program said its loss went non-finite (`"diverged": true`).
    #[serde(default)]
    pub diverged: bool,
    /// The last epoch the program reported (its epoch lines reach the coordinator in
    /// heartbeats), 0 when it reported none.
    #[serde(default)]
    pub last_epoch: u32,
    /// The attempt's wall seconds, from the child's start to its exit.
    pub wall_seconds: f64,
}

impl ProgramResult {
    /// The reported metric's final value, when the result holds it as a finite number.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.result.get(name).and_then(Json::as_f64).filter(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &[&str]) -> ProgramSpec {
        let settings = serde_json::json!({"lr": 0.1, "seed": 3, "arch": "grid", "nesterov": true});
        ProgramSpec {
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            env: BTreeMap::from([("OMP_NUM_THREADS".to_owned(), "2".to_owned())]),
            metric: Metric { name: "test_acc".to_owned(), goal: Goal::Max },
            settings: settings.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn placeholders_take_the_settings() {
        let s = spec(&["python3", "t.py", "--lr", "{lr}", "--tag={arch}-{seed}", "{{x}}", "{nesterov}"]);
        let argv = s.argv().unwrap();
        assert_eq!(argv[3], "0.1");
        assert_eq!(argv[4], "--tag=grid-3");
        assert_eq!(argv[5], "{x}");
        assert_eq!(argv[6], "true");
    }

    #[test]
    fn bad_templates_are_named() {
        let e = spec(&["p", "{depth}"]).argv().unwrap_err();
        assert_eq!(e.to_string(), "{depth} names no setting of the job (settings: arch, lr, nesterov, seed)");
        assert!(matches!(spec(&["p", "{lr"]).argv(), Err(ProgramError::Brace { at: 0, .. })));
        assert!(matches!(spec(&["p", "a}b"]).argv(), Err(ProgramError::Brace { at: 1, .. })));
        assert!(matches!(spec(&["p", "{}"]).argv(), Err(ProgramError::Brace { .. })));
        assert_eq!(spec(&[]).argv(), Err(ProgramError::EmptyCommand));
        assert!(check_env_name("GRIDSWEEP_METRICS").is_err());
        assert!(check_env_name("A=B").is_err());
        assert!(check_env_name("OMP_NUM_THREADS").is_ok());
    }
}
