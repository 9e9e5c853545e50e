#pragma once
// Optimisers over a fixed list of parameter tensors (aliases of the module's). State lives on
// the parameters' device; each step is one fused kernel per parameter.
#include <vector>

#include "kernels/types.h"
#include "nn/tensor.h"

namespace lethe {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Updates every parameter that has a gradient.
  virtual void step() = 0;
  void zero_grad();
  const std::vector<Tensor>& parameters() const { return params_; }

 protected:
  explicit Optimizer(std::vector<Tensor> params);
  std::vector<Tensor> params_;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamHyper hyper = {});
  void step() override;
  const AdamHyper& hyper() const { return hyper_; }
  int64_t steps_taken() const { return step_; }

 private:
  AdamHyper hyper_;
  int64_t step_ = 0;
  std::vector<Tensor> m_, v_;
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<Tensor> params, SgdHyper hyper = {});
  void step() override;

 private:
  SgdHyper hyper_;
  std::vector<Tensor> momentum_;
};

}  // namespace lethe
