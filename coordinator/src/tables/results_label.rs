//! The short name of an implementation in `results.csv`/`.md`'s `implementation` column and in
//! the TensorBoard run names: a program job's whole command (`sh -c 'exec "$PY" "$DIR/train.py"'`)
//! is long and says little, its script's file name (`train.py`) says what differs.
//!
//! The rule, on the command as one text: its words (split on whitespace, so an argument that is
//! a shell script for `sh -c` counts word by word; quotes around a word dropped), leaving out
//! flags (`-c`, `--lr=0.1`), placeholders (`{lr}`) and numbers. The label is the file name (what
//! follows the last `/`) of the first word ending in a script extension ([`SCRIPT_EXTENSIONS`]:
//! `python3 examples/pytorch/train.py` -> `train.py`, `/venv/bin/python train.py` -> `train.py`),
//! else of the first word holding a `/` (`./my_trainer` -> `my_trainer`), else the whole
//! command (`python3 -m pkg.train`). Two different commands that would share a label, or a
//! label equal to another implementation's name (`builtin`), keep their whole commands, so a
//! label always names one implementation of the sweep and depends only on the sweep's commands.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// File name endings that mark a word as a script: Python, shell, Julia, R, Ruby, Perl,
/// JavaScript, Lua.
pub const SCRIPT_EXTENSIONS: [&str; 12] =
    [".py", ".sh", ".bash", ".jl", ".r", ".R", ".rb", ".pl", ".js", ".mjs", ".lua", ".ipynb"];

/// The short label of one command, before collisions are resolved (the whole command when no
/// word looks like a script or a path).
pub fn short_label(command: &str) -> String {
    let words: Vec<&str> = command
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '"' || c == '\''))
        .filter(|w| !w.is_empty() && !w.starts_with('-') && !w.contains('{') && w.parse::<f64>().is_err())
        .collect();
    let file_name = |w: &str| w.rsplit('/').next().unwrap_or(w).to_owned();
    let script = words.iter().find(|w| {
        let name = file_name(w);
        SCRIPT_EXTENSIONS.iter().any(|e| name.len() > e.len() && name.ends_with(e))
    });
    let path = || words.iter().find(|w| w.contains('/') && !file_name(w).is_empty());
    match script.or_else(path) {
        Some(w) => file_name(w),
        None => command.to_owned(),
    }
}

/// Each implementation's label, by its whole name: `builtin` stays `builtin`; a command gets
/// its [`short_label`] unless another implementation's label or name is the same text, in
/// which case it keeps its whole command.
pub fn labels<'a>(implementations: impl IntoIterator<Item = &'a str>) -> HashMap<String, String> {
    let names: BTreeSet<&str> = implementations.into_iter().collect();
    let short: BTreeMap<&str, String> = names.iter().map(|&n| (n, short_label(n))).collect();
    let mut uses: HashMap<&str, BTreeSet<&str>> = HashMap::new();
    for (&name, label) in &short {
        uses.entry(label.as_str()).or_default().insert(name);
    }
    short
        .iter()
        .map(|(&name, label)| {
            let shared = uses[label.as_str()].len() > 1;
            let is_another_name = label != name && names.contains(label.as_str());
            let out = if shared || is_another_name { name.to_owned() } else { label.clone() };
            (name.to_owned(), out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_named_by_its_script_or_program_file() {
        let cases = [
            ("python3 examples/pytorch/train.py --arch {arch} --lr 0.1", "train.py"),
            ("sh -c exec \"$GRIDSWEEP_PYTHON\" \"$GRIDSWEEP_EXAMPLES/train.py\"", "train.py"),
            ("/home/me/venv/bin/python /home/me/train.py", "train.py"),
            ("./my_trainer --epochs {epochs}", "my_trainer"),
            ("/opt/tools/trainer --config=conf/a.yaml", "trainer"),
            ("torchrun --nproc-per-node 2 run.sh", "run.sh"),
            ("python3 -m pkg.train", "python3 -m pkg.train"),
            ("python3 .py", "python3 .py"),
        ];
        for (command, label) in cases {
            assert_eq!(short_label(command), label, "{command}");
        }
    }

    #[test]
    fn commands_that_would_share_a_label_keep_their_whole_text() {
        let got = labels(["builtin", "python3 a/train.py", "python3 b/train.py", "./sweep.sh", "./builtin"]);
        assert_eq!(got["builtin"], "builtin");
        assert_eq!(got["python3 a/train.py"], "python3 a/train.py");
        assert_eq!(got["python3 b/train.py"], "python3 b/train.py");
        assert_eq!(got["./sweep.sh"], "sweep.sh");
        assert_eq!(got["./builtin"], "./builtin", "not mistaken for the built-in trainer");
        let alone = labels(["builtin", "python3 a/train.py"]);
        assert_eq!(alone["python3 a/train.py"], "train.py");
    }
}
