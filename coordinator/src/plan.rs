//! How long a sweep takes on N identical workers, before it runs: a simulation of the real
//! scheduler and of FIFO, beside a lower bound that no order can beat. Pure arithmetic on the
//! jobs' expected durations (see `gridsweep_proto::estimate`); `coordinator plan` prints it.
//!
//! The simulation follows `Store::grant`: every worker is free at time 0, and whenever a worker
//! is free it takes the next pending job in the queue's order: `cost DESC, seq`
//! (longest-expected-first by `JobSpec::cost`, ties in sweep order), or `seq` with `--fifo`. The
//! order always comes from the cost model, as in the store, even when the durations come from a
//! calibration.
//!
//! [`seeds`]: how many seeds the sweep needs to tell its architectures apart (`plan
//! --seeds-for`).

pub mod seeds;

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use serde::Serialize;

/// The order pending jobs are handed out in (`coordinator run` and `run --fifo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// The scheduler's default: the largest `JobSpec::cost` first, ties in sweep order.
    LongestFirst,
    /// Sweep order (`--fifo`).
    Fifo,
}

/// One job's place in a simulated run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assignment {
    /// The job's index in the sweep (its `seq`).
    pub job: usize,
    /// The worker that ran it, 0-based.
    pub worker: usize,
    /// When it started, in the durations' unit from the sweep's start.
    pub start: f64,
    /// When it ended.
    pub end: f64,
}

/// A simulated run of the whole sweep under one order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Schedule {
    /// The order jobs were taken in.
    pub order: Order,
    /// When the last job ends.
    pub makespan: f64,
    /// Every job, in the order it was handed out.
    pub assignments: Vec<Assignment>,
}

/// The lower bound on any schedule's makespan and the terms it is the largest of.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Bound {
    /// The bound: the largest term.
    pub value: f64,
    /// The total work spread perfectly: total / N.
    pub total_over_workers: f64,
    /// The longest job: it runs on one worker.
    pub longest: f64,
    /// With more than N jobs, two of the N+1 longest share a worker: the N-th plus the
    /// (N+1)-th longest is a floor. None with N jobs or fewer.
    pub pair: Option<f64>,
}

/// The plan of a sweep on N workers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// Identical workers, at least 1.
    pub workers: usize,
    /// Jobs in the sweep.
    pub jobs: usize,
    /// Their expected durations added up.
    pub total: f64,
    /// The lower bound.
    pub bound: Bound,
    /// The real scheduler (longest-expected-first).
    pub scheduler: Schedule,
    /// File order, for comparison.
    pub fifo: Schedule,
}

/// Why a sweep cannot be planned.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No worker would ever finish anything.
    #[error("--workers must be at least 1")]
    NoWorkers,
    /// The durations and costs do not describe the same jobs.
    #[error("{durations} durations for {costs} job costs")]
    Mismatch {
        /// How many durations were given.
        durations: usize,
        /// How many costs.
        costs: usize,
    },
}

/// Plans jobs with scheduling costs `costs` (`JobSpec::cost`, which orders the queue) and
/// expected durations `durations` (in sweep order) on `workers` workers.
pub fn plan(costs: &[f64], durations: &[f64], workers: usize) -> Result<Plan, PlanError> {
    if workers == 0 {
        return Err(PlanError::NoWorkers);
    }
    if costs.len() != durations.len() {
        return Err(PlanError::Mismatch { durations: durations.len(), costs: costs.len() });
    }
    let run = |order| simulate(durations, &queue(costs, order), workers, order);
    Ok(Plan {
        workers,
        jobs: durations.len(),
        total: durations.iter().sum(),
        bound: lower_bound(durations, workers),
        scheduler: run(Order::LongestFirst),
        fifo: run(Order::Fifo),
    })
}

/// The jobs' indices in the order `Store::grant` hands them out.
pub fn queue(costs: &[f64], order: Order) -> Vec<usize> {
    let mut q: Vec<usize> = (0..costs.len()).collect();
    if order == Order::LongestFirst {
        // A stable sort keeps equal costs in sweep order, as `ORDER BY cost DESC, seq` does.
        q.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]));
    }
    q
}

/// A worker's next free time, ordered by time then by worker index (so ties go to the lowest).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Free(f64, usize);

impl Eq for Free {}

