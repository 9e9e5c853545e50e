#pragma once
// 2-D convolution on the CPU (conv2d_forward/backward of kernels/backend.h). Two paths:
//   - oneDNN (kernels/cpu/conv_dnnl.h), JIT kernels for the CPU's ISA: the default when lethe is
//     built with it;
//   - im2col: each example is unfolded into a [c*kh*kw, ho*wo] matrix that stays in cache and
//     multiplied by the weight; examples run in parallel, each thread calling a single-threaded
//     GEMM. Used without oneDNN or with LETHE_CONV=im2col, and as the reference in tests.
#include "kernels/backend.h"

namespace lethe::cpu {

// Which path conv2d_forward/backward take: "onednn" or "im2col".
const char* conv_path();

// The im2col path whatever conv_path() says (tests compare the two).
void conv2d_forward_im2col(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_im2col(const Conv2dShape& s, const float* x, const float* w, const float* dy, float* dx,
                            float* dw, float* db);

}  // namespace lethe::cpu
