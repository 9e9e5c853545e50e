#pragma once
// 2-D convolution (cross-correlation, as every framework computes it) on the CPU: each example
// is unfolded (im2col) into a [c*kh*kw, ho*wo] matrix that stays in cache and multiplied by the
// weight; examples run in parallel, each thread calling a single-threaded GEMM.
#include "kernels/shapes.h"

namespace lethe::cpu {

// One example: x [c, h, w] -> col [c*kh*kw, ho*wo] (zero where the window leaves the image).
void im2col(const Conv2dShape& s, const float* x, float* col);
// The adjoint: accumulates col into dx [c, h, w] (dx is overwritten).
void col2im(const Conv2dShape& s, const float* col, float* dx);

// y [n, co, ho, wo] = conv(x, w) + b (b may be null).
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
// Gradients from dy [n, co, ho, wo]; each output may be null when not wanted and is overwritten.
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db);

}  // namespace lethe::cpu
