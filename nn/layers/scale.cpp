// A constant scale, a spec's {"type": "scale", "factor": 0.2}: y = factor · x, parameter-free
// and linear, so its gradient and its forward derivative take the same map (nn/ops.h scale, on
// every device).
#include "nn/module.h"
#include "nn/ops.h"
#include "util/error.h"

namespace lethe {

Tensor Scale::forward(const Tensor& x) { return scale(x, static_cast<float>(factor_)); }

std::string Scale::describe() const { return fmt::format("Scale(factor={})", factor_); }

void Scale::jvp(Tensor& h, Tensor& dh, const ParameterDirection&) {
  h = forward(h);
  dh = forward(dh);
}

}  // namespace lethe
