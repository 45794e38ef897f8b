//! How many seeds a sweep would need to tell its architectures apart: `coordinator plan
//! --seeds-for STATE` reads the runs of a stopped or finished state, takes every Table 1
//! comparison (grid against resnet and vgg at each depth and condition) with its seeds per
//! side for 80% power ([`crate::stats::seeds_needed`]), and prints the sweep file's
//! `axes.seed` line with enough seeds for the comparison that needs the most, and how many jobs
//! that adds (each new seed runs the jobs the sweep runs for its first seed).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use gridsweep_proto::job::JobSpec;

use crate::stats::{MAX_SEEDS, SeedsNeeded};
use crate::tables::{RunRecord, SeedsRow, TablesError, seeds_rows};

/// What `--seeds-for` advises.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedAdvice {
    /// Every comparison with the seeds it needs.
    pub rows: Vec<SeedsRow>,
    /// The sweep's seeds now, sorted.
    pub seeds_now: Vec<u64>,
    /// The seeds per side the most demanding comparison needs (None: no comparison could be
    /// sized).
    pub target: Option<u32>,
    /// The seeds the sweep would have: its own, then the next integers after its largest.
    pub seeds_then: Vec<u64>,
    /// The jobs those new seeds add.
    pub added_jobs: usize,
}

/// The advice for the sweep of `jobs` from the state's `runs`.
pub fn seeds_for(jobs: &[JobSpec], runs: &[RunRecord]) -> Result<SeedAdvice, TablesError> {
    let rows = seeds_rows(runs)?;
    let seeds_now: Vec<u64> = jobs.iter().map(|j| j.train.seed).collect::<BTreeSet<_>>().into_iter().collect();
    let target = rows
        .iter()
        .filter_map(|r| match r.seeds {
            SeedsNeeded::Seeds(n) => Some(n),
            SeedsNeeded::MoreThan(n) => Some(n),
            SeedsNeeded::Undefined => None,
        })
        .max();
    let mut seeds_then = seeds_now.clone();
    let mut next = seeds_now.last().map_or(0, |s| s + 1);
    while target.is_some_and(|t| seeds_then.len() < t as usize) {
        seeds_then.push(next);
        next += 1;
    }
    let per_seed = seeds_now.first().map_or(0, |first| jobs.iter().filter(|j| j.train.seed == *first).count());
    let added_jobs = (seeds_then.len() - seeds_now.len()) * per_seed;
    Ok(SeedAdvice { rows, seeds_now, target, seeds_then, added_jobs })
}

/// The advice as `plan` prints it.
pub fn advice_text(a: &SeedAdvice) -> String {
    let mut out =
        String::from("\nSeeds per side for 80% power at 5% (two-sided Welch test, observed difference and spread):\n");
    if a.rows.is_empty() {
        out.push_str("  no comparison: the state has no depth with grid and another architecture\n");
        return out;
    }
    for r in &a.rows {
        let seeds = match r.seeds {
            SeedsNeeded::Undefined => "cannot be sized (fewer than 2 runs a side, or equal means)".to_owned(),
            s => s.cell(),
        };
        let _ = writeln!(out, "  {}: {seeds} (has {} and {} runs; {})", r.label, r.n_a, r.n_b, r.verdict);
    }
    let list = |s: &[u64]| s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    match a.target {
        None => out.push_str("No comparison could be sized: run at least 2 seeds per architecture first.\n"),
        Some(t) if t >= MAX_SEEDS => {
            let _ = writeln!(out, "A comparison needs more than {MAX_SEEDS} seeds a side: no seed list printed.");
        }
        Some(t) if a.seeds_then.len() == a.seeds_now.len() => {
            let _ = writeln!(
                out,
                "The sweep's {} seeds already reach the {t} the most demanding comparison needs.",
                a.seeds_now.len()
            );
        }
        Some(t) => {
            let _ = writeln!(
                out,
                "For {t} seeds per side (the most demanding comparison), set in the sweep file ({} more jobs):\n\
                 axes:\n  seed: [{}]",
                a.added_jobs,
                list(&a.seeds_then)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::JobState;
    use gridsweep_proto::job::{Arch, DataSpec, TrainConfig};
    use gridsweep_proto::result::{RunStatus, TrainResult};

    /// A finished run of `arch` at depth 8 with `seed` and final accuracy `acc`.
    fn run(arch: Arch, seed: u64, acc: f64) -> RunRecord {
        let spec = JobSpec {
            train: TrainConfig { epochs: 1, ..TrainConfig::paper(arch, 8, seed) },
            analysis: None,
            data: DataSpec::Synthetic { train: 10, test: 5, seed: 0 },
            repeat: 0,
            program: None,
        };
        RunRecord {
            job_id: spec.id(),
            result: Some(TrainResult::simulated(spec.train.clone(), RunStatus::Completed, &[acc])),
            spec,
            state: JobState::Completed,
            attempts: 1,
            worker: None,
            error: None,
            error_kind: None,
            memory_need: None,
        }
    }

    #[test]
    fn the_seed_line_reaches_the_most_demanding_comparison() {
        // grid 92.5, 92.9 against resnet 93.0, 93.2: 7 seeds per side (scipy's noncentral t,
        // as in stats/tests.rs: the smallest n with power >= 0.8 for d = -0.4, va = 0.08, vb = 0.02).
        let runs = vec![
            run(Arch::Grid, 1, 92.5),
            run(Arch::Grid, 2, 92.9),
            run(Arch::Resnet, 1, 93.0),
            run(Arch::Resnet, 2, 93.2),
        ];
        let jobs: Vec<JobSpec> = runs.iter().map(|r| r.spec.clone()).collect();
        let a = seeds_for(&jobs, &runs).unwrap();
        assert_eq!(a.target, Some(7));
        assert_eq!(a.seeds_then, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(a.added_jobs, 10, "5 new seeds x 2 architectures");
        let text = advice_text(&a);
        assert!(
            text.contains("depth 8, grid − resnet: 7 (has 2 and 2 runs; no difference detectable with 2 seeds)"),
            "{text}"
        );
        assert!(text.contains("axes:\n  seed: [1, 2, 3, 4, 5, 6, 7]"), "{text}");

        // One seed a side: nothing to size.
        let one = &runs[..1].iter().chain(&runs[2..3]).cloned().collect::<Vec<_>>();
        let a = seeds_for(&jobs, one).unwrap();
        assert_eq!((a.target, a.added_jobs), (None, 0));
        assert!(advice_text(&a).contains("run at least 2 seeds per architecture first"));
    }
}
