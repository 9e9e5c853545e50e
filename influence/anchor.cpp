#include "influence/anchor.h"

#include "nn/autograd.h"
#include "nn/ops.h"
#include "influence/params.h"
#include "util/error.h"

namespace lethe::repair {

DiagonalAnchor::DiagonalAnchor(Module& model, const std::vector<double>& fisher, double scale, double l2)
    : params_(model.parameters()) {
  const auto layout = ParamLayout::of(model);
  const auto theta = flatten_params(model);
  if (static_cast<int64_t>(fisher.size()) != layout.total)
    fail("anchor: {} Fisher values for {} parameters", fisher.size(), layout.total);
  for (size_t k = 0; k < params_.size(); ++k) {
    const int64_t off = layout.offsets[k], cnt = params_[k].numel();
    std::vector<float> c(static_cast<size_t>(cnt)), a(static_cast<size_t>(cnt));
    for (int64_t j = 0; j < cnt; ++j) {
      c[j] = static_cast<float>(scale * fisher[off + j] + l2);
      a[j] = theta[off + j];
    }
    coef_.push_back(Tensor::from_vector(params_[k].shape(), c, params_[k].device()));
    anchor_.push_back(Tensor::from_vector(params_[k].shape(), a, params_[k].device()));
  }
}

void DiagonalAnchor::add_gradient() {
  NoGradGuard ng;
  for (size_t k = 0; k < params_.size(); ++k) {
    Tensor g = params_[k].grad();
    if (g.defined()) add_inplace(g, mul(coef_[k], sub(params_[k], anchor_[k])));
  }
}

Tensor DiagonalAnchor::value() const {
  NoGradGuard ng;
  Tensor total;
  for (size_t k = 0; k < params_.size(); ++k) {
    const Tensor d = sub(params_[k], anchor_[k]);
    const Tensor v = sum(mul(d, mul(coef_[k], d)));
    total = total.defined() ? add(total, v) : v;
  }
  return scale(total, 0.5f);
}

}  // namespace lethe::repair
