//! Whose fault a failed job is (`Failure`), decided from types only: a libtorch fault by the
//! kind `train::fault` gave it (out of memory and a broken CUDA context are the device's), the
//! other training errors the job's, a preparation error by its variant.

use gridsweep_proto::v1::FailureKind;
use tch::Device;

use super::prepare::PrepareError;
use crate::train::{FaultKind, TorchFault, TrainError};

/// A job that could not run or finish, and whose fault that is.
#[derive(Debug)]
pub(super) struct Failure {
    /// Only `Job` uses one of the job's attempts at the coordinator.
    pub kind: FailureKind,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure { kind, message: message.into() }
    }

    /// A training error on `device`, classified by its type: a libtorch fault by the kind
    /// `fault::classify` gave it, everything else (a bad setting, model or checkpoint) the
    /// job's.
    pub fn of_training(e: TrainError, device: Device) -> Self {
        match e {
            TrainError::Torch(fault) => Failure::of_fault(fault, device),
            other => Failure::new(FailureKind::Job, other.to_string()),
        }
    }

    /// A libtorch fault on `device`: out of memory is the device's (and the training thread
    /// then empties the allocator's cache, `Training::start`); the message names the memory this
    /// worker registered (`devices::registered_memory_bytes`), which the job needs more than, so
    /// the coordinator sends it next to a worker that registered more. A broken CUDA context is
    /// the device's too, and ends this process (`JobEnd::DeviceLost`). Anything else is the
    /// job's, with libtorch's message.
    pub fn of_fault(fault: TorchFault, device: Device) -> Self {
        match fault.kind {
            FaultKind::OutOfMemory => {
                let memory = crate::devices::registered_memory_bytes(device).map_or_else(
                    || "unknown memory".to_owned(),
                    |b| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
                );
                let on = match device {
                    Device::Cuda(i) => format!("cuda:{i}"),
                    _ => "cpu".to_owned(),
                };
                let message = format!("out of memory on {on} ({memory}); the job needs more: {}", fault.message);
                Failure::new(FailureKind::OutOfMemory, message)
            }
            FaultKind::ContextBroken => Failure::new(FailureKind::DeviceLost, format!("libtorch: {}", fault.message)),
            FaultKind::Other => Failure::new(FailureKind::Job, format!("libtorch: {}", fault.message)),
        }
    }
}

impl From<PrepareError> for Failure {
    /// A bad spec is the job's fault; a failed transfer the link's; the rest this worker's.
    fn from(e: PrepareError) -> Self {
        let kind = match e {
            PrepareError::SpecJson(_) | PrepareError::SpecInvalid(_) => FailureKind::Job,
            PrepareError::Transfer(_) => FailureKind::Transfer,
            PrepareError::Synthetic(_) | PrepareError::Io { .. } | PrepareError::Blocking(_) => FailureKind::Worker,
        };
        Failure::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `TrainError` of libtorch's `message`, as training returns it.
    fn torch(message: &str) -> TrainError {
        tch::TchError::Torch(message.to_owned()).into()
    }

    #[test]
    fn training_errors_are_classified_by_their_type() {
        let oom = Failure::of_training(torch("CUDA out of memory. Tried to allocate 2.00 GiB"), Device::Cpu);
        assert_eq!(oom.kind, FailureKind::OutOfMemory);
        assert!(oom.message.starts_with("out of memory on cpu ("), "{}", oom.message);
        assert!(oom.message.ends_with("the job needs more: CUDA out of memory. Tried to allocate 2.00 GiB"));
        let lost = Failure::of_training(torch("CUDA error: an illegal memory access was encountered"), Device::Cpu);
        assert_eq!(lost.kind, FailureKind::DeviceLost);
        assert_eq!(lost.message, "libtorch: CUDA error: an illegal memory access was encountered");
        let own = Failure::of_training(torch("mat1 and mat2 shapes cannot be multiplied"), Device::Cpu);
        assert_eq!(
            (own.kind, own.message.as_str()),
            (FailureKind::Job, "libtorch: mat1 and mat2 shapes cannot be multiplied")
        );
        // Not libtorch's: the job's, whatever its text says.
        let field = "out of memory".to_owned();
        let config =
            TrainError::Config(gridsweep_proto::job::ConfigError::Field { field, value: "0".into(), reason: "x" });
        assert_eq!(Failure::of_training(config, Device::Cpu).kind, FailureKind::Job);
    }
}
