// Reductions (the CUDA side of sum, sum_rows, add_column_squares, add_weighted_row_squares and
// all_finite in kernels/backend.h), plus the per-channel sum behind conv's bias gradient.
//
// Sums accumulate in double, as the CPU's do, and run in two fixed passes (per-block partials,
// then one ordered pass over them) instead of atomics: the result then depends only on the
// device's SM count, not on scheduling, so a rerun gives the same bits.
#include <cub/block/block_reduce.cuh>

#include <memory>
#include <string>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/reduce.cuh"
#include "kernels/cuda/scratch.h"

namespace lethe::cuda {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks that fill every SM once: the target for how finely a reduction is split.
int64_t resident_blocks() {
  const DeviceLimits& lim = context().limits();
  return int64_t{lim.sm_count} * std::max(1, lim.max_threads_per_sm / kBlockSize);
}

// How to cut each of `reductions` independent reductions of `work` elements into slices, one
// block each (blockIdx.y): enough slices for the whole grid to fill every SM once, no slice
// thinner than `granule` elements (the rows or items one block covers in a step), and no more
// slices than gridDim.y allows.
struct Slicing {
  int64_t slices, per_slice;
};

Slicing slice_reductions(int64_t reductions, int64_t work, int64_t granule) {
  const int64_t most = std::min<int64_t>(std::max<int64_t>(ceil_div(work, granule), 1), context().limits().max_grid_y);
  const int64_t wanted = std::clamp<int64_t>(ceil_div(resident_blocks(), reductions), 1, most);
  const int64_t per_slice = std::max<int64_t>(ceil_div(work, wanted), 1);
  return {std::max<int64_t>(ceil_div(work, per_slice), 1), per_slice};
}

using BlockSum = cub::BlockReduce<double, kBlockSize>;

// ---- sum -----------------------------------------------------------------------------------

__global__ void sum_partials_kernel(int64_t n, const float* x, double* partials) {
  double acc = 0.0;
  for (int64_t i = global_thread_index(); i < n; i += global_thread_count()) acc += x[i];
  __shared__ BlockSum::TempStorage temp;
  const double block_total = BlockSum(temp).Sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = block_total;
}

// One block: the partials are few (one per block of the first pass).
__global__ void sum_finish_kernel(int64_t count, const double* partials, float* out) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  __shared__ BlockSum::TempStorage temp;
  const double total = BlockSum(temp).Sum(acc);
  if (threadIdx.x == 0) out[0] = static_cast<float>(total);
}

// ---- sum_rows: columns of a row-major matrix -------------------------------------------------
// A block is 32 columns wide (one warp reads 32 neighbouring floats of a row: coalesced) and 8
// row lanes deep; blockIdx.y picks a slice of the rows so that a tall, narrow matrix still
// spreads over every SM.
constexpr int kColumnTile = 32;
constexpr int kRowLanes = kBlockSize / kColumnTile;

// kSquares: the sums of the squares instead (each square exact in double).
template <bool kSquares>
__global__ void column_partials_kernel(int64_t rows, int64_t cols, int64_t rows_per_slice, const float* x,
                                       double* partials) {
  const int64_t c = int64_t{blockIdx.x} * kColumnTile + threadIdx.x;
  const int64_t r_begin = int64_t{blockIdx.y} * rows_per_slice;
  const int64_t r_end = min(rows, r_begin + rows_per_slice);
  double acc = 0.0;
  if (c < cols)
    for (int64_t r = r_begin + threadIdx.y; r < r_end; r += kRowLanes) {
      const double v = x[r * cols + c];
      acc += kSquares ? v * v : v;
    }
  __shared__ double lanes[kRowLanes][kColumnTile + 1];  // +1: no bank conflicts on the column read
  lanes[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    double total = 0.0;
    for (int lane = 0; lane < kRowLanes; ++lane) total += lanes[lane][threadIdx.x];
    partials[int64_t{blockIdx.y} * cols + c] = total;
  }
}

// The sum over slices s of partials[s * stride + c * step], in slice order: item c's total.
struct Slices {
  int64_t slices, slice_stride, item_step;
  const double* partials;
  __device__ double total(int64_t c) const {
    double t = 0.0;
    for (int64_t s = 0; s < slices; ++s) t += partials[s * slice_stride + c * item_step];
    return t;
  }
};