impl Ord for Free {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Free {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Runs `queue` (indices into `durations`) on `workers` workers that each take the next job as
/// soon as they are free.
pub fn simulate(durations: &[f64], queue: &[usize], workers: usize, order: Order) -> Schedule {
    let mut free: BinaryHeap<Reverse<Free>> = (0..workers).map(|w| Reverse(Free(0.0, w))).collect();
    let mut assignments = Vec::with_capacity(queue.len());
    let mut makespan = 0.0f64;
    for &job in queue {
        let Some(Reverse(Free(start, worker))) = free.pop() else { break };
        let end = start + durations[job];
        makespan = makespan.max(end);
        assignments.push(Assignment { job, worker, start, end });
        free.push(Reverse(Free(end, worker)));
    }
    Schedule { order, makespan, assignments }
}

/// The largest of: total / `workers`, the longest job, and (with more jobs than workers) the
/// `workers`-th plus the next longest.
pub fn lower_bound(durations: &[f64], workers: usize) -> Bound {
    let mut sorted = durations.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let total_over_workers = durations.iter().sum::<f64>() / workers.max(1) as f64;
    let longest = sorted.first().copied().unwrap_or(0.0);
    let pair = (sorted.len() > workers && workers > 0).then(|| sorted[workers - 1] + sorted[workers]);
    let value = total_over_workers.max(longest).max(pair.unwrap_or(0.0));
    Bound { value, total_over_workers, longest, pair }
}

impl Plan {
    /// `makespan / bound`, 1.0 for an empty sweep.
    pub fn ratio(&self, schedule: &Schedule) -> f64 {
        if self.bound.value > 0.0 { schedule.makespan / self.bound.value } else { 1.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five jobs in sweep order with durations 2, 3, 7, 5, 4 (total 21) on 2 workers; costs
    /// equal to the durations, so the scheduler takes 7, 5, 4, 3, 2.
    ///
    /// Longest first: w0 takes 7 (0-7), w1 takes 5 (0-5); w1 is free at 5 and takes 4 (5-9); w0
    /// is free at 7 and takes 3 (7-10); w1 is free at 9 and takes 2 (9-11). Makespan 11.
    /// FIFO: w0 2 (0-2), w1 3 (0-3), w0 7 (2-9), w1 5 (3-8), w1 4 (8-12). Makespan 12.
    /// Bound: max(21 / 2 = 10.5, longest 7, 2nd + 3rd longest 5 + 4 = 9) = 10.5.
    const FIVE: [f64; 5] = [2.0, 3.0, 7.0, 5.0, 4.0];

    #[test]
    fn five_jobs_on_two_workers() {
        let p = plan(&FIVE, &FIVE, 2).unwrap();
        assert_eq!((p.jobs, p.total), (5, 21.0));
        assert_eq!(p.bound, Bound { value: 10.5, total_over_workers: 10.5, longest: 7.0, pair: Some(9.0) });
        assert_eq!(p.scheduler.makespan, 11.0);
        let taken: Vec<(usize, usize, f64)> =
            p.scheduler.assignments.iter().map(|a| (a.job, a.worker, a.start)).collect();
        assert_eq!(taken, [(2, 0, 0.0), (3, 1, 0.0), (4, 1, 5.0), (1, 0, 7.0), (0, 1, 9.0)]);
        assert_eq!(p.fifo.makespan, 12.0);
        assert!((p.ratio(&p.scheduler) - 11.0 / 10.5).abs() < 1e-12);
    }

    #[test]
    fn the_order_comes_from_the_costs_not_the_durations() {
        // Falling costs make the queue the sweep order although the durations do not fall: as
        // FIFO above, 2 on w0 (0-2), 3 on w1 (0-3), 7 on w0 (2-9), 5 on w1 (3-8), 4 on w1 (8-12).
        let costs = [5.0, 4.0, 3.0, 2.0, 1.0];
        let p = plan(&costs, &FIVE, 2).unwrap();
        assert_eq!(p.scheduler.makespan, 12.0);
        assert_eq!(queue(&costs, Order::LongestFirst), [0, 1, 2, 3, 4]);
        assert_eq!(queue(&[1.0, 3.0, 3.0, 2.0], Order::LongestFirst), [1, 2, 3, 0], "ties keep sweep order");
    }

    #[test]
    fn the_pair_term_forces_two_rounds() {
        // Three jobs of 10 on 2 workers: two must share a worker, so 20, not 15 or 10.
        let p = plan(&[10.0; 3], &[10.0; 3], 2).unwrap();
        assert_eq!(p.bound.value, 20.0);
        assert_eq!(p.scheduler.makespan, 20.0);
        // No more jobs than workers: no pair term, the longest job bounds it.
        let p = plan(&[1.0, 6.0], &[1.0, 6.0], 4).unwrap();
        assert_eq!((p.bound.pair, p.bound.value, p.scheduler.makespan), (None, 6.0, 6.0));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(plan(&FIVE, &FIVE, 0), Err(PlanError::NoWorkers));
        assert_eq!(plan(&FIVE, &FIVE[..2], 2), Err(PlanError::Mismatch { durations: 2, costs: 5 }));
        let empty = plan(&[], &[], 3).unwrap();
        assert_eq!((empty.scheduler.makespan, empty.ratio(&empty.scheduler)), (0.0, 1.0));
    }
}
