//! `worker --slots K`: a small supervisor of K child worker processes, one job each (one process
//! per job keeps libtorch's global generator, and so each job's determinism, to itself). Each
//! child is told through `devices::SLOT_SHARE_ENV` that K slots share its device, and registers
//! 1/K of the device's memory (`devices::registered_memory_bytes` says why). A
//! child that exits because its CUDA context broke is started again, up to `SLOT_RESTARTS`
//! times in a row: a child that ran `SLOT_HEALTHY_AFTER` before its context broke shows the
//! device works, and the count starts over (a job that breaks contexts is bounded by the
//! coordinator, which charges its losses from the third on to its attempts). On SIGINT or SIGTERM every child gets SIGTERM (it gives its lease back and exits);
//! those still running after a grace period are killed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Exit status of a worker whose CUDA context broke (`agent::AgentError::DeviceLost`): a fresh
/// process can go on, so the supervisor restarts it.
pub const EXIT_DEVICE_LOST: u8 = 75;

/// How often in a row the supervisor restarts one slot's worker after a lost CUDA context
/// before giving up (a broken device breaks every process at once).
pub const SLOT_RESTARTS: u32 = 3;

/// A slot's worker that ran this long before losing its CUDA context did work on the device:
/// the restarts in a row start over, so that a few bad jobs over a long sweep do not use up a
/// healthy slot.
pub const SLOT_HEALTHY_AFTER: Duration = Duration::from_secs(600);

/// How long a slot's worker has after SIGTERM (it stops its job and gives the lease back)
/// before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// How often the supervisor looks at its children.
const POLL: Duration = Duration::from_millis(200);

/// Why the slots did not all end well.
#[derive(Debug, thiserror::Error)]
pub enum SlotsError {
    /// A slot's worker process could not be started.
    #[error("starting slot {slot}: {source}")]
    Spawn {
        /// The slot.
        slot: u32,
        /// What the system said.
        source: std::io::Error,
    },
    /// Some slots' workers failed (exited non-zero, or could not be waited for).
    #[error("{failed} of {slots} worker slots failed")]
    Failed {
        /// How many failed.
        failed: u32,
        /// How many slots there were.
        slots: u32,
    },
}

/// SIGTERM or SIGINT.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// The supervisor's plan: what each slot runs.
#[derive(Clone, Debug)]
pub struct Slots {
    /// The worker binary each slot runs.
    pub program: PathBuf,
    /// Slot k's arguments at index k (one entry per slot).
    pub args: Vec<Vec<OsString>>,
    /// How long a child has after SIGTERM before it is killed (`STOP_GRACE` for the binary).
    pub grace: Duration,
    /// How long a child must have run for a lost context not to count as one more restart in a
    /// row (`SLOT_HEALTHY_AFTER` for the binary).
    pub healthy_after: Duration,
}

/// One slot's running worker.
struct Slot {
    /// The slot's number (its index in `Slots::args`).
    index: u32,
    /// Its worker process.
    child: Child,
    /// When that process was started.
    started: Instant,
    /// How often in a row it was started again after a lost CUDA context.
    restarts: u32,
}

/// What a look at a slot found.
enum Seen {
    /// Still running.
    Running(Slot),
    /// Ended; `true` when it failed.
    Ended(bool),
}

impl Slots {
    /// Runs every slot until all have ended, stopping them on SIGINT or SIGTERM; Ok when all
    /// exited 0.
    pub fn run(&self) -> Result<(), SlotsError> {
        self.run_until(&stop_on_signal())
    }

    /// Runs every slot until all have ended, stopping them once `stop` is set; Ok when all
    /// exited 0.
    pub fn run_until(&self, stop: &AtomicBool) -> Result<(), SlotsError> {
        let mut running = Vec::new();
        for index in 0..self.slot_count() {
            running.push(Slot { index, child: self.spawn(index)?, started: Instant::now(), restarts: 0 });
        }
        let (mut terminated, mut kill_at) = (false, None);
        let mut failed = 0;
        while !running.is_empty() {
            if stop.load(Ordering::SeqCst) && !terminated {
                running.iter().for_each(|s| terminate(&s.child));
                (terminated, kill_at) = (true, Some(Instant::now() + self.grace));
            }
            if kill_at.is_some_and(|at| Instant::now() >= at) {
                for s in &mut running {
                    if matches!(s.child.try_wait(), Ok(None)) {
                        tracing::warn!(
                            "slot {}'s worker still running {:?} after SIGTERM; killing it",
                            s.index,
                            self.grace
                        );
                        let _ = s.child.kill();
                    }
                }
                kill_at = None;
            }
            let mut still = Vec::new();
            for slot in running {
                match self.look_at(slot, stop)? {
                    Seen::Running(s) => still.push(s),
                    Seen::Ended(true) => failed += 1,
                    Seen::Ended(false) => {}
                }
            }
            running = still;
            std::thread::sleep(POLL);
        }
        if failed > 0 { Err(SlotsError::Failed { failed, slots: self.slot_count() }) } else { Ok(()) }
    }

    /// Slots in the plan.
    fn slot_count(&self) -> u32 {
        u32::try_from(self.args.len()).unwrap_or(u32::MAX)
    }

    /// Starts slot `index`'s worker.
    fn spawn(&self, index: u32) -> Result<Child, SlotsError> {
        let args = self.args.get(index as usize).map_or(&[][..], Vec::as_slice);
        Command::new(&self.program)
            .args(args)
            .env(crate::devices::SLOT_SHARE_ENV, self.slot_count().to_string())
            .spawn()
            .map_err(|source| SlotsError::Spawn { slot: index, source })
    }

