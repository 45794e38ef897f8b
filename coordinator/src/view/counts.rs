//! [`Counts`]: a sweep's jobs by [`JobState`], tallied once and read by every surface (the
//! progress line, `status --json`, the dashboard, `/metrics`).

use gridsweep_proto::v1::{self as pb, JobState};

/// Counts of jobs by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting.
    pub pending: usize,
    /// Leased.
    pub running: usize,
    /// Finished every epoch.
    pub completed: usize,
    /// Ended with a non-finite loss.
    pub diverged: usize,
    /// Out of attempts.
    pub failed: usize,
}

impl Counts {
    /// Every state a job can be in, in the order the surfaces list them.
    pub const STATES: [JobState; 5] =
        [JobState::Pending, JobState::Running, JobState::Completed, JobState::Diverged, JobState::Failed];

    /// Tallies `states` (an unspecified state, from a damaged message, counts as failed).
    pub fn of_states(states: impl IntoIterator<Item = JobState>) -> Counts {
        let mut c = Counts::default();
        for s in states {
            c.add(s, 1);
        }
        c
    }

    /// Tallies the jobs of `status`.
    pub fn of(status: &pb::SweepStatus) -> Counts {
        Counts::of_states(status.jobs.iter().map(pb::JobStatus::state))
    }

    /// Adds `n` jobs in `state`.
    pub fn add(&mut self, state: JobState, n: usize) {
        match state {
            JobState::Pending => self.pending += n,
            JobState::Running => self.running += n,
            JobState::Completed => self.completed += n,
            JobState::Diverged => self.diverged += n,
            JobState::Failed | JobState::Unspecified => self.failed += n,
        }
    }

    /// The jobs in `state`.
    pub fn get(&self, state: JobState) -> usize {
        match state {
            JobState::Pending => self.pending,
            JobState::Running => self.running,
            JobState::Completed => self.completed,
            JobState::Diverged => self.diverged,
            JobState::Failed | JobState::Unspecified => self.failed,
        }
    }

    /// Each state with its count, in `STATES`' order.
    pub fn by_state(&self) -> impl Iterator<Item = (JobState, usize)> + '_ {
        Counts::STATES.into_iter().map(|s| (s, self.get(s)))
    }

    /// Jobs that have ended.
    pub fn ended(&self) -> usize {
        self.completed + self.diverged + self.failed
    }

    /// All jobs.
    pub fn total(&self) -> usize {
        self.ended() + self.pending + self.running
    }

    /// Every job has ended.
    pub fn finished(&self) -> bool {
        self.pending + self.running == 0
    }
}
