// The CUDA caching allocator's peak and its cache, which tch does not wrap: what
// `torch.cuda.max_memory_allocated`, `reset_peak_memory_stats` and `empty_cache` do in Python. Built by build.rs only when the torch wheel has the
// CUDA headers and libc10_cuda; the Rust side (`worker::memory`) calls these through C linkage.
// Errors (no CUDA device, a bad index) come back as -1, never as a C++ exception across the FFI.

#include <c10/cuda/CUDACachingAllocator.h>

#include <cstdint>

extern "C" {

// Peak bytes allocated by tensors on `device` since the process started or the last reset.
int64_t gridsweep_cuda_peak_allocated(int device) {
  try {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  } catch (...) {
    return -1;
  }
}

// Starts the peak over from the current use; 0 on success.
int gridsweep_cuda_reset_peak(int device) {
  try {
    c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Returns the allocator's cached, unused blocks on every device to the driver (after an
// out-of-memory failure, so that this process keeps no reserve it does not use); 0 on success.
int gridsweep_cuda_empty_cache() {
  try {
    c10::cuda::CUDACachingAllocator::emptyCache();
    return 0;
  } catch (...) {
    return -1;
  }
}

}  // extern "C"
