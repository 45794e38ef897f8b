//! libtorch's global determinism switches, which `tch` does not wrap: `at::globalContext()`'s
//! `setDeterministicAlgorithms` and `setDeterministicCuDNN`. They are plain non-virtual C++
//! member functions of `at::Context`, exported by `libtorch_cpu.so`; under the Itanium C++ ABI
//! such a call is a C call with `this` first, which is how they are declared here.

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
}
