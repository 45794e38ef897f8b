//! The canonical form of a job that its id hashes: an explicit, ordered encoding written here
//! field by field, not serde's output edited afterwards.
//!
//! Version 1 (the only one so far) is a JSON object text: each setting as `"name":value`, in a
//! fixed order, strings quoted, integers in decimal, floats in their shortest round-trip form
//! laid out as `zmij` writes them (what `serde_json` wrote when the ids were pinned; the crate is
//! pinned to that version), absent options as `null`. The rule for
//! leaving a setting out is one, applied by [`Fields::unless_default`]: a setting added after the
//! first release is written only when it differs from its declared default, so that adding a new
//! setting with a default (or an optional one, whose default is "absent") moves no existing id.
//! The settings of the first release are written always ([`Fields::always`]), as they were then.
//!
//! Every struct is taken apart without `..`, so a new field does not compile until it is given
//! its place here. A later encoding that must move ids would bump [`CANONICAL_VERSION`] and
//! prefix its text with `v{N}\n`; version 1 has no prefix, being what was hashed from the start.

use super::analysis::AnalysisConfig;
use super::arch::Arch;
use super::config::TrainConfig;
use super::precision::{ConvPrecision, MatmulPrecision, Precision};
use super::program::{Goal, Metric, ProgramSpec};
use super::{DataSpec, JobSpec};
use std::collections::BTreeMap;

/// The version of the canonical form that [`JobSpec::id`] hashes.
pub const CANONICAL_VERSION: u32 = 1;

/// A value with one canonical text.
pub trait Canonical {
    /// Appends the value's canonical text to `out`.
    fn write(&self, out: &mut String);
}

/// The settings of one object being written, between its braces.
pub struct Fields<'a> {
    /// Where the text goes.
    out: &'a mut String,
    /// No setting written yet (no comma before the next).
    empty: bool,
}

impl Fields<'_> {
    /// Writes `name` and `value`: for the settings that every id has hashed since the first
    /// release, at their defaults too.
    pub fn always(&mut self, name: &str, value: &dyn Canonical) -> &mut Self {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        write_str(name, self.out);
        self.out.push(':');
        value.write(self.out);
        self
    }

    /// Writes `name` and `value` unless `value` equals `default`: the rule for every setting
    /// added after the first release (an optional setting's default is `None`, so an absent one
    /// is left out).
    pub fn unless_default<T: Canonical + PartialEq>(&mut self, name: &str, value: &T, default: &T) -> &mut Self {
        if value != default {
            self.always(name, value);
        }
        self
    }
}

/// Writes an object whose settings `fill` writes.
pub fn object(out: &mut String, fill: impl FnOnce(&mut Fields<'_>)) {
    out.push('{');
    fill(&mut Fields { out, empty: true });
    out.push('}');
}

/// `s` as a JSON string (quotes, backslashes and control characters escaped).
fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl Canonical for str {
    fn write(&self, out: &mut String) {
        write_str(self, out);
    }
}

impl Canonical for String {
    fn write(&self, out: &mut String) {
        write_str(self, out);
    }
}

impl Canonical for &str {
    fn write(&self, out: &mut String) {
        write_str(self, out);
    }
}

/// Integers and switches in their decimal (or `true`/`false`) text.
macro_rules! canonical_display {
    ($($t:ty),*) => {$(
        impl Canonical for $t {
            fn write(&self, out: &mut String) {
                out.push_str(&self.to_string());
            }
        }
    )*};
}
canonical_display!(u32, u64, i64, usize, bool);

impl Canonical for f64 {
    /// The shortest text that reads back as the same number (`0.1`, `0.0004`, `300.0`), as
    /// `zmij` lays it out; `null` for a non-finite one (which no valid setting holds).
    fn write(&self, out: &mut String) {
        if self.is_finite() {
            out.push_str(zmij::Buffer::new().format_finite(*self));
        } else {
            out.push_str("null");
        }
    }
}

impl<T: Canonical> Canonical for Option<T> {
    fn write(&self, out: &mut String) {
        match self {
            Some(v) => v.write(out),
            None => out.push_str("null"),
        }
    }
}

impl<T: Canonical> Canonical for Vec<T> {
    fn write(&self, out: &mut String) {
        out.push('[');
        for (i, v) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            v.write(out);
        }
        out.push(']');
    }
}

impl Canonical for Arch {
    fn write(&self, out: &mut String) {
        write_str(self.name(), out);
    }
}

impl Canonical for ConvPrecision {
    fn write(&self, out: &mut String) {
        write_str(self.name(), out);
    }
}

impl Canonical for MatmulPrecision {
    fn write(&self, out: &mut String) {
        write_str(self.name(), out);
    }
}

impl Canonical for Precision {
    fn write(&self, out: &mut String) {
        let Precision { conv, matmul } = self;
        object(out, |f| {
            f.always("conv", conv).always("matmul", matmul);
        });
    }
}

