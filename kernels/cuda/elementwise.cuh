#pragma once
// Elementwise helpers the CUDA backend shares between its own ops (conv's bias), beyond the
// public twins declared in kernels/cuda/kernels.h.
#include <cstdint>

namespace lethe::cuda {

// y[i, c, j] += bias[c] for y of shape [n, channels, plane]; add_row_bias is plane == 1.
void add_channel_bias(int64_t n, int64_t channels, int64_t plane, const float* bias, float* y);

}  // namespace lethe::cuda
