#pragma once
// The CUDA backend: its implementations of the contract in kernels/backend.h (namespace
// lethe::cuda), plus what only the GPU has, the context's math mode and the caching allocator.
//
// Every pointer is a device pointer from lethe::device::cuda_alloc (labels are int32 device
// arrays), and every call is enqueued on the one stream of the process-wide context, so calls
// are ordered among themselves and with lethe's copies. A call returns once its work is
// enqueued; the copies to the host (and all_finite, which returns a host bool) wait for it.
// Max pooling keeps the CPU's tie rule; BatchNorm's per-channel sums are in double. The
// per-example kernels form the convolution's gradient tile by tile in registers and fold it into
// the requested quantities there, so it reaches device memory only when `grads` asks for it.
//
// A plain C++ header: no CUDA types, so .cpp files compiled by the host compiler include it.
// The functions exist only in a build with LETHE_WITH_CUDA (the CPU-only build has no
// definitions); call them only when lethe::device::cuda_available() is true, or they throw.
#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"

namespace lethe::cuda {

// ---- context -------------------------------------------------------------------------------
// TF32 tensor-core math for GEMM and convolution: off by default so that results agree with the
// CPU backend to float precision; turning it on trades ~3 decimal digits for speed.
void set_allow_tf32(bool allow);
bool allow_tf32();

// ---- caching allocator (lethe::device::cuda_alloc / cuda_free sit on top of it) ------------
struct MemoryStats {
  size_t in_use_bytes = 0;       // handed out and not yet returned (bucket sizes)
  size_t cached_bytes = 0;       // returned and kept for reuse
  size_t peak_in_use_bytes = 0;
  // The most held from the driver at once (in use + cached): what the process occupied on the
  // device, beyond the CUDA context and the libraries' own allocations.
  size_t peak_reserved_bytes = 0;
  int64_t device_mallocs = 0;    // cudaMalloc calls (cache misses)
  int64_t cache_hits = 0;
};
MemoryStats memory_stats();
// Gives every cached (free) block back to the driver.
void release_cached_memory();

}  // namespace lethe::cuda
