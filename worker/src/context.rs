//! libtorch's process-wide switches that `tch` does not wrap, on `at::globalContext()`:
//! deterministic algorithms (`setDeterministicAlgorithms`, `setDeterministicCuDNN`) and the
//! precision of fp32 convolutions and matrix products on CUDA (libtorch lets cuDNN convolutions
//! use TF32 by default, matrix products not).
//!
//! libtorch 2.11 keeps TF32 in two generations of flags: the legacy ones (`allow_tf32_cudnn`,
//! the matmul precision) and the new per-backend, per-operator table (`float32Precision`). Its
//! legacy getters check that both agree and throw ("a mix of the legacy and new APIs")
//! otherwise; setting only the new table for conv and RNN, as this file once did, leaves
//! `allowTF32CuDNN()` throwing for whoever asks. So the switches go through the legacy setters,
//! which write both generations, and a test reads every getter after each setting. They are plain non-virtual C++ member functions
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
    #[link_name = "_ZN2at7Context17setAllowTF32CuDNNEb"]
    fn at_set_allow_tf32_cudnn(ctx: *mut c_void, allowed: bool);
    #[link_name = "_ZN2at7Context18setAllowTF32CuBLASEb"]
    fn at_set_allow_tf32_cublas(ctx: *mut c_void, allowed: bool);
    #[link_name = "_ZNK2at7Context16float32PrecisionENS_14Float32BackendENS_9Float32OpE"]
    fn at_float32_precision(ctx: *const c_void, backend: i32, op: i32) -> i32;
    /// `allowTF32CuDNN(std::optional<Float32Op>)`: a `std::optional` of an enum is trivially
    /// copyable and fits a register, and all-zero bytes are `std::nullopt` whatever the enum's
    /// width, so `0` asks the legacy question (no operator), the one that checks consistency.
    #[link_name = "_ZNK2at7Context14allowTF32CuDNNESt8optionalINS_9Float32OpEE"]
    fn at_allow_tf32_cudnn(ctx: *const c_void, op: u64) -> bool;
    #[link_name = "_ZNK2at7Context15allowTF32CuBLASEv"]
    fn at_allow_tf32_cublas(ctx: *const c_void) -> bool;
    #[link_name = "_ZNK2at7Context22float32MatmulPrecisionEv"]
    fn at_float32_matmul_precision(ctx: *const c_void) -> i32;
}

/// `at::Float32Backend::CUDA`.
const BACKEND_CUDA: i32 = 1;
/// `at::Float32Op::CONV`.
const OP_CONV: i32 = 1;
/// `at::Float32Op::RNN`.
const OP_RNN: i32 = 2;
/// `at::Float32Op::MATMUL`.
const OP_MATMUL: i32 = 3;
/// `at::Float32Precision::TF32`.
const PRECISION_TF32: i32 = 2;

/// Sets libtorch's TF32 switches to `precision` (both generations of flags, see above).
pub fn set_precision(precision: crate::recipe::Precision) {
    use crate::recipe::{ConvPrecision, MatmulPrecision};
    set_tf32(precision.conv == ConvPrecision::Tf32);
    set_matmul_tf32(precision.matmul == MatmulPrecision::High);
}

/// Lets cuDNN's fp32 convolutions (and RNNs: libtorch's legacy switch sets both) use TF32 tensor
/// cores (10-bit mantissa: faster on Ampere and later, less exact), or keeps them IEEE fp32.
/// Matrix products have their own switch, `set_matmul_tf32`.
/// No effect on the CPU.
pub fn set_tf32(enabled: bool) {
    // SAFETY: as for `set_deterministic`: the process-wide context and a bool.
    unsafe { at_set_allow_tf32_cudnn(at_global_context(), enabled) }
}

/// Lets cuBLAS's fp32 matrix products use TF32 (libtorch's matmul precision `high`), or keeps
/// them IEEE (`highest`, libtorch's default). No effect on the CPU.
pub fn set_matmul_tf32(enabled: bool) {
    // SAFETY: as above.
    unsafe { at_set_allow_tf32_cublas(at_global_context(), enabled) }
}

