//! Pacing of the periodic reads whose cost grows with the sweep: the status behind `run`'s
//! progress and each `WatchStatus` stream (every job and worker), `epochs.csv` (every epoch) and
//! the live tables (every result). Each waits at least its floor, and at least a multiple of what
//! its last round took, so that the coordinator's own bookkeeping stays a bounded share of a core
//! (at most 1/factor) at any sweep size: a sweep of ten jobs refreshes as often as the floor
//! allows, one of 10,000 jobs with 300 epochs each as often as its reads can afford.

use std::time::Duration;

/// How long to wait before the next round of a read that last took `took`: `floor`, or
/// `factor` times `took` when that is longer.
pub fn wait_after(took: Duration, floor: Duration, factor: u32) -> Duration {
    floor.max(took.saturating_mul(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_for_cheap_reads_a_multiple_for_costly_ones() {
        let ms = Duration::from_millis;
        assert_eq!(wait_after(ms(3), ms(100), 4), ms(100));
        assert_eq!(wait_after(ms(80), ms(100), 4), ms(320));
        assert_eq!(wait_after(ms(1500), Duration::from_secs(2), 10), Duration::from_secs(15));
        assert_eq!(wait_after(Duration::MAX, ms(1), 10), Duration::MAX);
    }
}
