//! A test-only switch that makes libtorch fail inside the training step, so that tests without
//! a GPU can see how the worker handles a libtorch error raised where real ones (out of memory,
//! a CUDA error) are: in tch's infallible calls, which panic.
//!
//! `GRIDSWEEP_FAULT_INJECT=step-shape:EPOCH` (EPOCH counted from 1): the first training step of
//! that epoch multiplies the logits by a matrix of an impossible shape, once per process (the
//! first job to reach that epoch), so that a test can also see the next job train in the same
//! process. `step-cuda-error:EPOCH`: that step panics as tch does when libtorch raises a CUDA
//! error that breaks the context (a device-side assert). No CPU can raise a real one, so this
//! one is simulated: the panic tch's unwrap would make, with libtorch's words, which the worker
//! then classifies like any other. Not for users: nothing else reads it, and unset (the normal
//! case) it does nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use tch::Tensor;

/// The environment variable, read once per epoch.
pub const FAULT_INJECT_ENV: &str = "GRIDSWEEP_FAULT_INJECT";

/// Set once the fault was raised in this process.
static FIRED: AtomicBool = AtomicBool::new(false);

/// A fault the switch can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum StepFault {
    /// A real libtorch error: a matrix product of impossible shapes.
    Shape,
    /// A simulated CUDA error that breaks the context.
    CudaError,
}

/// The fault the switch asks for in epoch `epoch` (0-based), if none was raised yet.
pub(super) fn step_fault_due(epoch: u32) -> Option<StepFault> {
    let value = std::env::var(FAULT_INJECT_ENV).ok()?;
    let (name, at) = value.split_once(':')?;
    let fault = match name {
        "step-shape" => StepFault::Shape,
        "step-cuda-error" => StepFault::CudaError,
        _ => return None,
    };
    (at.parse::<u32>().ok() == Some(epoch + 1) && !FIRED.load(Ordering::SeqCst)).then_some(fault)
}

/// Raises `fault` as a failure inside the step does: a panic from an infallible tch call.
pub(super) fn raise_in_step(fault: StepFault, logits: &Tensor) {
    FIRED.store(true, Ordering::SeqCst);
    match fault {
        StepFault::Shape => {
            let impossible = Tensor::zeros([3, 5], (logits.kind(), logits.device()));
            let _ = logits.matmul(&impossible);
        }
        StepFault::CudaError => {
            let error = "CUDA error: device-side assert triggered\nCUDA kernel errors might be asynchronously \
                         reported at some other API call, so the stacktrace below might be incorrect.\n\
                         Exception raised from c10_cuda_check_implementation (simulated by GRIDSWEEP_FAULT_INJECT)";
            // Worded as `Result::unwrap` words the panic of tch's infallible calls.
            panic!("called `Result::unwrap()` on an `Err` value: {:?}", tch::TchError::Torch(error.to_owned()));
        }
    }
}
