#pragma once
// A model's parameter gradients summed over batches in double, kept where the model lives: on
// the GPU each batch's .grad is added into device accumulators (no θ-sized copy to the host per
// batch) and the sum comes down once; on the CPU it is added on the host. The Fisher- and
// Gauss-Newton-vector products (influence/quantities.h) sum one weighted backward pass a batch.
#include <cstdint>
#include <vector>

#include "nn/module.h"

namespace lethe {

class GradientSum {
 public:
  explicit GradientSum(Module& model);
  ~GradientSum();
  GradientSum(const GradientSum&) = delete;
  GradientSum& operator=(const GradientSum&) = delete;
  // Adds every parameter's current .grad (a parameter without one adds nothing).
  void add();
  // The sum so far, flattened in named_parameters() order (waits for the device).
  std::vector<double> total() const;

 private:
  std::vector<Tensor> params_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
  std::vector<double> host_;   // the CPU's sum
  double* on_device_ = nullptr;  // the GPU's, total_ doubles
};

}  // namespace lethe
