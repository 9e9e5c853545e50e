#pragma once
// A model's parameters as one flat vector θ of length P, in named_parameters() order (each
// layer's weight, then its bias). Every repair quantity (gradients, Fisher, queries, scores'
// search directions) is laid out this way.
#include <string>
#include <vector>

#include "nn/module.h"

namespace lethe::repair {

struct ParamLayout {
  std::vector<std::string> names;
  std::vector<Shape> shapes;
  std::vector<int64_t> offsets;  // start of each parameter in θ
  int64_t total = 0;
  static ParamLayout of(Module& model);
  int64_t offset_of(const std::string& name) const;  // throws if absent
};

// flatten_params and assign_params (θ as one vector, and back) are nn/module.h's.
// Copies of the model's buffers (BatchNorm running statistics), and their restoration.
std::vector<Tensor> snapshot_buffers(Module& model);
void restore_buffers(Module& model, const std::vector<Tensor>& saved);
// A model's state as a repair starts from it: its parameters (θ) and its buffers (BatchNorm
// running statistics). Every repair that must start from the trained model restores both: the
// parameters alone would leave the statistics a previous fine-tune moved.
struct ModelSnapshot {
  std::vector<float> params;
  std::vector<Tensor> buffers;
};
ModelSnapshot snapshot(Module& model);
void restore(Module& model, const ModelSnapshot& saved);
// Accumulated .grad of every parameter (zeros where there is none).
std::vector<float> flatten_grads(Module& model);

}  // namespace lethe::repair
