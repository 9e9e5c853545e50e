#pragma once
// Reductions the CUDA backend shares between its own ops (conv's bias gradient), beyond the
// public twins declared in kernels/cuda/kernels.h.
#include <cstdint>

namespace lethe::cuda {

// out[c] = sum over i, j of x[i, c, j] for x of shape [n, channels, plane] (overwrites),
// accumulated in double.
void sum_channels(int64_t n, int64_t channels, int64_t plane, const float* x, float* out);

}  // namespace lethe::cuda
