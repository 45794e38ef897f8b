//! A test-only switch that makes libtorch fail inside the training step, so that tests without
//! a GPU can see how the worker handles a libtorch error raised where real ones (out of memory,
//! a CUDA error) are: in tch's infallible calls, which panic.
//!
//! `GRIDSWEEP_FAULT_INJECT=step-shape:EPOCH` (EPOCH counted from 1): the first training step of
//! that epoch multiplies the logits by a matrix of an impossible shape, once per process (the
//! first job to reach that epoch), so that a test can also see the next job train in the same
//! process. Not for users: nothing else reads it, and unset (the normal case) it does nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::Tensor;

/// The environment variable, read once per epoch.
pub const FAULT_INJECT_ENV: &str = "GRIDSWEEP_FAULT_INJECT";

/// Set once the fault was raised in this process.
static FIRED: AtomicBool = AtomicBool::new(false);

/// Whether the switch asks for a fault in epoch `epoch` (0-based) and none was raised yet.
pub(super) fn step_fault_due(epoch: u32) -> bool {
    let Ok(value) = std::env::var(FAULT_INJECT_ENV) else { return false };
    let due = value.strip_prefix("step-shape:").and_then(|e| e.parse::<u32>().ok()) == Some(epoch + 1);
    due && !FIRED.load(Ordering::SeqCst)
}

/// Raises the fault: an infallible tch call with an impossible shape, which panics with
/// libtorch's error, as a real failure inside the step does.
pub(super) fn raise_in_step(logits: &Tensor) {
    FIRED.store(true, Ordering::SeqCst);
    let impossible = Tensor::zeros([3, 5], (logits.kind(), logits.device()));
    let _ = logits.matmul(&impossible);
}
