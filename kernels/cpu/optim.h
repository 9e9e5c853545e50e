#pragma once
// Optimiser updates, one fused pass over a parameter and its state.
#include <cstdint>

namespace lethe {
struct AdamHyper {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
};
struct SgdHyper {
  float lr = 1e-2f, momentum = 0.0f, weight_decay = 0.0f;
};
}  // namespace lethe

namespace lethe::cpu {

// Adam (L2 weight decay added to the gradient, as torch.optim.Adam); `step` counts from 1.
void adam_step(int64_t n, const AdamHyper& h, int64_t step, float* param, const float* grad, float* m, float* v);
// SGD with momentum (buf = momentum * buf + g; p -= lr * buf), as torch.optim.SGD without dampening.
void sgd_step(int64_t n, const SgdHyper& h, float* param, const float* grad, float* momentum_buf);

}  // namespace lethe::cpu
