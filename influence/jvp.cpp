#include "influence/jvp.h"

#include "nn/autograd.h"

namespace lethe::repair {

// Each module type carries (h, ḣ) itself (Module::jvp, nn/layers/ for the parameterised ones).
std::pair<Tensor, Tensor> jvp(Module& model, const Tensor& x, const std::vector<float>& v) {
  NoGradGuard ng;
  ModeGuard evaluation_mode(model, false);
  const ParameterDirection direction(model, v);
  Tensor h = x, dh = Tensor::zeros(x.shape(), x.device());
  model.jvp(h, dh, direction);
  return {h, dh};
}

}  // namespace lethe::repair
