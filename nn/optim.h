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

// Adam's state besides the parameters: its step count and moments, on the host (one vector a
// parameter), so that a run can be taken up again from where it stood (learning/replay.h).
struct AdamState {
  int64_t steps = 0;
  std::vector<std::vector<float>> m, v;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamHyper hyper = {});
  void step() override;
  const AdamHyper& hyper() const { return hyper_; }
  int64_t steps_taken() const { return step_; }
  // The moments after the last step, parameter by parameter (m: first, v: second).
  const std::vector<Tensor>& first_moments() const { return m_; }
  const std::vector<Tensor>& second_moments() const { return v_; }
  AdamState state() const;
  // Throws when the state's shapes are not this optimiser's parameters'.
  void load_state(const AdamState& state);

 private:
  AdamHyper hyper_;
  int64_t step_ = 0;
  std::vector<Tensor> m_, v_;
};

// SGD's state besides the parameters: its momentum buffers, on the host (one vector a parameter).
struct SgdState {
  std::vector<std::vector<float>> momentum;
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<Tensor> params, SgdHyper hyper = {});
  void step() override;
  const SgdHyper& hyper() const { return hyper_; }
  SgdState state() const;
  // Throws when the state's shapes are not this optimiser's parameters'.
  void load_state(const SgdState& state);

 private:
  SgdHyper hyper_;
  std::vector<Tensor> momentum_;
};

}  // namespace lethe
