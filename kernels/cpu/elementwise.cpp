#include "kernels/backend.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lethe::cpu {

// Elementwise loops parallelise only past this size: below it the thread start costs more.
constexpr int64_t kParallelGrain = 1 << 15;

void fill(int64_t n, float value, float* y) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}

void axpy(int64_t n, float alpha, const float* x, float* y) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

void scale(int64_t n, float alpha, const float* x, float* y) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
}

void add(int64_t n, const float* a, const float* b, float* y) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void sub(int64_t n, const float* a, const float* b, float* y) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] - b[i];
}

void add_to_double(int64_t n, const float* x, double* acc) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) acc[i] += static_cast<double>(x[i]);
}

void mul(int64_t n, const float* a, const float* b, float* y) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}

void relu_forward(int64_t n, const float* x, float* y) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(int64_t n, const float* y, const float* dy, float* dx) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void sum(int64_t n, const float* x, float* out) {
  double total = 0.0;
#pragma omp parallel for reduction(+ : total) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) total += x[i];
  out[0] = static_cast<float>(total);
}

void add_row_bias(int64_t rows, int64_t cols, const float* bias, float* y) {
#pragma omp parallel for if (rows * cols > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] += bias[c];
}

void sum_rows(int64_t rows, int64_t cols, const float* dy, float* db) {
  std::vector<double> acc(static_cast<size_t>(cols), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) acc[c] += dy[r * cols + c];
  for (int64_t c = 0; c < cols; ++c) db[c] = static_cast<float>(acc[c]);
}

void scale_columns(int64_t rows, int64_t cols, const float* x, const float* s, float* y) {
#pragma omp parallel for if (rows * cols > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) y[r * cols + c] = x[r * cols + c] * s[c];
}

void add_column_squares(int64_t rows, int64_t cols, const float* x, double* acc) {
  // Each thread its own columns, every row in order: the sums do not depend on the threads.
#pragma omp parallel for if (rows * cols > kParallelGrain)
  for (int64_t c0 = 0; c0 < cols; c0 += 1024) {
    const int64_t c1 = std::min(cols, c0 + 1024);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const double v = x[r * cols + c];
        acc[c] += v * v;
      }
  }
}

void add_weighted_row_squares(int64_t rows, int64_t cols, const float* x, const float* w, double* acc) {
#pragma omp parallel for if (rows * cols > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double v = x[r * cols + c];
      s += static_cast<double>(w[c]) * (v * v);
    }
    acc[r] += s;
  }
}

bool all_finite(int64_t n, const float* x) {
  int bad = 0;
#pragma omp parallel for reduction(| : bad) if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) bad |= !std::isfinite(x[i]);
  return !bad;
}

}  // namespace lethe::cpu
