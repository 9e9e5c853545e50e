#pragma once
// Elementwise maps and small reductions over contiguous float arrays (CPU twins of
// kernels/cuda/elementwise.cuh). `n` counts elements.
#include <cstdint>

namespace lethe::cpu {

void fill(int64_t n, float value, float* y);
void axpy(int64_t n, float alpha, const float* x, float* y);           // y += alpha x
void scale(int64_t n, float alpha, const float* x, float* y);          // y = alpha x
void add(int64_t n, const float* a, const float* b, float* y);         // y = a + b
void sub(int64_t n, const float* a, const float* b, float* y);         // y = a - b
void mul(int64_t n, const float* a, const float* b, float* y);         // y = a * b
void relu_forward(int64_t n, const float* x, float* y);
void relu_backward(int64_t n, const float* y, const float* dy, float* dx);  // dx = dy * (y > 0)
// out[0] = sum of x, accumulated in double.
void sum(int64_t n, const float* x, float* out);
// y[r, c] += bias[c] for a rows x cols matrix.
void add_row_bias(int64_t rows, int64_t cols, const float* bias, float* y);
// db[c] = sum_r dy[r, c] (overwrites), accumulated in double.
void sum_rows(int64_t rows, int64_t cols, const float* dy, float* db);
// True when every element is finite.
bool all_finite(int64_t n, const float* x);

}  // namespace lethe::cpu
