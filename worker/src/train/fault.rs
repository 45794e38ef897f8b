//! libtorch's errors, typed once: every error libtorch raises inside a job, whether `tch` returns
//! it (`TchError::Torch` from an `f_` call) or panics with it (its infallible calls: forward,
//! `backward`, the optimiser's step, `double_value`), becomes a `TorchFault` whose kind (out of
//! memory, a broken CUDA context, anything else) the agent decides on. `classify` is the only
//! place in the worker that reads an error's text to decide something.

use std::any::Any;

/// What kind of libtorch error a job met, which decides whose fault its failure is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// An allocation failed (a CUDA device's memory, cuBLAS's workspace, or the CPU's): the job
    /// needs more memory than this worker has free; another worker may have enough.
    OutOfMemory,
    /// A CUDA error after which this process's CUDA context stays unusable (an illegal memory
    /// access, a device-side assert, a launch or execution failure): every later CUDA call fails
    /// too, so the process must end.
    ContextBroken,
    /// Any other error (a bad shape, a nondeterministic operation under deterministic
    /// algorithms): the job's own.
    Other,
}

/// A libtorch error met by a job, with its kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TorchFault {
    /// Decided from the message once, by `classify`.
    pub kind: FaultKind,
    /// libtorch's message (without its C++ stack trace), or the panic's text when the panic
    /// did not come from libtorch.
    pub message: String,
}

/// What `Result::unwrap` puts before the error in its panic message; tch's infallible calls
/// unwrap a `Result<_, TchError>`.
const UNWRAP_PREFIX: &str = "called `Result::unwrap()` on an `Err` value: ";

impl TorchFault {
    /// A fault from libtorch's `message`, classified.
    pub fn new(message: &str) -> Self {
        let message = without_stack_trace(message);
        TorchFault { kind: classify(&message), message }
    }

    /// The fault a panic on the training thread stands for: libtorch's error when the panic is
    /// tch unwrapping one (its `Debug` form, `Torch("...")`, is unescaped back to the message),
    /// else the panic's own text, prefixed with "training panicked", which is the job's.
    pub fn from_panic(payload: &(dyn Any + Send)) -> Self {
        let text = panic_text(payload);
        TorchFault::from_panic_text(&text)
            .unwrap_or_else(|| TorchFault { kind: FaultKind::Other, message: format!("training panicked: {text}") })
    }

    /// The libtorch error a panic's text is tch unwrapping, if it is one.
    pub fn from_panic_text(text: &str) -> Option<Self> {
        let message = text.strip_prefix(UNWRAP_PREFIX)?.strip_prefix("Torch(")?;
        unquote(message).map(|m| TorchFault::new(&m))
    }
}

