#include "kernels/backend.h"

#include <algorithm>
#include <cmath>

namespace lethe::cpu {

void softmax_xent_forward(int64_t n, int64_t k, const float* logits, const int32_t* labels, float* losses,
                          float* probs) {
#pragma omp parallel for schedule(static) if (n * k > 4096)
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits + i * k;
    float* p = probs + i * k;
    const float zmax = *std::max_element(z, z + k);
    double total = 0.0;
    for (int64_t j = 0; j < k; ++j) {
      p[j] = std::exp(z[j] - zmax);
      total += p[j];
    }
    const float inv = static_cast<float>(1.0 / total);
    for (int64_t j = 0; j < k; ++j) p[j] *= inv;
    losses[i] = static_cast<float>(std::log(total) + zmax - z[labels[i]]);
  }
}

void softmax_xent_backward(int64_t n, int64_t k, const float* probs, const int32_t* labels, const float* dloss,
                           float* dlogits) {
#pragma omp parallel for schedule(static) if (n * k > 4096)
  for (int64_t i = 0; i < n; ++i) {
    const float g = dloss[i];
    for (int64_t j = 0; j < k; ++j) dlogits[i * k + j] = g * probs[i * k + j];
    dlogits[i * k + labels[i]] -= g;
  }
}

void log_softmax_forward(int64_t n, int64_t k, const float* x, float* y) {
#pragma omp parallel for schedule(static) if (n * k > 4096)
  for (int64_t i = 0; i < n; ++i) {
    const float* xi = x + i * k;
    const float m = *std::max_element(xi, xi + k);
    double total = 0.0;
    for (int64_t j = 0; j < k; ++j) total += std::exp(static_cast<double>(xi[j] - m));
    const float lse = static_cast<float>(std::log(total)) + m;
    for (int64_t j = 0; j < k; ++j) y[i * k + j] = xi[j] - lse;
  }
}

void log_softmax_backward(int64_t n, int64_t k, const float* y, const float* dy, float* dx) {
#pragma omp parallel for schedule(static) if (n * k > 4096)
  for (int64_t i = 0; i < n; ++i) {
    double total = 0.0;
    for (int64_t j = 0; j < k; ++j) total += dy[i * k + j];
    for (int64_t j = 0; j < k; ++j)
      dx[i * k + j] = dy[i * k + j] - std::exp(y[i * k + j]) * static_cast<float>(total);
  }
}

void nll_forward(int64_t n, int64_t k, const float* logp, const int32_t* labels, float* losses) {
  for (int64_t i = 0; i < n; ++i) losses[i] = -logp[i * k + labels[i]];
}

void nll_backward(int64_t n, int64_t k, const int32_t* labels, const float* dloss, float* dlogp) {
  std::fill(dlogp, dlogp + n * k, 0.0f);
  for (int64_t i = 0; i < n; ++i) dlogp[i * k + labels[i]] = -dloss[i];
}

}  // namespace lethe::cpu
