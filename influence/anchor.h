#pragma once
// The diagonal quadratic anchor ½ Σ_j c_j (θ_j − θ̂_j)² of EWC-influence and EWC-deletion,
// held as per-parameter tensors on the model's device so adding its gradient c ∘ (θ − θ̂) to
// each parameter's .grad is two elementwise kernels, wherever the model lives.
#include <string>
#include <vector>

#include "nn/module.h"

namespace lethe::repair {

class DiagonalAnchor {
 public:
  // c_j = scale * fisher_j + l2, anchored at the model's current parameters.
  DiagonalAnchor(Module& model, const std::vector<double>& fisher, double scale, double l2);
  // Adds c ∘ (θ − θ̂) to every parameter's gradient, queued on the model's device; the
  // descent's one finiteness check of the step (influence/descent.h) covers the result.
  void add_gradient();
  // ½ Σ_j c_j (θ_j − θ̂_j)² as a one-element tensor on the model's device (no host round trip).
  Tensor value() const;

 private:
  std::vector<Tensor> params_, coef_, anchor_;
};

}  // namespace lethe::repair