/// A panic payload's text (a `&str` or a `String`, as `panic!` makes them).
pub fn panic_text(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

impl From<tch::TchError> for TorchFault {
    /// libtorch's own errors are classified; tch's checks of its own (a kind, a shape, a file)
    /// are never about memory or the device.
    fn from(e: tch::TchError) -> Self {
        match e {
            tch::TchError::Torch(message) => TorchFault::new(&message),
            other => TorchFault { kind: FaultKind::Other, message: other.to_string() },
        }
    }
}

/// The kind of a libtorch error, from its message.
///
/// libtorch gives nothing but text here: its C++ exception types do not cross tch's C layer,
/// which hands over `what()` as a string (and its infallible calls panic with that string), so
/// the kind is read from the words libtorch and the CUDA libraries use. Out of memory is tested
/// first, since "CUDA error: out of memory" is both a CUDA error and recoverable.
pub fn classify(message: &str) -> FaultKind {
    let lower = message.to_lowercase();
    let out_of_memory = ["out of memory", "cublas_status_alloc_failed", "can't allocate memory"];
    let context_broken =
        ["cuda error", "cudnn_status_execution_failed", "cublas_status_execution_failed", "cuda driver error"];
    if out_of_memory.iter().any(|p| lower.contains(p)) {
        FaultKind::OutOfMemory
    } else if context_broken.iter().any(|p| lower.contains(p)) {
        FaultKind::ContextBroken
    } else {
        FaultKind::Other
    }
}

/// libtorch's message without the C++ stack trace it may append (a line "Exception raised from
/// ...", or straight away one line per frame, "frame #0: ..."), which says nothing to a user and
/// runs to dozens of lines.
fn without_stack_trace(message: &str) -> String {
    let cut = ["\nException raised from", "\nframe #0: "].iter().filter_map(|m| message.find(m)).min();
    message[..cut.unwrap_or(message.len())].trim_end().to_owned()
}

/// The string inside `"...")`, the rest of a `Debug`-formatted `Torch("...")`, unescaped.
fn unquote(debug: &str) -> Option<String> {
    let inner = debug.strip_prefix('"')?.strip_suffix("\")")?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '0' => out.push('\0'),
            'u' => {
                // `\u{XXXX}`
                let code: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                out.push(char::from_u32(u32::from_str_radix(&code, 16).ok()?)?);
            }
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn libtorch_and_cuda_messages_are_classified() {
        let oom = [
            "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.11 GiB",
            "CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported",
            "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
            "[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: can't allocate memory: you tried to \
             allocate 4503599627370496 bytes. Error code 12 (Cannot allocate memory)",
        ];
        for m in oom {
            assert_eq!(classify(m), FaultKind::OutOfMemory, "{m}");
        }
        let broken = [
            "CUDA error: an illegal memory access was encountered",
            "CUDA error: device-side assert triggered",
            "CUDA error: unspecified launch failure",
            "cuDNN error: CUDNN_STATUS_EXECUTION_FAILED",
            "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm( handle, opa, opb, m, n, k)`",
            "CUDA driver error: an illegal memory access was encountered",
        ];
        for m in broken {
            assert_eq!(classify(m), FaultKind::ContextBroken, "{m}");
        }
        let other = [
            "mat1 and mat2 shapes cannot be multiplied (4x10 and 3x5)",
            "put_ does not have a deterministic implementation, but you set 'torch.use_deterministic_algorithms(True)'",
            "data/cifar-10-batches-bin/data_batch_1: wrong size",
        ];
        for m in other {
            assert_eq!(classify(m), FaultKind::Other, "{m}");
        }
    }

    #[test]
    fn a_real_cpu_allocation_failure_is_out_of_memory_returned_or_panicked() {
        // 2^50 floats (4 PiB): no machine has them, so the allocator fails at once.
        let huge = [1i64 << 50];
        let returned = Tensor::f_empty(huge, (Kind::Float, Device::Cpu)).map(|_| ()).unwrap_err();
        let fault = TorchFault::from(returned);
        assert_eq!(fault.kind, FaultKind::OutOfMemory, "{}", fault.message);
        assert!(fault.message.contains("DefaultCPUAllocator"), "{}", fault.message);
        assert!(!fault.message.contains("frame #"), "no C++ stack trace: {}", fault.message);
        let panic = std::panic::catch_unwind(|| Tensor::empty(huge, (Kind::Float, Device::Cpu)).numel()).unwrap_err();
        assert_eq!(TorchFault::from_panic(panic.as_ref()), fault, "the panic carries the same error");
    }

    #[test]
    fn a_panicking_infallible_call_yields_libtorchs_message() {
        let (a, b) =
            (Tensor::zeros([4, 10], (Kind::Float, Device::Cpu)), Tensor::zeros([3, 5], (Kind::Float, Device::Cpu)));
        let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.matmul(&b).numel())).unwrap_err();
        let fault = TorchFault::from_panic(panic.as_ref());
        assert_eq!(fault.kind, FaultKind::Other);
        assert!(
            fault.message.starts_with("mat1 and mat2 shapes cannot be multiplied (4x10 and 3x5)"),
            "{}",
            fault.message
        );
        assert!(!fault.message.contains("unwrap"), "{}", fault.message);
    }

    #[test]
    fn a_panic_not_from_libtorch_says_so() {
        let panicked: std::thread::Result<()> = std::panic::catch_unwind(|| panic!("index out of bounds"));
        let panic = panicked.unwrap_err();
        let fault = TorchFault::from_panic(panic.as_ref());
        assert_eq!(
            fault,
            TorchFault { kind: FaultKind::Other, message: "training panicked: index out of bounds".into() }
        );
    }

    #[test]
    fn the_debug_form_unescapes() {
        assert_eq!(unquote(r#""a \"b\"\nc \\ d \u{1b}")"#).as_deref(), Some("a \"b\"\nc \\ d \u{1b}"));
        assert_eq!(unquote("no quotes"), None);
    }
}
