#pragma once
// Launch helpers shared by the .cu files: grid sizes read from the device, a grid-stride map
// over 64-bit indices.
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"

namespace lethe::cuda {

// 256 threads: a multiple of the warp size that keeps every SM's thread slots fillable by whole
// blocks on sm_80 (2048 per SM) and sm_90 (2048) alike.
constexpr int kBlockSize = 256;

// Blocks for `items` independent work items, one per thread: enough to fill every SM's thread
// slots once, no more. A grid-stride loop covers the rest, so the grid never depends on n
// beyond that point (and never passes the 2^31-1 limit on gridDim.x).
inline unsigned grid_for(int64_t items, int block_size = kBlockSize) {
  const DeviceLimits& lim = context().limits();
  const int64_t needed = (std::max<int64_t>(items, 1) + block_size - 1) / block_size;
  const int64_t resident = int64_t{lim.sm_count} * std::max(1, lim.max_threads_per_sm / block_size);
  return static_cast<unsigned>(std::min(needed, resident));
}

// This thread's first index and the stride of a grid-stride loop, in 64 bits: n may pass 2^31.
__device__ __forceinline__ int64_t global_thread_index() {
  return int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t global_thread_count() { return int64_t{gridDim.x} * blockDim.x; }

// Runs op(i) for every i in [0, n). `Op` is a small struct of pointers and scalars with a
// __device__ operator() (structs rather than lambdas: no --extended-lambda needed).
template <class Op>
__global__ void map_kernel(int64_t n, Op op) {
  for (int64_t i = global_thread_index(); i < n; i += global_thread_count()) op(i);
}

// `what` names the op in a launch error.
template <class Op>
void launch_map(const char* what, int64_t n, const Op& op) {
  if (n <= 0) return;
  map_kernel<<<grid_for(n), kBlockSize, 0, stream()>>>(n, op);
  detail::check_launch(what, __FILE__, __LINE__);
}

}  // namespace lethe::cuda