/// Every TF32 flag libtorch has, read through every getter, legacy and new: (legacy cuDNN,
/// new CUDA conv, new CUDA RNN, legacy cuBLAS, new CUDA matmul, legacy matmul precision as
/// libtorch numbers it: 0 highest, 1 high, 2 medium). The legacy getters throw when the two
/// generations disagree, which would end this process: the test below asks them all.
pub fn tf32_flags() -> (bool, bool, bool, bool, bool, i32) {
    // SAFETY: const getters of the process-wide context; the enum arguments are valid members,
    // and 0 is `std::nullopt` (see the declaration).
    unsafe {
        let ctx = at_global_context();
        let new = |op| at_float32_precision(ctx, BACKEND_CUDA, op) == PRECISION_TF32;
        (
            at_allow_tf32_cudnn(ctx, 0),
            new(OP_CONV),
            new(OP_RNN),
            at_allow_tf32_cublas(ctx),
            new(OP_MATMUL),
            at_float32_matmul_precision(ctx),
        )
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
/// back to libtorch's defaults. Enabled, an operation without a deterministic implementation is
/// an error (not `warn_only`): libtorch raises it naming the operation ("put_ does not have a
/// deterministic implementation, but you set 'torch.use_deterministic_algorithms(True)'"), so
/// a run that says it is deterministic is.
pub fn set_deterministic(enabled: bool) {
    // SAFETY: globalContext() returns libtorch's process-wide Context, which lives for the whole
    // process; the setters take it as `this` and a bool each.
    unsafe {
        let ctx = at_global_context();
        at_set_deterministic_algorithms(ctx, enabled, false);
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

    /// One test, since the switch is the process's: it round-trips, and enabled it makes an
    /// operation without a deterministic kernel fail, naming it. On the CPU `put_` without
    /// accumulation is such an operation (libtorch's list of them is mostly CUDA kernels).
    #[test]
    fn the_switch_round_trips_and_a_nondeterministic_op_is_an_error() {
        use tch::{Device, Kind, Tensor};
        let put = || {
            let mut t = Tensor::zeros([4], (Kind::Float, Device::Cpu));
            let index = Tensor::from_slice(&[0i64, 0]);
            let values = Tensor::from_slice(&[1f32, 2.0]);
            t.f_put_(&index, &values, false).map(|_| ())
        };
        set_deterministic(true);
        assert!(deterministic());
        let e = put().expect_err("put_ has no deterministic CPU kernel");
        let fault = crate::train::TorchFault::from(e);
        assert_eq!(fault.kind, crate::train::FaultKind::Other, "the job's own failure");
        assert!(fault.message.contains("put_ does not have a deterministic implementation"), "{}", fault.message);
        set_deterministic(false);
        assert!(!deterministic());
        assert!(put().is_ok(), "allowed without the switch");
    }

    #[test]
    fn tf32_switches_keep_every_getter_consistent() {
        // Nothing else in this test binary touches the precision switches.
        assert_eq!(tf32_flags(), (true, true, true, false, false, 0), "libtorch 2.11's defaults");
        use crate::recipe::{ConvPrecision, MatmulPrecision, Precision};
        for (conv, c) in [(false, ConvPrecision::Ieee), (true, ConvPrecision::Tf32)] {
            for (matmul, m) in [(false, MatmulPrecision::Highest), (true, MatmulPrecision::High)] {
                // As a job's `precision` sets them.
                set_precision(Precision { conv: c, matmul: m });
                // Every getter, legacy and new: a mix of the two generations would throw here.
                let flags = tf32_flags();
                assert_eq!(flags, (conv, conv, conv, matmul, matmul, i32::from(matmul)), "conv {conv} matmul {matmul}");
                assert_eq!(tf32(), conv);
            }
        }
        set_precision(Precision::default());
        assert_eq!(tf32_flags(), (true, true, true, false, false, 0), "the job default is libtorch's default");
    }
}
