// Optimiser updates (the CUDA side of kernels/backend.h): one fused pass reads the parameter,
// its gradient and its state once and writes them back once. The bias corrections are computed
// on the host in double exactly as the CPU computes them, so both backends feed the per-element
// update the same float constants.
#include <cmath>

#include "kernels/cuda/kernels.h"
#include "kernels/cuda/launch.cuh"

namespace lethe::cuda {
namespace {

struct AdamUpdate {
  float lr_over_bc1, inv_sqrt_bc2, beta1, beta2, eps, weight_decay;
  float* param;
  const float* grad;
  float* m;
  float* v;
  __device__ void operator()(int64_t i) const {
    const float g = grad[i] + weight_decay * param[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;
    param[i] -= lr_over_bc1 * mi / denom;
  }
};

struct SgdUpdate {
  float lr, momentum, weight_decay;
  float* param;
  const float* grad;
  float* momentum_buf;
  __device__ void operator()(int64_t i) const {
    float g = grad[i] + weight_decay * param[i];
    if (momentum != 0.0f) {
      g = momentum * momentum_buf[i] + g;
      momentum_buf[i] = g;
    }
    param[i] -= lr * g;
  }
};

}  // namespace

void adam_step(int64_t n, const AdamHyper& h, int64_t step, float* param, const float* grad, float* m, float* v) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(h.beta1), static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(h.beta2), static_cast<double>(step));
  const float step_size = static_cast<float>(h.lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  launch_map("adam_step", n,
             AdamUpdate{step_size, inv_sqrt_bc2, h.beta1, h.beta2, h.eps, h.weight_decay, param, grad, m, v});
}

void sgd_step(int64_t n, const SgdHyper& h, float* param, const float* grad, float* momentum_buf) {
  launch_map("sgd_step", n, SgdUpdate{h.lr, h.momentum, h.weight_decay, param, grad, momentum_buf});
}

}  // namespace lethe::cuda