// out[c] = that total, rounded to float once.
struct FinishSlices {
  Slices sums;
  float* out;
  __device__ void operator()(int64_t c) const { out[c] = static_cast<float>(sums.total(c)); }
};

// acc[c] += that total, kept in double.
struct AddSlices {
  Slices sums;
  double* acc;
  __device__ void operator()(int64_t c) const { acc[c] += sums.total(c); }
};

// ---- add_weighted_row_squares: blockIdx.x is the row, blockIdx.y a slice of its columns -------
__global__ void row_square_partials_kernel(int64_t cols, int64_t cols_per_slice, const float* x, const float* w,
                                           double* partials) {
  const int64_t r = blockIdx.x;
  const int64_t c_begin = int64_t{blockIdx.y} * cols_per_slice;
  const int64_t c_end = min(cols, c_begin + cols_per_slice);
  double acc = 0.0;
  for (int64_t c = c_begin + threadIdx.x; c < c_end; c += blockDim.x) {
    const double v = x[r * cols + c];
    acc += static_cast<double>(w[c]) * (v * v);
  }
  __shared__ BlockSum::TempStorage temp;
  const double total = BlockSum(temp).Sum(acc);
  if (threadIdx.x == 0) partials[r * gridDim.y + blockIdx.y] = total;
}

// ---- sum_channels: [n, channels, plane] -> [channels] ----------------------------------------
// blockIdx.x is the channel, blockIdx.y a slice of its n * plane elements; neighbouring threads
// read neighbouring elements of a plane.
__global__ void channel_partials_kernel(int64_t channels, int64_t plane, int64_t items_per_slice,
                                        int64_t items, const float* x, double* partials) {
  const int64_t c = blockIdx.x;
  const int64_t t_begin = int64_t{blockIdx.y} * items_per_slice;
  const int64_t t_end = min(items, t_begin + items_per_slice);
  double acc = 0.0;
  for (int64_t t = t_begin + threadIdx.x; t < t_end; t += blockDim.x) {
    const int64_t i = t / plane, j = t - i * plane;
    acc += x[(i * channels + c) * plane + j];
  }
  __shared__ BlockSum::TempStorage temp;
  const double total = BlockSum(temp).Sum(acc);
  if (threadIdx.x == 0) partials[c * gridDim.y + blockIdx.y] = total;
}

// ---- all_finite -------------------------------------------------------------------------------

__global__ void nonfinite_kernel(int64_t n, const float* x, int* found) {
  int bad = 0;
  for (int64_t i = global_thread_index(); i < n; i += global_thread_count()) bad |= !isfinite(x[i]);
  // One write per block at most; every writer stores the same 1, so the race is benign.
  if (__syncthreads_or(bad) && threadIdx.x == 0) *found = 1;
}


}  // namespace

void sum(int64_t n, const float* x, float* out) {
  const unsigned blocks = grid_for(n);
  DeviceScratch partials(blocks * sizeof(double));
  sum_partials_kernel<<<blocks, kBlockSize, 0, stream()>>>(std::max<int64_t>(n, 0), x, partials.as<double>());
  LETHE_CUDA_CHECK_LAUNCH("sum_partials_kernel");
  sum_finish_kernel<<<1, kBlockSize, 0, stream()>>>(blocks, partials.as<double>(), out);
  LETHE_CUDA_CHECK_LAUNCH("sum_finish_kernel");
}

namespace {
// The per-slice column sums (of squares with kSquares) of x [rows, cols] into partials
// [slice][column], which the caller finishes in slice order; `slices` receives their number.
template <bool kSquares>
std::unique_ptr<DeviceScratch> column_partials(const char* what, int64_t rows, int64_t cols, const float* x,
                                               int64_t& slices) {
  rows = std::max<int64_t>(rows, 0);
  const int64_t column_tiles = ceil_div(cols, kColumnTile);
  LETHE_CUDA_REQUIRE(column_tiles < int64_t{1} << 31, std::string(what) + ": " + std::to_string(cols) +
                                                          " columns is too many");
  const Slicing cut = slice_reductions(column_tiles, rows, kRowLanes);
  auto partials = std::make_unique<DeviceScratch>(static_cast<size_t>(cut.slices * cols) * sizeof(double));
  const dim3 grid(static_cast<unsigned>(column_tiles), static_cast<unsigned>(cut.slices));
  const dim3 block(kColumnTile, kRowLanes);
  column_partials_kernel<kSquares><<<grid, block, 0, stream()>>>(rows, cols, cut.per_slice, x, partials->as<double>());
  LETHE_CUDA_CHECK_LAUNCH("column_partials_kernel");
  slices = cut.slices;
  return partials;
}
}  // namespace

