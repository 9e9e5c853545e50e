// The CUDA side of the early-stopped descent's record (kernels/backend.inc, descent_*): a
// descent step checks its loss and gradients, applies the patience rule and snapshots the
// parameters without the host waiting on the device; the record comes down every few steps.
//
// Many arrays go in one launch: their pointers travel by value in a kernel parameter (a fixed
// table of kArraysPerLaunch), one row of blocks (blockIdx.y) per array.
#include <algorithm>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/scratch.h"
#include "kernels/descent_rule.h"

namespace lethe::cuda {
namespace {

// 48 arrays of (pointer, pointer, length) = 1,152 bytes of parameters, inside the 4 KB every
// architecture accepts; ResNet-18's 62 parameters take two launches.
constexpr int kArraysPerLaunch = 48;
// Blocks a row of the grid per array: enough to keep the SMs busy across a model's arrays
// without a large array serialising on one block.
constexpr unsigned kBlocksPerArray = 32;

struct ArrayTable {
  const float* src[kArraysPerLaunch];
  float* dst[kArraysPerLaunch];
  int64_t n[kArraysPerLaunch];
};

// flags[t] = 1 for every array t of the table holding a NaN or an infinity (flags zeroed first),
// and firsts[t] = its first element (0 when it is empty), which the record names.
__global__ void flag_nonfinite_kernel(ArrayTable table, float* flags, float* firsts) {
  const int t = static_cast<int>(blockIdx.y);
  const float* x = table.src[t];
  const int64_t n = table.n[t];
  if (blockIdx.x == 0 && threadIdx.x == 0) firsts[t] = n > 0 ? x[0] : 0.0f;
  int bad = 0;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    bad |= !isfinite(x[i]);
  // At most one write a block; every writer stores the same 1, so the race is benign.
  if (__syncthreads_or(bad) && threadIdx.x == 0) flags[t] = 1.0f;
}

// The lowest flagged array, into the record (unless it holds a failure already or the rule has
// stopped: descent_rule::records_nonfinite); one thread,
// so the choice does not depend on which block finished first.
__global__ void record_nonfinite_kernel(int count, const float* flags, const float* firsts, int step, float* record) {
  using R = DescentRecord;
  if (!descent_rule::records_nonfinite(record)) return;
  for (int t = 0; t < count; ++t) {
    if (flags[t] == 0.0f) continue;
    record[R::kBadStep] = static_cast<float>(step);
    record[R::kBadArray] = static_cast<float>(t);
    record[R::kBadValue] = firsts[t];
    return;
  }
}

__global__ void track_kernel(const float* criterion, int step, int patience, float* record) {
  descent_rule::track(criterion[0], step, patience, record);
}

__global__ void copy_if_kernel(ArrayTable table, const float* record, int slot) {
  if (record[slot] == 0.0f) return;
  const int t = static_cast<int>(blockIdx.y);
  const float* src = table.src[t];
  float* dst = table.dst[t];
  const int64_t n = table.n[t];
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = src[i];
}

// Table t0 .. t0 + rows of the lists.
ArrayTable table_of(int t0, int rows, const float* const* src, float* const* dst, const int64_t* ns) {
  ArrayTable table{};
  for (int r = 0; r < rows; ++r) {
    table.src[r] = src[t0 + r];
    table.dst[r] = dst ? dst[t0 + r] : nullptr;
    table.n[r] = ns[t0 + r];
  }
  return table;
}

}  // namespace

void descent_check_finite(int count, const float* const* xs, const int64_t* ns, int step, float* record) {
  if (count <= 0) return;
  // Per-array flags and first elements, for the one-thread pass that picks the lowest flagged
  // array: written by the flagging kernel, so a step uploads nothing from the host.
  DeviceScratch scratch(2 * static_cast<size_t>(count) * sizeof(float));
  float* const flags = scratch.as<float>();
  float* const firsts = flags + count;
  fill(count, 0.0f, flags);
  for (int t0 = 0; t0 < count; t0 += kArraysPerLaunch) {
    const int rows = std::min(kArraysPerLaunch, count - t0);
    flag_nonfinite_kernel<<<dim3(kBlocksPerArray, static_cast<unsigned>(rows)), kBlockSize, 0, stream()>>>(
        table_of(t0, rows, xs, nullptr, ns), flags + t0, firsts + t0);
    LETHE_CUDA_CHECK_LAUNCH("flag_nonfinite_kernel");
  }
  record_nonfinite_kernel<<<1, 1, 0, stream()>>>(count, flags, firsts, step, record);
  LETHE_CUDA_CHECK_LAUNCH("record_nonfinite_kernel");
}

void descent_track(const float* criterion, int step, int patience, float* record) {
  track_kernel<<<1, 1, 0, stream()>>>(criterion, step, patience, record);
  LETHE_CUDA_CHECK_LAUNCH("track_kernel");
}

void descent_copy_if(int count, const float* const* src, float* const* dst, const int64_t* ns, const float* record,
                     int slot) {
  for (int t0 = 0; t0 < count; t0 += kArraysPerLaunch) {
    const int rows = std::min(kArraysPerLaunch, count - t0);
    copy_if_kernel<<<dim3(kBlocksPerArray, static_cast<unsigned>(rows)), kBlockSize, 0, stream()>>>(
        table_of(t0, rows, src, dst, ns), record, slot);
    LETHE_CUDA_CHECK_LAUNCH("copy_if_kernel");
  }
}

}  // namespace lethe::cuda
