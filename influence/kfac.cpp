#include "influence/kfac.h"

#include <cmath>

#include "datasets/transforms.h"
#include "learning/batches.h"
#include "learning/train.h"
#include "nn/linalg.h"
#include "influence/per_example.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/rng.h"

namespace lethe::repair {

void decompose_pairs(KfacLayer& l) {
  l.QP.resize(l.pairs.size());
  l.lP.resize(l.pairs.size() / 2);
  for (int64_t c = 0; c < l.out; ++c) {
    std::vector<double> q(l.pairs.begin() + 4 * c, l.pairs.begin() + 4 * c + 4), w;
    symmetric_eigen(2, q, w);
    std::copy(q.begin(), q.end(), l.QP.begin() + 4 * c);
    std::copy(w.begin(), w.end(), l.lP.begin() + 2 * c);
  }
}

namespace {

KfacLayer shaped_like(const PerExampleEngine::KfacBlock& b) {
  KfacLayer l;
  l.name = b.weight_name;
  l.offset = b.offset;
  l.out = b.out;
  l.in = b.in;
  l.bias = b.bias;
  l.channel_pairs = b.channel_pairs;
  return l;
}

}  // namespace

std::vector<KfacLayer> kfac_layer_shapes(Module& model, int64_t& num_params) {
  PerExampleEngine engine(model);
  num_params = engine.num_params();
  std::vector<KfacLayer> layers;
  for (const auto& b : engine.kfac_blocks()) layers.push_back(shaped_like(b));
  return layers;
}

Kfac kfac_factors(Module& model, const data::ImageSet& set, const FisherOptions& fisher, const PassOptions& opt) {
  if (set.n == 0) fail("KFAC factors of an empty set");
  const auto t0 = Clock::now();
  PerExampleEngine engine(model);
  auto blocks = engine.kfac_blocks();
  Rng rng(fisher.seed);
  const int draws = fisher.kind == FisherKind::Sampled ? fisher.mc_samples : 1;
  const Device device = model.device();
  BatchWalk walk;
  walk.interruptible_as = "KFAC";
  walk.progress = opt.progress;
  walk.sharded = true;  // each rank its shard of D; the factors' sums added over ranks below
  if (fisher.kind == FisherKind::Sampled)  // the label draws before this rank's shard, skipped
    for (int64_t i = my_shard(0, set.n, opt.batch).lo * draws; i > 0; --i) rng.uniform();
  // On the GPU the factors' sums stay on the device for the whole pass and come down once.
  for (auto& b : blocks)
    for (auto* v : {&b.A, &b.G, &b.pairs})
      if (!v->empty()) engine.keep_resident(v->data(), static_cast<int64_t>(v->size()));
  for_each_image_batch(set, opt.batch, device, [&](const std::vector<int64_t>&, Tensor& x, Labels& labels) {
    Tensor logits = engine.forward(x);
    for (int s = 0; s < draws; ++s) {
      if (fisher.kind == FisherKind::Sampled) {
        engine.backward_on_device(logits, sample_labels(logits, rng));
      } else {
        engine.backward_on_device(logits, labels);
      }
      engine.kfac_accumulate(blocks);
    }
  }, walk);
  engine.flush_resident();
  for (auto& b : blocks) {
    sum_over_ranks(b.A);
    sum_over_ranks(b.G);
    sum_over_ranks(b.pairs);
  }
  Kfac kfac;
  kfac.num_params = engine.num_params();
  kfac.seconds_covariance = since(t0);
  const auto t1 = Clock::now();
  const double norm = 1.0 / (static_cast<double>(set.n) * draws);
  for (auto& b : blocks) {
    KfacLayer l = shaped_like(b);
    if (b.channel_pairs) {
      l.pairs = std::move(b.pairs);
      for (auto& x : l.pairs) x *= norm;
      decompose_pairs(l);
      kfac.layers.push_back(std::move(l));
      continue;
    }
    l.A = std::move(b.A);
    l.G = std::move(b.G);
    for (auto& x : l.A) x *= norm;
    for (auto& x : l.G) x *= norm;
    l.QA = l.A;
    symmetric_eigen(l.a_dim(), l.QA, l.lA);
    l.QG = l.G;
    symmetric_eigen(l.out, l.QG, l.lG);
    kfac.layers.push_back(std::move(l));
  }
  kfac.seconds_eigendecomposition = since(t1);
  return kfac;
}

std::vector<double> layer_matrix(const KfacLayer& l, const std::vector<double>& v) {
  const int64_t ad = l.a_dim();
  std::vector<double> m(static_cast<size_t>(l.out * ad));
  for (int64_t o = 0; o < l.out; ++o) {
    for (int64_t k = 0; k < l.in; ++k) m[o * ad + k] = v[static_cast<size_t>(l.offset + o * l.in + k)];
    if (l.bias) m[o * ad + l.in] = v[static_cast<size_t>(l.offset + l.out * l.in + o)];
  }
  return m;
}

void set_layer_matrix(const KfacLayer& l, const std::vector<double>& m, std::vector<double>& v) {
  const int64_t ad = l.a_dim();
  for (int64_t o = 0; o < l.out; ++o) {
    for (int64_t k = 0; k < l.in; ++k) v[static_cast<size_t>(l.offset + o * l.in + k)] = m[o * ad + k];
    if (l.bias) v[static_cast<size_t>(l.offset + l.out * l.in + o)] = m[o * ad + l.in];
  }
}

namespace {

// The (γ_c, β_c) pair of a BatchNorm layer's segment of θ.
std::pair<size_t, size_t> pair_index(const KfacLayer& l, int64_t c) {
  return {static_cast<size_t>(l.offset + c), static_cast<size_t>(l.offset + l.out + c)};
}

// (B_c + damping I)^power per channel, through B_c's eigendecomposition.
void apply_pairs(const KfacLayer& l, const std::vector<double>& v, double damping, double power, std::vector<double>& out) {
  for (int64_t c = 0; c < l.out; ++c) {
    const auto [ig, ib] = pair_index(l, c);
    const double* q = l.QP.data() + 4 * c;  // row-major, eigenvectors in columns
    const double t0 = q[0] * v[ig] + q[2] * v[ib], t1 = q[1] * v[ig] + q[3] * v[ib];  // Qᵀ v
    const double lam0 = std::max(0.0, l.lP[2 * c]) + damping, lam1 = std::max(0.0, l.lP[2 * c + 1]) + damping;
    if (lam0 <= 0 || lam1 <= 0) fail("KFAC: non-positive damped eigenvalue in layer {} (use --damping > 0)", l.name);
    const double s0 = t0 * std::pow(lam0, power), s1 = t1 * std::pow(lam1, power);
    out[ig] = q[0] * s0 + q[1] * s1;
    out[ib] = q[2] * s0 + q[3] * s1;
  }
}

void check_vector(const Kfac& kfac, const std::vector<double>& v) {
  if (static_cast<int64_t>(v.size()) != kfac.num_params)
    fail("KFAC: vector of {} values for {} parameters", v.size(), kfac.num_params);
}

}  // namespace

void kfac_apply_layer(const KfacLayer& l, const std::vector<double>& v, double damping, double power,
                      std::vector<double>& out) {
  if (l.channel_pairs) {
    apply_pairs(l, v, damping, power, out);
    return;
  }
  const int64_t ad = l.a_dim();
  // (A ⊗ G) vec(M) = G M A for M = [W | b] ([out, ad]); in the eigenbases the operator is
  // diagonal with entries lG_o lA_k.
  auto m = layer_matrix(l, v);
  auto t = matmul_f64(true, false, l.out, ad, l.out, l.QG, m);  // QGᵀ M
  t = matmul_f64(false, false, l.out, ad, ad, t, l.QA);          // QGᵀ M QA
  for (int64_t o = 0; o < l.out; ++o)
    for (int64_t k = 0; k < ad; ++k) {
      const double lam = std::max(0.0, l.lG[o]) * std::max(0.0, l.lA[k]) + damping;
      if (lam <= 0) fail("KFAC: non-positive damped eigenvalue in layer {} (use --damping > 0)", l.name);
      t[o * ad + k] *= std::pow(lam, power);
    }
  t = matmul_f64(false, false, l.out, ad, l.out, l.QG, t);  // QG T
  t = matmul_f64(false, true, l.out, ad, ad, t, l.QA);      // QG T QAᵀ
  set_layer_matrix(l, t, out);
}

std::vector<double> kfac_apply(const Kfac& kfac, const std::vector<double>& v, double damping, double power) {
  check_vector(kfac, v);
  std::vector<double> out(v.size(), 0.0);
  for (const auto& l : kfac.layers) kfac_apply_layer(l, v, damping, power, out);
  return out;
}

std::vector<double> kfac_multiply(const Kfac& kfac, const std::vector<double>& v) {
  check_vector(kfac, v);
  std::vector<double> out(v.size(), 0.0);
  for (const auto& l : kfac.layers) {
    if (l.channel_pairs) {
      for (int64_t c = 0; c < l.out; ++c) {
        const auto [ig, ib] = pair_index(l, c);
        const double* b = l.pairs.data() + 4 * c;
        out[ig] = b[0] * v[ig] + b[1] * v[ib];
        out[ib] = b[2] * v[ig] + b[3] * v[ib];
      }
      continue;
    }
    const int64_t ad = l.a_dim();
    auto m = layer_matrix(l, v);
    auto t = matmul_f64(false, false, l.out, ad, l.out, l.G, m);
    t = matmul_f64(false, false, l.out, ad, ad, t, l.A);
    set_layer_matrix(l, t, out);
  }
  return out;
}

std::vector<double> kfac_diagonal(const Kfac& kfac) {
  std::vector<double> out(static_cast<size_t>(kfac.num_params), 0.0);
  for (const auto& l : kfac.layers) {
    if (l.channel_pairs) {
      for (int64_t c = 0; c < l.out; ++c) {
        const auto [ig, ib] = pair_index(l, c);
        out[ig] = l.pairs[4 * c];
        out[ib] = l.pairs[4 * c + 3];
      }
      continue;
    }
    const int64_t ad = l.a_dim();
    std::vector<double> m(static_cast<size_t>(l.out * ad));
    for (int64_t o = 0; o < l.out; ++o)
      for (int64_t k = 0; k < ad; ++k) m[o * ad + k] = l.G[o * l.out + o] * l.A[k * ad + k];
    set_layer_matrix(l, m, out);
  }
  return out;
}

}  // namespace lethe::repair
