#include "kernels/backend.h"

#include <cmath>

namespace lethe::cpu {

void adam_step(int64_t n, const AdamHyper& h, int64_t step, float* param, const float* grad, float* m, float* v) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(step));
  const float step_size = static_cast<float>(h.lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grad[i] + h.weight_decay * param[i];
    m[i] = h.beta1 * m[i] + (1.0f - h.beta1) * g;
    v[i] = h.beta2 * v[i] + (1.0f - h.beta2) * g * g;
    const float denom = std::sqrt(v[i]) * inv_sqrt_bc2 + h.eps;
    param[i] -= step_size * m[i] / denom;
  }
}

void sgd_step(int64_t n, const SgdHyper& h, float* param, const float* grad, float* momentum_buf) {
#pragma omp parallel for schedule(static) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i] + h.weight_decay * param[i];
    if (h.momentum != 0.0f) {
      momentum_buf[i] = h.momentum * momentum_buf[i] + g;
      g = momentum_buf[i];
    }
    param[i] -= h.lr * g;
  }
}

}  // namespace lethe::cpu
