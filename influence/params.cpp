#include "influence/params.h"

#include <cstring>

#include "util/error.h"

namespace lethe::repair {

ParamLayout ParamLayout::of(Module& model) {
  ParamLayout l;
  for (auto& p : model.named_parameters()) {
    l.names.push_back(p.name);
    l.shapes.push_back(p.tensor.shape());
    l.offsets.push_back(l.total);
    l.total += p.tensor.numel();
  }
  return l;
}

int64_t ParamLayout::offset_of(const std::string& name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return offsets[i];
  fail("model has no parameter named '{}'", name);
}

std::vector<Tensor> snapshot_buffers(Module& model) {
  std::vector<Tensor> out;
  for (auto& b : model.named_buffers()) out.push_back(b.tensor.clone());
  return out;
}

void restore_buffers(Module& model, const std::vector<Tensor>& saved) {
  auto buffers = model.named_buffers();
  if (buffers.size() != saved.size()) fail("restore_buffers: {} saved for {} buffers", saved.size(), buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) buffers[i].tensor.copy_(saved[i]);
}

ModelSnapshot snapshot(Module& model) { return {flatten_params(model), snapshot_buffers(model)}; }

void restore(Module& model, const ModelSnapshot& saved) {
  assign_params(model, saved.params);
  restore_buffers(model, saved.buffers);
}

std::vector<float> flatten_grads(Module& model) {
  std::vector<float> g;
  for (auto& p : model.named_parameters()) {
    Tensor grad = p.tensor.grad();
    if (grad.defined()) {
      const auto v = grad.to_vector();
      g.insert(g.end(), v.begin(), v.end());
    } else {
      g.insert(g.end(), static_cast<size_t>(p.tensor.numel()), 0.0f);
    }
  }
  return g;
}

}  // namespace lethe::repair
