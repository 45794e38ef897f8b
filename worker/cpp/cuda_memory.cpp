// The CUDA caching allocator's peak, which tch does not wrap: what `torch.cuda.max_memory_allocated`
// and `reset_peak_memory_stats` read in Python. Built by build.rs only when the torch wheel has the
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

}  // extern "C"
