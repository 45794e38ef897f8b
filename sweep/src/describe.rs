//! The job listing of `coordinator expand`: one line per job with its id, model, seed and the
//! settings that differ from the sweep's base, and a header with the base's differences from the
//! paper's recipe. Its pieces are public so that a caller can add a column (the coordinator adds
//! each job's expected time).

use std::fmt::Write as _;

use gridsweep_proto::job::{AnalysisConfig, DataSpec, JobSpec, ProgramSpec, TrainConfig};
use serde_json::Value as Json;

use super::Sweep;
use super::settings::{JOB_KEYS, Settings, show};

/// One line for `job`: `id arch depth seed` then what differs from `base` (`epochs=2 lr=0.05`),
/// `analysis` when the job is analysed (with its non-default settings in parentheses) and
/// `repeat=N` for a repetition after the first.
pub fn describe(job: &JobSpec, base: &TrainConfig) -> String {
    describe_with(job, base, None)
}

/// `describe`'s line with `column` (e.g. the job's expected time, padded by the caller) between
/// the seed and the settings, so that the id stays the line's first word.
pub fn describe_with(job: &JobSpec, base: &TrainConfig, column: Option<&str>) -> String {
    if let Some(program) = &job.program {
        return describe_program(job, program, column);
    }
    let t = &job.train;
    let mut line = format!("{} {:<6} {:>4} {:>4}", job.id(), t.arch.name(), t.depth, t.seed);
    if let Some(c) = column {
        line.push(' ');
        line.push_str(c);
    }
    let mut parts = differences(t, base);
    if let Some(a) = &job.analysis {
        parts.push(analysis_label(a));
    }
    if job.repeat > 0 {
        parts.push(format!("repeat={}", job.repeat));
    }
    if !parts.is_empty() {
        line.push_str("  ");
        line.push_str(&parts.join(" "));
    }
    line
}

/// A program job's line: `id program` then its settings (`lr=0.1 seed=2`), `repeat=N` after
/// the first repetition, and the command with the settings filled in.
fn describe_program(job: &JobSpec, program: &ProgramSpec, column: Option<&str>) -> String {
    let mut line = format!("{} program", job.id());
    if let Some(c) = column {
        line.push(' ');
        line.push_str(c);
    }
    let mut parts: Vec<String> = program.settings.iter().map(|(k, v)| format!("{k}={}", show(v))).collect();
    if job.repeat > 0 {
        parts.push(format!("repeat={}", job.repeat));
    }
    if !parts.is_empty() {
        line.push_str("  ");
        line.push_str(&parts.join(" "));
    }
    let argv = program.argv().map_or_else(|e| format!("({e})"), |a| a.join(" "));
    line.push_str("  $ ");
    line.push_str(&argv);
    line
}

/// The whole listing: a header (`#` lines: the sweep, its data, retry and lease settings, how
/// the base differs from the paper's recipe), one `describe` line per job, and `N jobs` last.
pub fn expansion_text(sweep: &Sweep) -> String {
    let mut out = header(sweep);
    let _ = writeln!(out, "{}", legend(sweep, None));
    for job in &sweep.jobs {
        let _ = writeln!(out, "{}", describe(job, &sweep.base));
    }
    let _ = writeln!(out, "{} jobs", sweep.jobs.len());
    out
}

/// The listing's first `#` lines: the sweep and its file, its data, retry and lease settings,
/// and how the base differs from the paper's recipe.
pub fn header(sweep: &Sweep) -> String {
    let data = match &sweep.data {
        DataSpec::Cifar10 => "cifar10".to_owned(),
        DataSpec::Synthetic { train, test, seed } => format!("synthetic (train {train}, test {test}, seed {seed})"),
        DataSpec::None => "none (the program finds its own)".to_owned(),
    };
    let paper = TrainConfig::paper(sweep.base.arch, sweep.base.depth, sweep.base.seed);
    let base = differences(&sweep.base, &paper);
    let base = if sweep.jobs.iter().all(|j| j.program.is_some()) {
        "none added (a program gets its job's settings as listed)".to_owned()
    } else if base.is_empty() {
        "the paper's recipe".to_owned()
    } else {
        base.join(" ")
    };
    let mut out = String::new();
    let _ = writeln!(out, "# sweep {} ({})", sweep.name, sweep.source.display());
    let _ = writeln!(out, "# data {data}; max_attempts {}; lease_ttl_s {}", sweep.max_attempts, sweep.lease_ttl_s);
    let _ = writeln!(out, "# base settings: {base}");
    out
}

/// The `#` line naming the listing's columns, with `column` named after the seed when the lines
/// carry one (see `describe_with`).
pub fn legend(sweep: &Sweep, column: Option<&str>) -> String {
    let analysed = sweep.jobs.iter().filter(|j| j.analysis.is_some()).count();
    let programs = sweep.jobs.iter().filter(|j| j.program.is_some()).count();
    if programs > 0 {
        let extra = column.map(|c| format!(" {c}")).unwrap_or_default();
        return format!(
            "# id arch depth seed{extra}, then settings that differ from the base ({analysed} analysed); \
             program jobs ({programs}): id program{extra}, then their settings and command"
        );
    }
    let extra = column.map(|c| format!(" {c}")).unwrap_or_default();
    format!("# id arch depth seed{extra}, then settings that differ from the base ({analysed} analysed)")
}

/// `key=value` for each setting (other than arch, depth and seed) where `config` differs from
/// `base`, in declaration order.
fn differences(config: &TrainConfig, base: &TrainConfig) -> Vec<String> {
    let (Ok(Json::Object(a)), Ok(Json::Object(b))) = (serde_json::to_value(config), serde_json::to_value(base)) else {
        return Vec::new();
    };
    Settings::new()
        .order()
        .iter()
        .filter(|k| !JOB_KEYS.contains(&k.as_str()))
        .filter_map(|k| a.get(k).filter(|v| b.get(k) != Some(*v)).map(|v| format!("{k}={}", show(v))))
        .collect()
}

/// `analysis`, or `analysis(batch_size=50,bn_train_mode=true)` with the non-default settings.
fn analysis_label(a: &AnalysisConfig) -> String {
    let default = AnalysisConfig::default();
    let mut parts = Vec::new();
    if a.batch_size != default.batch_size {
        parts.push(format!("batch_size={}", a.batch_size));
    }
    if a.bn_train_mode != default.bn_train_mode {
        parts.push(format!("bn_train_mode={}", a.bn_train_mode));
    }
    if !a.at_epochs.is_empty() {
        let list: Vec<String> = a.at_epochs.iter().map(u32::to_string).collect();
        parts.push(format!("at_epochs={}", list.join(";")));
    }
    if parts.is_empty() { "analysis".to_owned() } else { format!("analysis({})", parts.join(",")) }
}
