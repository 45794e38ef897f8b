//! Tests of `program:` sweeps: expansion with free settings, ids, located errors for bad
//! `program` keys and placeholders, include entries that mix kinds, and the listing.

use std::path::Path;

use gridsweep_proto::job::{Arch, DataSpec, Goal, JobSpec};
use serde_json::json;

use crate::{Sweep, describe, expansion_text, header, parse};

/// The issue's example.
const PROGRAM: &str = "\
name: my-sweep
data: {kind: cifar10}
program:
  command: [python3, train.py, --lr, \"{lr}\", --seed, \"{seed}\"]
  env: {OMP_NUM_THREADS: \"2\"}
  metric: {name: test_acc, goal: max}
axes: {lr: [0.1, 0.05], seed: [1, 2, 3]}
";

fn ok(text: &str) -> Sweep {
    parse(text, Path::new("sweeps/p.yaml")).unwrap_or_else(|e| panic!("expected a valid sweep, got: {e}\n{text}"))
}

fn err(text: &str) -> String {
    match parse(text, Path::new("sweeps/p.yaml")) {
        Ok(s) => panic!("expected an error, got {} jobs\n{text}", s.jobs.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_issues_example_expands_to_six_program_jobs() {
    let sweep = ok(PROGRAM);
    assert_eq!(sweep.jobs.len(), 6);
    let first = sweep.jobs[0].program.as_ref().unwrap();
    assert_eq!(first.settings, json!({"lr": 0.1, "seed": 1}).as_object().cloned().unwrap());
    assert_eq!(first.argv().unwrap(), ["python3", "train.py", "--lr", "0.1", "--seed", "1"]);
    assert_eq!(first.env_vars().unwrap(), [("OMP_NUM_THREADS".to_owned(), "2".to_owned())]);
    assert_eq!(first.metric.goal, Goal::Max);
    assert_eq!(sweep.jobs[5].program.as_ref().unwrap().argv().unwrap()[3], "0.05");
    let ids: std::collections::HashSet<String> = sweep.jobs.iter().map(JobSpec::id).collect();
    assert_eq!(ids.len(), 6);
    // The id hashes the command template, the env and the settings.
    let other_command = ok(&PROGRAM.replace("train.py", "train2.py"));
    let other_env = ok(&PROGRAM.replace("\"2\"", "\"1\""));
    for other in [other_command, other_env] {
        assert!(other.jobs.iter().all(|j| !ids.contains(&j.id())));
    }
    assert_eq!(ok(PROGRAM).jobs[3].id(), sweep.jobs[3].id(), "the same file gives the same ids");
}

#[test]
fn program_settings_are_free_and_need_no_model() {
    let text = PROGRAM.replace(
        "axes: {lr: [0.1, 0.05], seed: [1, 2, 3]}",
        "train: {width: 64, tag: a}\naxes: {lr: [0.1], seed: [1]}",
    );
    let sweep = ok(&text);
    let settings = &sweep.jobs[0].program.as_ref().unwrap().settings;
    assert_eq!(settings.get("width"), Some(&json!(64)));
    assert_eq!(settings.len(), 4, "no recipe defaults are added: {settings:?}");
    // With arch and depth, the built-in view of the job (cost, ETA) takes them.
    let named = ok(&PROGRAM.replace("axes: {", "axes: {arch: [resnet], depth: [26], epochs: [3], "));
    let t = &named.jobs[0].train;
    assert_eq!((t.arch, t.depth, t.epochs), (Arch::Resnet, 26, 3));
    // Without axes: one job of the train block.
    let single = ok(&PROGRAM.replace("axes: {lr: [0.1, 0.05], seed: [1, 2, 3]}", "train: {lr: 0.1, seed: 1}"));
    assert_eq!(single.jobs.len(), 1);
    let excluded = ok(&format!("{PROGRAM}exclude: [{{lr: 0.05, seed: 2}}]\n"));
    assert_eq!(excluded.jobs.len(), 5);
}

#[test]
fn bad_program_keys_and_placeholders_are_located() {
    let cases: Vec<(String, &str)> = vec![
        (
            PROGRAM.replace("\"{seed}\"]", "\"{sed}\"]"),
            "sweeps/p.yaml:4:54: program.command[5]: {sed} names no setting of the job (settings: lr, seed) in the job lr=0.1 seed=1",
        ),
        (PROGRAM.replace("command:", "comand:"), "sweeps/p.yaml:4:3: program: unknown field `comand`"),
        (PROGRAM.replace("goal: max", "goal: best"), "sweeps/p.yaml:6:"),
        (
            PROGRAM.replace("OMP_NUM_THREADS", "GRIDSWEEP_METRICS"),
            "sweeps/p.yaml:5:9: program.env.GRIDSWEEP_METRICS: environment variable \"GRIDSWEEP_METRICS\": is set by the worker",
        ),
        (PROGRAM.replace("\"{lr}\"", "\"{lr\""), "sweeps/p.yaml:4:38: program.command[3]: unbalanced brace"),
        (
            PROGRAM.replace("[python3, train.py,", "[[python3], train.py,"),
            "sweeps/p.yaml:4:13: program.command[0]: a string or a number",
        ),
        (
            PROGRAM.replace("  command: [python3, train.py, --lr, \"{lr}\", --seed, \"{seed}\"]\n", "  command: []\n"),
            "program.command: empty",
        ),
        (PROGRAM.replace("  metric: {name: test_acc, goal: max}\n", ""), "missing field `metric`"),
        (
            PROGRAM.replace("\"2\"", "\"{threads}\""),
            "sweeps/p.yaml:5:9: program.env.OMP_NUM_THREADS: {threads} names no setting",
        ),
        (
            format!("{PROGRAM}analysis: {{}}\n"),
            "sweeps/p.yaml:8:1: analysis: the gradient analysis is the built-in trainer's",
        ),
        (
            PROGRAM.replace("seed: [1, 2, 3]", "seed: [[1]]"),
            "sweeps/p.yaml:7:32: axes.seed[0]: an axis value is a scalar",
        ),
        (
            format!("{PROGRAM}include: [{{lr: 0.2, program: {{command: [x], metric: {{name: a}}}}}}]\n"),
            "sweeps/p.yaml:8:21: include[0].program: missing field `goal`",
        ),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .map(|(text, expected)| (err(text), expected))
        .filter(|(e, expected)| {
            !(e.starts_with(*expected) || (e.contains(*expected) && e.starts_with("sweeps/p.yaml:")))
        })
        .map(|(e, expected)| format!("expected {expected:?}, got {e:?}"))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn an_include_entry_may_put_a_program_beside_the_trainer() {
    let text = "\
name: mixed
data: {kind: cifar10}
train: {epochs: 2, train_subset: 500}
axes: {arch: [resnet], depth: [8], seed: [1, 2]}
include:
  - {arch: resnet, depth: 8, seed: 1, program: {command: [python3, /t.py], metric: {name: test_acc, goal: max}}}
";
    let sweep = ok(text);
    assert_eq!(sweep.jobs.len(), 3);
    assert!(sweep.jobs[..2].iter().all(|j| j.program.is_none()));
    let program = sweep.jobs[2].program.as_ref().unwrap();
    let expected = json!({"arch": "resnet", "depth": 8, "seed": 1, "epochs": 2, "train_subset": 500});
    assert_eq!(program.settings, expected.as_object().cloned().unwrap());
    assert_eq!(sweep.jobs[2].train, sweep.jobs[0].train, "equal settings: the same built-in view");
    let listing = expansion_text(&sweep);
    let line = describe(&sweep.jobs[2], &sweep.base);
    assert!(line.starts_with(&format!("{} program  arch=resnet depth=8", sweep.jobs[2].id())), "{line}");
    assert!(line.ends_with("$ python3 /t.py"), "{line}");
    assert!(listing.contains(&line) && listing.ends_with("3 jobs\n"), "{listing}");
}

#[test]
fn a_program_sweep_may_name_no_data_set_and_a_built_in_one_may_not() {
    let without = ok(&PROGRAM.replace("data: {kind: cifar10}\n", ""));
    assert_eq!(without.data, DataSpec::None);
    assert!(without.jobs.iter().all(|j| j.data == DataSpec::None && j.validate().is_ok()));
    // No data is a different job from CIFAR-10's: the ids differ, and those with data stay.
    let with = ok(PROGRAM);
    assert!(with.jobs.iter().zip(&without.jobs).all(|(a, b)| a.id() != b.id()));
    assert!(header(&without).contains("# data none"), "{}", header(&without));
    // A mixed sweep has built-in jobs: they need the data set, as a plain built-in sweep does.
    let builtin = "name: b\ntrain: {epochs: 1}\naxes: {arch: [resnet], depth: [8], seed: [1]}\n";
    let e = err(builtin);
    assert!(e.starts_with("sweeps/p.yaml:1:1: data: missing `data`: the built-in trainer needs a data set"), "{e}");
    let mixed = format!(
        "{builtin}include:\n  - {{arch: resnet, depth: 8, seed: 2, program: {{command: [t], metric: {{name: a, goal: max}}}}}}\n"
    );
    assert!(err(&mixed).contains("data: missing `data`"), "{}", err(&mixed));
}
