#pragma once
// Forward-mode differentiation of a Sequential model of Conv2d, Linear, ReLU, MaxPool2d and
// Flatten layers: the logits' directional derivative J v along a parameter direction v (θ
// layout). With the reverse pass this gives Gauss-Newton-vector products Jᵀ H J v without
// second-order autograd.
#include <utility>
#include <vector>

#include "nn/module.h"

namespace lethe::repair {

// Returns {logits, J v}; no graph is recorded.
std::pair<Tensor, Tensor> jvp(Module& model, const Tensor& x, const std::vector<float>& v);

}  // namespace lethe::repair
