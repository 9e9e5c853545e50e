#include "influence/layer_walk.h"

#include <algorithm>

#include "learning/batches.h"
#include "nn/linalg.h"
#include "influence/per_example.h"
#include "util/rng.h"

namespace lethe::repair {

void walk_layer_gradients(Module& model, const data::ImageSet& set, const std::vector<KfacLayer>& layers,
                          const FisherOptions& fisher, const PassOptions& opt, const char* name,
                          const LayerGradients& visit) {
  PerExampleEngine engine(model);
  const int64_t p = engine.num_params();
  Rng rng(fisher.seed);  // sampled labels: drawn afresh from KFAC's seed
  const int draws = fisher.kind == FisherKind::Sampled ? fisher.mc_samples : 1;
  const int64_t batch = std::min(std::max<int64_t>(1, opt.batch), examples_within(kMaterialisedGradientBudget, p));
  BatchWalk walk;
  walk.interruptible_as = name;
  walk.progress = opt.progress;
  for_each_image_batch(set, batch, model.device(), [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
    const int64_t n = static_cast<int64_t>(idx.size()), first = idx.front();
    Tensor logits = engine.forward(x);
    for (int s = 0; s < draws; ++s) {
      engine.backward(logits, fisher.kind == FisherKind::Sampled ? sample_labels(logits, rng) : labels);
      for (size_t k = 0; k < layers.size(); ++k) {
        if (layers[k].channel_pairs && !visit.channel_pairs) continue;
        if (const LayerCapture* cap = layers[k].channel_pairs ? nullptr : engine.outer_product_capture(k)) {
          visit.linear(k, first, n, *cap);
          continue;
        }
        visit.materialised(k, first, n, engine.layer_gradients(k));
      }
    }
  }, walk);
}

Tensor on_device(const std::vector<double>& v, Device device) {
  const std::vector<float> f(v.begin(), v.end());
  return Tensor::from_vector({static_cast<int64_t>(f.size())}, f, device);
}

std::vector<double> bias_augmented(const KfacLayer& l, int64_t n, const std::vector<float>& a) {
  const int64_t ad = l.a_dim();
  std::vector<double> abar(static_cast<size_t>(n * ad), 1.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < l.in; ++k) abar[i * ad + k] = a[static_cast<size_t>(i * l.in + k)];
  return abar;
}

void add_outer_product_weighted_squares(int64_t n, int64_t out_dim, int64_t a_dim, const std::vector<double>& d2,
                                        const std::vector<double>& W, const std::vector<double>& a2, double* out) {
  const auto t = matmul_f64(false, false, n, a_dim, out_dim, d2, W);
  for (int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (int64_t c = 0; c < a_dim; ++c) s += t[i * a_dim + c] * a2[i * a_dim + c];
    out[i] += s;
  }
}

}  // namespace lethe::repair
