#pragma once
// Forward-mode derivative of max pooling: each output takes the tangent of the input element
// the forward pass chose (the first maximum of its window, the same rule as pool.h).
#include "kernels/shapes.h"

namespace lethe::cpu {

void maxpool2d_jvp(const Pool2dShape& s, const float* x, const float* y, const float* dx, float* dy);
// Global max pooling over [n, c, hw]: dy [n, c] takes the tangent of each plane's first maximum.
void global_max_pool_jvp(const ChannelShape& s, const float* x, const float* y, const float* dx, float* dy);

}  // namespace lethe::cpu
