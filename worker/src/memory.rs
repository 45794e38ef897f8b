//! Peak memory of the training device, for `worker bench`: on CUDA the caching allocator's peak
//! of bytes held by tensors (what PyTorch's `torch.cuda.max_memory_allocated` reports), through a
//! small C++ shim (`cpp/cuda_memory.cpp`, built when the wheel has CUDA headers); on the CPU the
//! process's peak resident set (`getrusage`), which also counts libtorch itself and the data.
//! Also the caching allocator's `emptyCache` (`empty_cache`), which the agent calls after a job
//! ran out of memory.

use tch::Device;

#[cfg(gridsweep_cuda_memory)]
unsafe extern "C" {
    fn gridsweep_cuda_peak_allocated(device: i32) -> i64;
    fn gridsweep_cuda_reset_peak(device: i32) -> i32;
    fn gridsweep_cuda_empty_cache() -> i32;
}

/// What was measured and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeakKind {
    /// The CUDA caching allocator's peak of allocated bytes since the last reset.
    CudaAllocated,
    /// The process's peak resident set size since it started.
    CpuMaxRss,
}

/// Starts a new peak on `device` (CUDA); the CPU's peak RSS cannot be reset and counts from the
/// process's start.
pub fn reset_peak(device: Device) {
    #[cfg(gridsweep_cuda_memory)]
    if let Device::Cuda(i) = device {
        // SAFETY: a C function of the shim taking a device index; errors come back as -1.
        let _ = unsafe { gridsweep_cuda_reset_peak(i as i32) };
    }
    let _ = device;
}

/// Hands the CUDA caching allocator's cached, unused blocks back to the driver, as PyTorch's
/// `torch.cuda.empty_cache()` does; whether it did. Nothing to do on the CPU (its allocator
/// caches nothing) or without the shim: false then. Call once the tensors that held the memory
/// are dropped.
pub fn empty_cache(device: Device) -> bool {
    #[cfg(gridsweep_cuda_memory)]
    if device.is_cuda() {
        // SAFETY: a C function of the shim without arguments; errors come back as -1.
        return unsafe { gridsweep_cuda_empty_cache() } == 0;
    }
    let _ = device;
    false
}

/// The peak memory on `device` in bytes and what it counts; None when it cannot be read (CUDA
/// without the shim, or a failed call).
pub fn peak(device: Device) -> Option<(u64, PeakKind)> {
    match device {
        Device::Cuda(_i) => {
            #[cfg(gridsweep_cuda_memory)]
            {
                // SAFETY: as in `reset_peak`.
                let bytes = unsafe { gridsweep_cuda_peak_allocated(_i as i32) };
                u64::try_from(bytes).ok().map(|b| (b, PeakKind::CudaAllocated))
            }
            #[cfg(not(gridsweep_cuda_memory))]
            None
        }
        _ => {
            // SAFETY: getrusage fills the struct it is given.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: RUSAGE_SELF and a valid pointer.
            let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
            // ru_maxrss is in KiB on Linux.
            (rc == 0).then(|| (u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024, PeakKind::CpuMaxRss))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_peak_covers_what_is_resident() {
        // 512 MiB written, so resident: the peak is at least that, in bytes (ru_maxrss is KiB).
        let t = tch::Tensor::ones([128 << 20], (tch::Kind::Float, Device::Cpu));
        let (bytes, kind) = peak(Device::Cpu).expect("getrusage");
        assert_eq!(kind, PeakKind::CpuMaxRss);
        assert!(bytes >= 512 << 20, "{bytes} bytes");
        assert!(bytes < 1 << 40, "{bytes} bytes is not a resident set of this machine");
        drop(t);
    }

    /// The shim is called for real here (when it was built): without a GPU libtorch's allocator
    /// throws, which must come back as "unknown", never as a crash.
    #[test]
    fn without_a_gpu_the_cuda_peak_is_unknown() {
        if tch::Cuda::is_available() {
            return;
        }
        reset_peak(Device::Cuda(0));
        assert_eq!(peak(Device::Cuda(0)), None);
        // Called for real too (when the shim was built): without a GPU the allocator has no
        // device to empty, which must not throw across the FFI or crash.
        let _ = empty_cache(Device::Cuda(0));
    }

    #[test]
    fn the_cpu_has_no_cache_to_empty() {
        assert!(!empty_cache(Device::Cpu));
    }
}
