#pragma once
// A pass over a set that hands each batch's per-example gradients over layer by layer, where the
// model lives, and the sums such a pass adds into: what EK-FAC's refit, its self-influence and
// the diagonal preconditioner's self-influence (quantities.h) share. A Linear layer's gradient
// g_i = d_i āᵢᵀ is rank one and is handed over as its capture (a, d); any other layer's is formed
// a batch at a time (PerExampleEngine::layer_gradients), in batches of at most opt.batch
// examples, fewer where batch × P floats would pass nn's kMaterialisedGradientBudget.
#include <cstdint>
#include <functional>
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "nn/per_example_kernels.h"
#include "influence/kfac.h"
#include "influence/quantities.h"

namespace lethe::repair {

// What the walk hands each layer k of a batch whose first example is `first` in the set: a
// Linear layer's capture (input a [n, in], output gradient d [n, out]), any other layer's
// per-example gradients g [n, its parameter count] in θ's layout for that layer.
struct LayerGradients {
  std::function<void(size_t k, int64_t first, int64_t n, const LayerCapture& cap)> linear;
  std::function<void(size_t k, int64_t first, int64_t n, const Tensor& g)> materialised;
  bool channel_pairs = false;  // hand BatchNorm layers over too (as materialised gradients)
};

// One pass over `set` with the per-example gradients of the loss under `fisher`'s labels (the
// given ones, or mc_samples draws from the model per example), `layers` in kfac_blocks() order.
// `name` is what an interrupt or the progress line calls the pass.
void walk_layer_gradients(Module& model, const data::ImageSet& set, const std::vector<KfacLayer>& layers,
                          const FisherOptions& fisher, const PassOptions& opt, const char* name,
                          const LayerGradients& visit);

// Where a pass adds into host arrays of doubles: on the GPU each gets a device twin that the
// pass's kernels add into and that is added back once at the end (ResidentSums); on the CPU the
// array itself.
class SumsWhereTheModelIs {
 public:
  explicit SumsWhereTheModelIs(Device device) : device_(device) {}
  void keep(std::vector<double>& host) {
    if (!host.empty()) sums_.keep(device_, host.data(), static_cast<int64_t>(host.size()));
  }
  double* at(double* host, int64_t extent) const {
    double* twin = sums_.device_twin(host, extent);
    return twin ? twin : host;
  }
  void flush() { sums_.flush(); }

 private:
  Device device_;
  ResidentSums sums_;
};

// A float array where the model lives.
Tensor on_device(const std::vector<double>& v, Device device);

// A Linear layer's batch input a [n, in] as ā [n, in + bias] in double, the bias's column 1.
std::vector<double> bias_augmented(const KfacLayer& l, int64_t n, const std::vector<float>& a);

// For each example i of a Linear layer's batch, Σ_{o,c} d2[i,o] W[o,c] a2[i,c] added to out[i]:
// a weighted sum of the squared entries of its rank-one gradient (d2 [n, out] and a2 [n, a_dim]
// the squared, possibly rotated, output gradient and bias-augmented input; W [out, a_dim] the
// weights), as (d2 W) row i against a2 row i, in double on the host.
void add_outer_product_weighted_squares(int64_t n, int64_t out_dim, int64_t a_dim, const std::vector<double>& d2,
                                        const std::vector<double>& W, const std::vector<double>& a2, double* out);

}  // namespace lethe::repair
