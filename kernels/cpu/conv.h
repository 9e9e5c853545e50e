#pragma once
// 2-D convolution (cross-correlation, as every framework computes it) on the CPU. Two paths:
//   - oneDNN (kernels/cpu/conv_dnnl.h), JIT kernels for the CPU's ISA: the default when lethe is
//     built with it;
//   - im2col: each example is unfolded into a [c*kh*kw, ho*wo] matrix that stays in cache and
//     multiplied by the weight; examples run in parallel, each thread calling a single-threaded
//     GEMM. Used without oneDNN or with LETHE_CONV=im2col, and as the reference in tests.
#include "kernels/shapes.h"

namespace lethe::cpu {

// One example: x [c, h, w] -> col [c*kh*kw, ho*wo] (zero where the window leaves the image).
void im2col(const Conv2dShape& s, const float* x, float* col);
// The adjoint: accumulates col into dx [c, h, w] (dx is overwritten).
void col2im(const Conv2dShape& s, const float* col, float* dx);

// Which path conv2d_forward/backward take: "onednn" or "im2col".
const char* conv_path();

// y [n, co, ho, wo] = conv(x, w) + b (b may be null).
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
// Gradients from dy [n, co, ho, wo]; each output may be null when not wanted and is overwritten.
void conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                     float* dw, float* db);

// The im2col path whatever conv_path() says (tests compare the two).
void conv2d_forward_im2col(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_im2col(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                            float* dw, float* db);

}  // namespace lethe::cpu
