//! libtorch's process-wide switches that `tch` does not wrap, on `at::globalContext()`:
//! deterministic algorithms (`setDeterministicAlgorithms`, `setDeterministicCuDNN`) and the
//! precision of fp32 convolutions and matrix products on CUDA (`setFloat32Precision`; libtorch
//! lets cuDNN convolutions use TF32 by default). They are plain non-virtual C++ member functions
//! of `at::Context`, exported by `libtorch_cpu.so`; under the Itanium C++ ABI such a call is a C
//! call with `this` first (enum class arguments are passed as their `int`), which is how they are
//! declared here. Signatures and enum values are those of ATen/Context.h in torch 2.11.

use std::ffi::c_void;

unsafe extern "C" {
    #[link_name = "_ZN2at13globalContextEv"]
    fn at_global_context() -> *mut c_void;
    #[link_name = "_ZN2at7Context26setDeterministicAlgorithmsEbb"]
    fn at_set_deterministic_algorithms(ctx: *mut c_void, enabled: bool, warn_only: bool);
    #[link_name = "_ZNK2at7Context23deterministicAlgorithmsEv"]
    fn at_deterministic_algorithms(ctx: *const c_void) -> bool;
    #[link_name = "_ZN2at7Context21setDeterministicCuDNNEb"]
    fn at_set_deterministic_cudnn(ctx: *mut c_void, enabled: bool);
    #[link_name = "_ZN2at7Context19setFloat32PrecisionENS_14Float32BackendENS_9Float32OpENS_16Float32PrecisionE"]
    fn at_set_float32_precision(ctx: *mut c_void, backend: i32, op: i32, precision: i32);
    #[link_name = "_ZNK2at7Context16float32PrecisionENS_14Float32BackendENS_9Float32OpE"]
    fn at_float32_precision(ctx: *const c_void, backend: i32, op: i32) -> i32;
}

/// `at::Float32Backend::CUDA`.
const BACKEND_CUDA: i32 = 1;
/// `at::Float32Op::CONV`.
const OP_CONV: i32 = 1;
/// `at::Float32Op::RNN`.
const OP_RNN: i32 = 2;
/// `at::Float32Precision::IEEE`.
const PRECISION_IEEE: i32 = 1;
/// `at::Float32Precision::TF32`.
const PRECISION_TF32: i32 = 2;

/// Lets cuDNN's fp32 convolutions (and RNNs, set alike so that libtorch's legacy
/// `allowTF32CuDNN()` stays consistent) use TF32 tensor cores (10-bit mantissa: faster on Ampere
/// and later, less exact), or keeps them IEEE fp32. Matrix products keep libtorch's default
/// (IEEE; the nets' only one is the 64x10 classifier). No effect on the CPU.
pub fn set_tf32(enabled: bool) {
    let p = if enabled { PRECISION_TF32 } else { PRECISION_IEEE };
    // SAFETY: as for `set_deterministic`; the enums are `int`-sized enum classes and the values
    // are valid members.
    unsafe {
        let ctx = at_global_context();
        at_set_float32_precision(ctx, BACKEND_CUDA, OP_CONV, p);
        at_set_float32_precision(ctx, BACKEND_CUDA, OP_RNN, p);
    }
}

/// Whether fp32 convolutions on CUDA may use TF32 (libtorch's default until `set_tf32(false)`).
pub fn tf32() -> bool {
    // SAFETY: as above; a const getter.
    unsafe { at_float32_precision(at_global_context(), BACKEND_CUDA, OP_CONV) == PRECISION_TF32 }
}

/// cuBLAS's workspace setting for reproducible results, which cuBLAS reads when CUDA starts.
pub const CUBLAS_WORKSPACE: (&str, &str) = ("CUBLAS_WORKSPACE_CONFIG", ":4096:8");

/// Sets `CUBLAS_WORKSPACE_CONFIG` (unless the user did) so that a job asking for deterministic
/// algorithms gets deterministic cuBLAS too: it must be in the environment before CUDA starts,
/// and a worker cannot know before then whether a job will ask. The cost is a fixed workspace
/// of 8 x 4 MiB per stream for cuBLAS. Call before any other thread starts.
pub fn prepare_cublas_determinism() {
    let (name, value) = CUBLAS_WORKSPACE;
    if std::env::var_os(name).is_none() {
        // SAFETY: called at the start of `main`, before any thread is spawned, so nothing reads
        // the environment concurrently.
        unsafe { std::env::set_var(name, value) };
    }
}

/// Selects deterministic algorithms (and deterministic cuDNN) for the whole process, or goes
/// back to libtorch's defaults. Operations without a deterministic implementation warn instead
/// of failing.
pub fn set_deterministic(enabled: bool) {
    // SAFETY: globalContext() returns libtorch's process-wide Context, which lives for the whole
    // process; the setters take it as `this` and a bool each.
    unsafe {
        let ctx = at_global_context();
        at_set_deterministic_algorithms(ctx, enabled, true);
        at_set_deterministic_cudnn(ctx, enabled);
    }
}

/// Whether deterministic algorithms are selected.
pub fn deterministic() -> bool {
    // SAFETY: as above; a const getter.
    unsafe { at_deterministic_algorithms(at_global_context()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_round_trips() {
        set_deterministic(true);
        assert!(deterministic());
        set_deterministic(false);
        assert!(!deterministic());
    }

    #[test]
    fn tf32_is_libtorchs_default_and_round_trips() {
        // Nothing else in this test binary touches the precision switch.
        assert!(tf32(), "libtorch 2.11 lets cuDNN convolutions use TF32 by default");
        set_tf32(false);
        assert!(!tf32());
        set_tf32(true);
        assert!(tf32());
    }
}
