//! The program as a child process: started in a process group of its own, in the attempt's
//! fresh folder, with the protocol's environment, stdout and stderr appended to the attempt's
//! log file, and killed if the worker itself dies (`PR_SET_PDEATHSIG`); stopped by SIGTERM to the whole group, then SIGKILL to the group after a grace, so
//! that nothing it started is left behind; and how it ended, told apart by whose fault it is.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

/// Exit code of "not the job's fault, try again" (sysexits' EX_TEMPFAIL).
pub(crate) const EXIT_TEMPFAIL: i32 = 75;
/// How long the group has after SIGTERM before SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);
/// Bytes of the log's end that a failure message carries.
const TAIL_BYTES: u64 = 4096;
/// Lines of the log's end that a failure message carries.
const TAIL_LINES: usize = 20;

/// What the child is started with.
pub(crate) struct Launch {
    /// The program and its arguments, settings filled in.
    pub argv: Vec<String>,
    /// Environment variables set on top of the worker's own.
    pub env: Vec<(String, String)>,
    /// The attempt's working folder.
    pub cwd: PathBuf,
    /// The log file that stdout and stderr go to.
    pub log: PathBuf,
}

/// Why the program could not be started: the worker's fault, never the job's.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// The program is not found, or not executable, on this worker.
    #[error("cannot start `{program}` on this worker: {reason}")]
    Spawn {
        /// argv[0].
        program: String,
        /// What the system said, in words.
        reason: String,
    },
    /// The log file could not be opened.
    #[error("{}: {source}", path.display())]
    Log {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

/// Starts `launch` as the leader of a new process group.
pub(crate) fn start(launch: &Launch) -> Result<Child, StartError> {
    let log_err = |source| StartError::Log { path: launch.log.clone(), source };
    let out = OpenOptions::new().create(true).append(true).open(&launch.log).map_err(log_err)?;
    let err = out.try_clone().map_err(log_err)?;
    let program = launch.argv.first().cloned().unwrap_or_default();
    let mut cmd = Command::new(&program);
    cmd.args(&launch.argv[1..])
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&launch.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: the closure runs in the forked child before exec and calls only prctl(2), which
    // is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // The child gets SIGKILL when the worker dies without stopping it (a SIGKILLed
            // worker): its lease expires and another worker runs the job from its checkpoint.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| {
        let reason = match e.kind() {
            std::io::ErrorKind::NotFound => "not found (not on PATH, or no such file)".to_owned(),
            std::io::ErrorKind::PermissionDenied => "not executable (permission denied)".to_owned(),
            _ => e.to_string(),
        };
        StartError::Spawn { program, reason }
    })
}

/// Sends `signal` to the child's whole process group (the child leads it; its pid is the
/// group's id). Nothing happens once the child has been waited for.
pub(crate) fn signal_group(child: &Child, signal: libc::c_int) {
    let Some(pid) = child.id().and_then(|p| libc::pid_t::try_from(p).ok()) else { return };
    // SAFETY: kill(2) takes no pointers; -pid names the group our unreaped child leads, which
    // no other process group can have taken.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// Stops the group: SIGTERM, then SIGKILL after `grace` if the leader is still running, and
/// SIGKILL to the group once more after the leader exits (a grandchild that ignored SIGTERM).
pub(crate) async fn stop(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    signal_group(child, libc::SIGTERM);
    let status = match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            tracing::warn!("program still running {grace:?} after SIGTERM; killing its process group");
            signal_group(child, libc::SIGKILL);
            child.wait().await?
        }
    };
    Ok(status)
}

/// SIGKILL to the group `pgid` (after the leader was waited for: its group may still hold
/// processes it started).
pub(crate) fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else { return };
    // SAFETY: kill(2) takes no pointers. The group id was our child's pid; a later process can
    // reuse the number only once every member of the group is gone, and then ESRCH is harmless
    // unless a new group leader took the number in between, which needs the pid space to wrap.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// The last lines of the log, for failure messages (`(empty log)` when there is nothing).
pub(crate) fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    let text = read().unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if tail.is_empty() { "(empty log)".to_owned() } else { tail }
}

/// How the program ended, in words and by whose fault.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Exit code 0.
    Success,
    /// Exit 75: not the job's fault (no GPU visible, preempted); the job goes back to the queue.
    TempFail,
    /// Killed by SIGKILL that this worker did not send: the kernel's OOM killer, most likely.
    Killed,
    /// Any other exit code or signal: the job's failure, in words (`exit code 1`, `signal 11`).
    Failed(String),
}

/// Classifies `status`.
pub(crate) fn classify(status: ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => Exit::Success,
        (Some(EXIT_TEMPFAIL), _) => Exit::TempFail,
        (Some(code), _) => Exit::Failed(format!("exit code {code}")),
        (None, Some(libc::SIGKILL)) => Exit::Killed,
        (None, Some(sig)) => Exit::Failed(format!("killed by signal {sig}")),
        (None, None) => Exit::Failed("ended without an exit code".to_owned()),
    }
}

/// Whether the log's tail reports running out of memory: libtorch's own messages (the same
/// classification as the built-in trainer's, `train::fault::classify`, since a PyTorch program
/// prints them), or the C library's and Python's words for a failed allocation. A program hands
/// over nothing but its log, so this reads text.
pub(crate) fn says_out_of_memory(tail: &str) -> bool {
    let lower = tail.to_lowercase();
    crate::train::fault::classify(tail) == crate::train::fault::FaultKind::OutOfMemory
        || lower.contains("cannot allocate memory")
        || lower.contains("memoryerror")
}
