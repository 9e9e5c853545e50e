#include "nn/finite.h"

#include "nn/ops.h"
#include "util/error.h"

namespace lethe {

std::string first_nonfinite_parameter(Module& model) {
  for (auto& p : model.named_parameters())
    if (!all_finite(p.tensor)) return p.name;
  return {};
}

std::string first_nonfinite_gradient(Module& model) {
  for (auto& p : model.named_parameters())
    if (p.tensor.grad().defined() && !all_finite(p.tensor.grad())) return p.name;
  return {};
}

void require_finite_parameters(Module& model, std::string_view who, std::string_view where) {
  const std::string name = first_nonfinite_parameter(model);
  if (!name.empty()) fail("{}: parameter '{}' is not finite (NaN or Inf) {}", who, name, where);
}

void require_finite_gradients(Module& model, std::string_view who, std::string_view where) {
  const std::string name = first_nonfinite_gradient(model);
  if (!name.empty()) fail("{}: the gradient of '{}' is not finite (NaN or Inf) {}", who, name, where);
}

}  // namespace lethe