impl Canonical for AnalysisConfig {
    fn write(&self, out: &mut String) {
        let AnalysisConfig { batch_size, bn_train_mode, at_epochs } = self;
        object(out, |f| {
            f.always("batch_size", batch_size).always("bn_train_mode", bn_train_mode).unless_default(
                "at_epochs",
                at_epochs,
                &Vec::new(),
            );
        });
    }
}

impl Canonical for DataSpec {
    fn write(&self, out: &mut String) {
        object(out, |f| match self {
            DataSpec::Cifar10 => {
                f.always("kind", &"cifar10");
            }
            DataSpec::Synthetic { train, test, seed } => {
                f.always("kind", &"synthetic").always("train", train).always("test", test).always("seed", seed);
            }
            // Added after the first release, for program sweeps only: no earlier id has it.
            DataSpec::None => {
                f.always("kind", &"none");
            }
        });
    }
}

impl Canonical for TrainConfig {
    fn write(&self, out: &mut String) {
        let TrainConfig {
            arch,
            depth,
            seed,
            epochs,
            batch_size,
            lr,
            momentum,
            nesterov,
            weight_decay,
            lr_milestones,
            lr_gamma,
            warmup_epochs,
            crop_padding,
            flip,
            train_subset,
            test_subset,
            eval_batch_size,
            deterministic,
            precision,
        } = self;
        object(out, |f| {
            f.always("arch", arch)
                .always("depth", depth)
                .always("seed", seed)
                .always("epochs", epochs)
                .always("batch_size", batch_size)
                .always("lr", lr)
                .always("momentum", momentum)
                .always("nesterov", nesterov)
                .always("weight_decay", weight_decay)
                .always("lr_milestones", lr_milestones)
                .always("lr_gamma", lr_gamma)
                .always("warmup_epochs", warmup_epochs)
                .always("crop_padding", crop_padding)
                .always("flip", flip)
                .always("train_subset", train_subset)
                .always("test_subset", test_subset)
                .always("eval_batch_size", eval_batch_size)
                // Added after the first release.
                .unless_default("deterministic", deterministic, &false)
                .unless_default("precision", precision, &Precision::default());
        });
    }
}

impl Canonical for serde_json::Value {
    /// A program's setting: JSON with object keys in sorted order, integers in decimal and other
    /// numbers as [`f64`] writes them, so one value has one text whatever order the sweep file
    /// gave its keys in.
    fn write(&self, out: &mut String) {
        use serde_json::Value;
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => b.write(out),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => u.write(out),
                (None, Some(i), _) => i.write(out),
                (None, None, Some(x)) => x.write(out),
                (None, None, None) => out.push_str("null"),
            },
            Value::String(s) => write_str(s, out),
            Value::Array(items) => items.write(out),
            Value::Object(map) => {
                let sorted: BTreeMap<&String, &Value> = map.iter().collect();
                object(out, |f| {
                    for (k, v) in sorted {
                        f.always(k, v);
                    }
                });
            }
        }
    }
}

impl Canonical for serde_json::Map<String, serde_json::Value> {
    fn write(&self, out: &mut String) {
        let sorted: BTreeMap<&String, &serde_json::Value> = self.iter().collect();
        object(out, |f| {
            for (k, v) in sorted {
                f.always(k, v);
            }
        });
    }
}

impl Canonical for BTreeMap<String, String> {
    fn write(&self, out: &mut String) {
        object(out, |f| {
            for (k, v) in self {
                f.always(k, v);
            }
        });
    }
}

impl Canonical for Goal {
    fn write(&self, out: &mut String) {
        write_str(
            match self {
                Goal::Max => "max",
                Goal::Min => "min",
            },
            out,
        );
    }
}

impl Canonical for Metric {
    fn write(&self, out: &mut String) {
        let Metric { name, goal } = self;
        object(out, |f| {
            f.always("name", name).always("goal", goal);
        });
    }
}

impl Canonical for ProgramSpec {
    /// The command template, the extra environment (left out when empty), the reported metric
    /// and the resolved settings: everything that makes a program job what it is.
    fn write(&self, out: &mut String) {
        let ProgramSpec { command, env, metric, settings } = self;
        object(out, |f| {
            f.always("command", command)
                .unless_default("env", env, &BTreeMap::new())
                .always("metric", metric)
                .always("settings", settings);
        });
    }
}

impl Canonical for JobSpec {
    fn write(&self, out: &mut String) {
        let JobSpec { train, analysis, data, repeat, program } = self;
        object(out, |f| {
            f.always("train", train).always("analysis", analysis).always("data", data).always("repeat", repeat);
            // Added after the first release.
            f.unless_default("program", program, &None);
        });
    }
}

/// The canonical text of `job` (version [`CANONICAL_VERSION`]).
pub fn canonical_text(job: &JobSpec) -> String {
    let mut out = String::with_capacity(512);
    job.write(&mut out);
    out
}
