//! A worker as every surface sees it: [`WorkerState`] (live, quiet or quarantined) by the one
//! liveness rule ([`is_live`]), and [`WorkerView`], a worker of a snapshot with its state, its
//! current problem and the seconds since it was heard from.

use gridsweep_proto::v1 as pb;

use crate::store::WorkerRow;

/// A worker not heard from for this long (or a lease TTL, when longer) is taken as gone: an idle
/// worker long-polls at least every 30 s and a busy one heartbeats every TTL/3.
pub const GONE_AFTER_S: f64 = 45.0;
/// A worker's problem counts as current for this long (or two lease TTLs, when longer).
const PROBLEM_FOR_S: f64 = 60.0;

/// What a worker is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkerState {
    /// Heard from lately and not quarantined: it can take jobs.
    Live,
    /// Not heard from for `GONE_AFTER_S` or a lease TTL: gone, or cut off.
    Quiet,
    /// Quarantined after repeated failed jobs: it gets no more.
    Quarantined,
}

impl WorkerState {
    /// Every state, in the order the metrics and the progress list them.
    pub const ALL: [WorkerState; 3] = [WorkerState::Live, WorkerState::Quiet, WorkerState::Quarantined];

    /// The state of `w` at `now` (Unix seconds) under a lease TTL of `lease_ttl_s`.
    pub fn of(w: &WorkerRow, now: f64, lease_ttl_s: f64) -> WorkerState {
        match (w.quarantined, is_live(w, now, lease_ttl_s)) {
            (true, _) => WorkerState::Quarantined,
            (false, true) => WorkerState::Live,
            (false, false) => WorkerState::Quiet,
        }
    }

    /// `live`, `quiet` or `quarantined`: the dashboard's, the metrics' and the old proto string.
    pub fn name(self) -> &'static str {
        match self {
            WorkerState::Live => "live",
            WorkerState::Quiet => "quiet",
            WorkerState::Quarantined => "quarantined",
        }
    }

    /// The state a status message gives: its enum, or (from a coordinator older than the enum)
    /// its string; None when it says neither.
    pub fn of_status(w: &pb::WorkerStatus) -> Option<WorkerState> {
        match w.worker_state() {
            pb::WorkerState::Live => Some(WorkerState::Live),
            pb::WorkerState::Quiet => Some(WorkerState::Quiet),
            pb::WorkerState::Quarantined => Some(WorkerState::Quarantined),
            pb::WorkerState::Unspecified => WorkerState::ALL.into_iter().find(|s| s.name() == w.state),
        }
    }
}

impl From<WorkerState> for pb::WorkerState {
    fn from(s: WorkerState) -> pb::WorkerState {
        match s {
            WorkerState::Live => pb::WorkerState::Live,
            WorkerState::Quiet => pb::WorkerState::Quiet,
            WorkerState::Quarantined => pb::WorkerState::Quarantined,
        }
    }
}

/// The liveness rule, the only one: `w` can take jobs when it is not quarantined and was heard
/// from within `GONE_AFTER_S`, or within a lease TTL when that is longer.
pub fn is_live(w: &WorkerRow, now: f64, lease_ttl_s: f64) -> bool {
    !w.quarantined && !is_gone(w, now, lease_ttl_s)
}

/// Not heard from for longer than the liveness rule allows (quarantined or not).
pub fn is_gone(w: &WorkerRow, now: f64, lease_ttl_s: f64) -> bool {
    now - w.last_seen > GONE_AFTER_S.max(lease_ttl_s)
}

/// The worker's last failure that was not its job's, when it is recent.
pub fn recent_problem(w: &WorkerRow, now: f64, lease_ttl_s: f64) -> Option<String> {
    let (problem, at) = w.problem.as_ref()?;
    (now - at <= PROBLEM_FOR_S.max(2.0 * lease_ttl_s)).then(|| problem.clone())
}

/// One worker of a snapshot, as every surface shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerView {
    /// The stored row (id, name, device, memory).
    pub row: WorkerRow,
    /// What it is now.
    pub state: WorkerState,
    /// Its recent failure that was not a job's, if any.
    pub problem: Option<String>,
    /// Seconds since it was last heard from.
    pub last_seen_s: f64,
}

impl WorkerView {
    /// The view of `row` at `now` under a lease TTL of `lease_ttl_s`.
    pub fn of(row: WorkerRow, now: f64, lease_ttl_s: f64) -> WorkerView {
        WorkerView {
            state: WorkerState::of(&row, now, lease_ttl_s),
            problem: recent_problem(&row, now, lease_ttl_s),
            last_seen_s: (now - row.last_seen).max(0.0),
            row,
        }
    }

    /// Its line in the status message: the state as the enum and, for older clients, as the
    /// string.
    pub fn to_status(&self) -> pb::WorkerStatus {
        let w = &self.row;
        pb::WorkerStatus {
            worker_id: w.id.clone(),
            name: w.name.clone(),
            device: w.device.clone(),
            last_seen_s: self.last_seen_s,
            quarantined: w.quarantined,
            problem: self.problem.clone().unwrap_or_default(),
            device_memory_bytes: w.memory_bytes.unwrap_or(0),
            state: self.state.name().to_owned(),
            worker_state: pb::WorkerState::from(self.state).into(),
        }
    }
}

/// Workers by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerCounts {
    /// Live.
    pub live: usize,
    /// Quiet.
    pub quiet: usize,
    /// Quarantined.
    pub quarantined: usize,
}

impl WorkerCounts {
    /// Tallies `states`.
    pub fn of(states: impl IntoIterator<Item = WorkerState>) -> WorkerCounts {
        let mut c = WorkerCounts::default();
        for s in states {
            *c.get_mut(s) += 1;
        }
        c
    }

    /// The count of `state`.
    pub fn get(&self, state: WorkerState) -> usize {
        match state {
            WorkerState::Live => self.live,
            WorkerState::Quiet => self.quiet,
            WorkerState::Quarantined => self.quarantined,
        }
    }

    /// The count of `state`, to change.
    fn get_mut(&mut self, state: WorkerState) -> &mut usize {
        match state {
            WorkerState::Live => &mut self.live,
            WorkerState::Quiet => &mut self.quiet,
            WorkerState::Quarantined => &mut self.quarantined,
        }
    }
}
