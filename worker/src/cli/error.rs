//! How a command of the `worker` binary fails, and the exit status each failure gets: 2 for bad
//! input (a flag, a file, a data set), 1 for a failure while working, and the sweep
//! participant's own statuses for a lost device and a refused token.

use crate::slots::EXIT_DEVICE_LOST;

/// Exit status of a worker whose token the coordinator refused (sysexits' EX_NOPERM): not a
/// transient fault, so nothing restarts it.
pub const EXIT_BAD_TOKEN: u8 = 77;

/// Why a command failed; the message is the underlying typed error's.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad input: a flag, a file or a data set the user can fix (exit 2).
    #[error("{0}")]
    BadInput(String),
    /// A failure while working: libtorch, I/O, writing the output (exit 1).
    #[error("{0}")]
    Failed(String),
    /// The device broke its context: the process must end (exit `EXIT_DEVICE_LOST`, 75).
    #[error("{0}")]
    DeviceLost(String),
    /// The coordinator refused the token (exit `EXIT_BAD_TOKEN`, 77).
    #[error("{0}")]
    BadToken(String),
}

impl CommandError {
    /// The process's exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::BadInput(_) => 2,
            CommandError::Failed(_) => 1,
            CommandError::DeviceLost(_) => EXIT_DEVICE_LOST,
            CommandError::BadToken(_) => EXIT_BAD_TOKEN,
        }
    }
}

/// `e` as bad input (exit 2).
pub fn bad_input(e: impl std::fmt::Display) -> CommandError {
    CommandError::BadInput(e.to_string())
}

/// `e` as a failure while working (exit 1).
pub fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_exit_status() {
        assert_eq!(bad_input("x").exit_code(), 2);
        assert_eq!(failed("x").exit_code(), 1);
        assert_eq!(CommandError::DeviceLost("x".into()).exit_code(), 75);
        assert_eq!(CommandError::BadToken("x".into()).exit_code(), 77);
        assert_eq!(bad_input("--depth: 3").to_string(), "--depth: 3");
    }
}
