#pragma once
// Max pooling (no padding, floor mode). The backward pass finds each window's maximum again
// from x and y instead of storing indices: the first element equal to the output wins, exactly
// as the forward pass chose it, and no integer buffer has to live between the passes.
#include "kernels/shapes.h"

namespace lethe::cpu {

void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y);
void maxpool2d_backward(const Pool2dShape& s, const float* x, const float* y, const float* dy, float* dx);

}  // namespace lethe::cpu
