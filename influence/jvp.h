#pragma once
// Forward-mode differentiation of a model: the logits' directional derivative J v along a
// parameter direction v (θ layout), in evaluation mode (BatchNorm with its running statistics, as
// everywhere per-example quantities are taken). Each module type supplies its own step
// (Module::jvp); a module without one is refused by name. With the reverse pass this gives
// Gauss-Newton-vector products Jᵀ H J v without second-order autograd.
#include <utility>
#include <vector>

#include "nn/module.h"

namespace lethe::repair {

// Returns {logits, J v}; no graph is recorded.
std::pair<Tensor, Tensor> jvp(Module& model, const Tensor& x, const std::vector<float>& v);

}  // namespace lethe::repair