void sum_rows(int64_t rows, int64_t cols, const float* dy, float* db) {
  if (cols <= 0) return;
  int64_t slices = 0;
  const auto partials = column_partials<false>("sum_rows", rows, cols, dy, slices);
  // partials are [slice][column]: slice s of column c sits at s * cols + c.
  launch_map("sum_rows finish", cols, FinishSlices{{slices, cols, 1, partials->as<double>()}, db});
}

void add_column_squares(int64_t rows, int64_t cols, const float* x, double* acc) {
  if (cols <= 0 || rows <= 0) return;
  int64_t slices = 0;
  const auto partials = column_partials<true>("add_column_squares", rows, cols, x, slices);
  launch_map("add_column_squares finish", cols, AddSlices{{slices, cols, 1, partials->as<double>()}, acc});
}

void add_weighted_row_squares(int64_t rows, int64_t cols, const float* x, const float* w, double* acc) {
  if (rows <= 0 || cols <= 0) return;
  LETHE_CUDA_REQUIRE(rows < int64_t{1} << 31, "add_weighted_row_squares: " + std::to_string(rows) + " rows is too many");
  const Slicing cut = slice_reductions(rows, cols, kBlockSize);
  DeviceScratch partials(static_cast<size_t>(rows * cut.slices) * sizeof(double));
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(cut.slices));
  row_square_partials_kernel<<<grid, kBlockSize, 0, stream()>>>(cols, cut.per_slice, x, w, partials.as<double>());
  LETHE_CUDA_CHECK_LAUNCH("row_square_partials_kernel");
  // partials are [row][slice]: slice s of row r sits at r * slices + s.
  launch_map("add_weighted_row_squares finish", rows, AddSlices{{cut.slices, 1, cut.slices, partials.as<double>()}, acc});
}

void sum_channels(int64_t n, int64_t channels, int64_t plane, const float* x, float* out) {
  if (channels <= 0) return;
  LETHE_CUDA_REQUIRE(channels < int64_t{1} << 31, "sum_channels: " + std::to_string(channels) + " channels is too many");
  const int64_t items = std::max<int64_t>(n, 0) * std::max<int64_t>(plane, 0);
  const Slicing cut = slice_reductions(channels, items, kBlockSize);
  DeviceScratch partials(static_cast<size_t>(channels * cut.slices) * sizeof(double));
  const dim3 grid(static_cast<unsigned>(channels), static_cast<unsigned>(cut.slices));
  channel_partials_kernel<<<grid, kBlockSize, 0, stream()>>>(channels, std::max<int64_t>(plane, 1), cut.per_slice,
                                                              items, x, partials.as<double>());
  LETHE_CUDA_CHECK_LAUNCH("channel_partials_kernel");
  // partials are [channel][slice]: slice s of channel c sits at c * slices + s.
  launch_map("sum_channels finish", channels, FinishSlices{{cut.slices, 1, cut.slices, partials.as<double>()}, out});
}

bool all_finite(int64_t n, const float* x) {
  if (n <= 0) return true;
  DeviceScratch found(sizeof(int));
  LETHE_CUDA_CHECK(cudaMemsetAsync(found.get(), 0, sizeof(int), stream()));
  nonfinite_kernel<<<grid_for(n), kBlockSize, 0, stream()>>>(n, x, found.as<int>());
  LETHE_CUDA_CHECK_LAUNCH("nonfinite_kernel");
  int host_found = 0;
  device::copy_cuda_to_host(&host_found, found.get(), sizeof(int));
  return host_found == 0;
}

}  // namespace lethe::cuda
