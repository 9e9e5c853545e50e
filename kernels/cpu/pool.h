#pragma once
// Max pooling on the CPU (maxpool2d_forward/backward of kernels/backend.h). 2x2 windows with
// stride 2, the models' pooling, take a fast path (AVX-512 where cpuid reports it, otherwise rows
// compiled for AVX2 or the baseline); every other geometry takes the general window loop below,
// which the fast paths match bit for bit, ties and NaNs included (tests compare them).
#include "kernels/backend.h"

namespace lethe::cpu {

void maxpool2d_forward_general(const Pool2dShape& s, const float* x, float* y);
void maxpool2d_backward_general(const Pool2dShape& s, const float* x, const float* y, const float* dy, float* dx);

}  // namespace lethe::cpu