    /// Whether `slot` is still running; a worker that lost its CUDA context is started again
    /// (unless the slots are stopping or it was restarted `SLOT_RESTARTS` times in a row, each
    /// time after less than `healthy_after`).
    fn look_at(&self, mut slot: Slot, stop: &AtomicBool) -> Result<Seen, SlotsError> {
        let k = slot.index;
        let status: ExitStatus = match slot.child.try_wait() {
            Ok(None) => return Ok(Seen::Running(slot)),
            Ok(Some(status)) => status,
            Err(_) => return Ok(Seen::Ended(true)),
        };
        let restarts = if slot.started.elapsed() >= self.healthy_after { 0 } else { slot.restarts };
        if status.code() == Some(i32::from(EXIT_DEVICE_LOST))
            && restarts < SLOT_RESTARTS
            && !stop.load(Ordering::SeqCst)
        {
            tracing::warn!(
                "slot {k} lost its CUDA context; starting it again ({} of {SLOT_RESTARTS} in a row)",
                restarts + 1
            );
            let child = self.spawn(k)?;
            return Ok(Seen::Running(Slot { index: k, child, started: Instant::now(), restarts: restarts + 1 }));
        }
        if status.success() {
            tracing::debug!("slot {k} exited");
            return Ok(Seen::Ended(false));
        }
        tracing::error!("slot {k}'s worker failed ({status})");
        Ok(Seen::Ended(true))
    }
}

/// A flag set once SIGINT or SIGTERM arrives, watched by a thread of its own.
fn stop_on_signal() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        if let Ok(rt) = rt {
            rt.block_on(wait_for_signal());
            flag.store(true, Ordering::SeqCst);
        }
    });
    stop
}

/// Sends SIGTERM to `child`, a child process not yet waited for (so its pid is still ours).
fn terminate(child: &Child) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else { return };
    // SAFETY: kill(2) takes no pointers; `pid` is our own child, not yet reaped, so it names
    // no other process.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan of one slot per shell script.
    fn plan(scripts: &[&str], grace: Duration) -> Slots {
        let args = scripts.iter().map(|s| vec![OsString::from("-c"), OsString::from(s)]).collect();
        Slots { program: PathBuf::from("/bin/sh"), args, grace, healthy_after: SLOT_HEALTHY_AFTER }
    }

    #[test]
    fn slots_that_exit_0_end_well_and_a_failing_one_is_counted() {
        assert!(plan(&["exit 0", "exit 0"], STOP_GRACE).run_until(&AtomicBool::new(false)).is_ok());
        let e = plan(&["exit 0", "exit 3"], STOP_GRACE).run_until(&AtomicBool::new(false)).unwrap_err();
        assert!(matches!(e, SlotsError::Failed { failed: 1, slots: 2 }), "{e}");
        assert_eq!(e.to_string(), "1 of 2 worker slots failed");
    }

    #[test]
    fn each_slot_is_told_how_many_share_the_device() {
        let dir = std::env::temp_dir().join(format!("gridsweep-slots-share-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = |k: u32| format!("echo ${} > {}/slot-{k}", crate::devices::SLOT_SHARE_ENV, dir.display());
        let (a, b, c) = (script(0), script(1), script(2));
        assert!(plan(&[&a, &b, &c], STOP_GRACE).run_until(&AtomicBool::new(false)).is_ok());
        for k in 0..3 {
            assert_eq!(std::fs::read_to_string(dir.join(format!("slot-{k}"))).unwrap(), "3\n");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_slot_that_lost_its_device_is_restarted_a_bounded_number_of_times() {
        let dir = std::env::temp_dir().join(format!("gridsweep-slots-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("starts");
        let _ = std::fs::remove_file(&log);
        let script = format!("echo start >> {}; exit {EXIT_DEVICE_LOST}", log.display());
        let e = plan(&[&script], STOP_GRACE).run_until(&AtomicBool::new(false)).unwrap_err();
        assert!(matches!(e, SlotsError::Failed { failed: 1, slots: 1 }), "{e}");
        let starts = std::fs::read_to_string(&log).unwrap().lines().count();
        assert_eq!(starts, 1 + SLOT_RESTARTS as usize);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A worker that ran long enough before its context broke starts the count over: five
    /// losses, each after 0.4 s of work with 0.1 s counting as healthy, and the sixth process
    /// exits 0, so the slot ends well though it was restarted more than `SLOT_RESTARTS` times.
    #[test]
    fn restarts_after_a_healthy_run_start_the_count_over() {
        let dir = std::env::temp_dir().join(format!("gridsweep-slots-healthy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("starts");
        let _ = std::fs::remove_file(&log);
        let script = format!(
            "echo start >> {0}; if [ $(wc -l < {0}) -le 5 ]; then sleep 0.4; exit {EXIT_DEVICE_LOST}; fi; exit 0",
            log.display()
        );
        let mut slots = plan(&[&script], STOP_GRACE);
        slots.healthy_after = Duration::from_millis(100);
        assert!(slots.run_until(&AtomicBool::new(false)).is_ok());
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 6);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stopping_sends_sigterm_then_kills_what_ignores_it() {
        // Set once the children have had time to set their traps.
        let stop_soon = || {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                flag.store(true, Ordering::SeqCst);
            });
            stop
        };
        // Exits 0 on SIGTERM, as a worker does.
        let started = Instant::now();
        let polite = "trap 'exit 0' TERM; sleep 5 & wait";
        assert!(plan(&[polite], Duration::from_secs(20)).run_until(&stop_soon()).is_ok());
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
        // Ignores SIGTERM: killed after the grace period, and counted as failed.
        let started = Instant::now();
        let deaf = "trap '' TERM; sleep 5 & wait";
        let e = plan(&[deaf], Duration::from_millis(500)).run_until(&stop_soon()).unwrap_err();
        assert!(matches!(e, SlotsError::Failed { failed: 1, slots: 1 }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    }
}
