#include "influence/trak_features.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "learning/batches.h"
#include "nn/linalg.h"
#include "influence/kfac.h"
#include "influence/params.h"
#include "influence/per_example.h"
#include "util/error.h"

namespace lethe::repair {
namespace {

// (M + damping · mean eig · I)⁺ of a symmetric positive semi-definite m × m matrix, in place.
void pseudo_inverse(int64_t m, std::vector<double>& a, double damping) {
  std::vector<double> w;
  symmetric_eigen(m, a, w);  // a: eigenvectors as columns
  const double top = std::max(w.back(), 0.0);
  double mean = 0;
  for (double x : w) mean += std::max(x, 0.0) / static_cast<double>(m);
  const double shift = damping * mean;
  std::vector<double> inv(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) inv[j] = w[j] > 1e-10 * top && w[j] + shift > 0 ? 1.0 / (w[j] + shift) : 0.0;
  // V diag(inv) Vᵀ
  std::vector<double> vs(a.size());
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < m; ++c) vs[r * m + c] = a[r * m + c] * inv[c];
  a = matmul_f64(false, true, m, m, m, vs, a);
}

}  // namespace

void validate(const TrakOptions& o) {
  if (o.project && (o.proj_dim < 1 || o.proj_dim > 65536))
    throw UsageError(fmt::format("--proj-dim {}: must be in [1, 65536]", o.proj_dim));
  if (o.projection != "dense" && o.projection != "kron")
    throw UsageError(fmt::format("--trak-projection: unknown '{}' (known: dense, kron)", o.projection));
  if (!(o.damping >= 0)) throw UsageError(fmt::format("--trak-damping {}: must be >= 0", o.damping));
}

namespace {

// One layer's share of the layered (kron) projection.
struct LayerShare {
  int64_t offset = 0, params = 0;  // its segment of θ
  int64_t k = 0, feature = 0;      // its dimensions and where they start in φ
  enum Kind { Whole, Dense, Kron } kind = Dense;
  int64_t out = 0, a_dim = 0, k_out = 0, k_in = 0;  // Kron: R_out [out, k_out], R_in [a_dim, k_in]
  bool bias = false;
  uint64_t seed = 0;
  std::vector<float> r_out, r_in;
};

std::vector<LayerShare> plan_layers(const std::vector<KfacLayer>& shapes, int64_t p, const TrakOptions& o,
                                    const std::vector<bool>& linear) {
  std::vector<LayerShare> plan;
  int64_t feature = 0;
  for (size_t l = 0; l < shapes.size(); ++l) {
    const auto& s = shapes[l];
    LayerShare share;
    share.offset = s.offset;
    share.params = s.channel_pairs ? 2 * s.out : s.out * s.in + (s.bias ? s.out : 0);
    share.seed = o.seed ^ (0x9E3779B97F4A7C15ull * (l + 1));
    const int64_t target =
        std::max<int64_t>(1, std::llround(static_cast<double>(o.proj_dim) * share.params / static_cast<double>(p)));
    if (target >= share.params) {
      share.kind = LayerShare::Whole;
      share.k = share.params;
    } else if (linear[l]) {
      share.kind = LayerShare::Kron;
      share.out = s.out, share.a_dim = s.a_dim(), share.bias = s.bias;
      // Balanced sides (the error is about √(2/k_out + 2/k_in)); a side capped by its size hands
      // the rest of the share to the other. A side kept whole is the identity, not a random
      // square matrix.
      share.k_out = std::clamp<int64_t>(std::llround(std::sqrt(static_cast<double>(target))), 1, share.out);
      share.k_in = std::clamp<int64_t>((target + share.k_out - 1) / share.k_out, 1, share.a_dim);
      share.k_out = std::clamp<int64_t>((target + share.k_in - 1) / share.k_in, 1, share.out);
      share.k = share.k_out * share.k_in;
      auto side = [](uint64_t seed, int64_t rows, int64_t k) {
        if (k < rows) return jl_rows(seed, 0, rows, k);
        std::vector<float> identity(static_cast<size_t>(rows * rows), 0.0f);
        for (int64_t r = 0; r < rows; ++r) identity[r * rows + r] = 1.0f;
        return identity;
      };
      share.r_out = side(share.seed, share.out, share.k_out);
      share.r_in = side(share.seed + 1, share.a_dim, share.k_in);
    } else {
      share.kind = LayerShare::Dense;
      share.k = target;
    }
    share.feature = feature;
    feature += share.k;
    plan.push_back(std::move(share));
  }
  return plan;
}

// TRAK's margin f = z_y − log Σ_{j≠y} e^{z_j} of each row of the logits [b, classes], in double
// from the float logits: its gradient g = e_y − softmax over j ≠ y (0 at y) into `grad`, and
// 1 − p_y = σ(−f) into one_minus_p. Neither divides by 1 − p_y nor subtracts p_y from 1, so a
// row whose p_y rounds to 1 in float keeps both terms, and its σ(−f) stays a positive number.
void margin_gradients(const std::vector<float>& logits, const std::vector<int32_t>& labels, int64_t classes,
                      const std::vector<int64_t>& idx, std::vector<float>& grad, std::vector<double>& one_minus_p) {
  if (classes < 2) fail("trak: the margin needs two classes or more, the model has {}", classes);
  grad.assign(logits.size(), 0.0f);
  std::vector<double> e(static_cast<size_t>(classes));
  for (size_t i = 0; i < idx.size(); ++i) {
    const float* z = logits.data() + i * classes;
    const int32_t y = labels[i];
    if (y < 0 || y >= classes) fail("trak: label {} outside the model's {} classes", y, classes);
    double top = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < classes; ++j)
      if (j != y) top = std::max(top, static_cast<double>(z[j]));
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += e[j] = j == y ? 0.0 : std::exp(static_cast<double>(z[j]) - top);
    const double margin = static_cast<double>(z[y]) - (top + std::log(sum));
    float* g = grad.data() + i * classes;
    for (int64_t j = 0; j < classes; ++j) g[j] = j == y ? 1.0f : static_cast<float>(-e[j] / sum);
    // σ(−f) = 1 / (1 + e^f), written so that the exponential never overflows.
    one_minus_p[idx[i]] = margin >= 0 ? std::exp(-margin) / (1.0 + std::exp(-margin)) : 1.0 / (1.0 + std::exp(margin));
  }
}

// The pass both projections share: every batch's forward pass, the margin's output gradients
// and 1 − p_i from its logits, the backward pass from them, then body(idx) with the engine
// holding the batch's captures (each layer's output gradient that of the margin).
template <typename Body>
void for_each_feature_batch(Module& model, PerExampleEngine& engine, const data::ImageSet& set, const PassOptions& opt,
                            TrakFeatures& f, Body&& body) {
  BatchWalk walk;
  walk.interruptible_as = "trak pass";
  walk.progress = opt.progress;
  std::vector<float> grad;
  for_each_image_batch(
      set, opt.batch, model.device(),
      [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
        const Tensor logits = engine.forward(x);
        margin_gradients(logits.to_vector(), labels.host(), logits.size(1), idx, grad, f.one_minus_p);
        engine.backward_from(logits, grad);
        body(idx);
      },
      walk);
}

TrakFeatures trak_features_layered(Module& model, const data::ImageSet& set, const TrakOptions& o,
                                   const PassOptions& opt) {
  // The layers' shapes first: they come from an engine of their own, which must be gone before
  // this pass's engine captures anything.
  int64_t p = 0;
  const auto shapes = kfac_layer_shapes(model, p);
  PerExampleEngine engine(model);
  TrakFeatures f;
  f.n = set.n;
  f.one_minus_p.assign(static_cast<size_t>(f.n), 0.0);
  std::vector<LayerShare> plan;
  std::vector<float> grads, input, dout, abar, a_proj, d_proj;
  for_each_feature_batch(model, engine, set, opt, f, [&](const std::vector<int64_t>& idx) {
        const int64_t b = static_cast<int64_t>(idx.size());
        if (plan.empty()) {
          std::vector<bool> linear(shapes.size());
          for (size_t l = 0; l < shapes.size(); ++l) linear[l] = engine.linear_capture(l, input, dout);
          plan = plan_layers(shapes, p, o, linear);
          f.k = plan.back().feature + plan.back().k;
          f.phi.assign(static_cast<size_t>(f.n * f.k), 0.0f);
        }
        bool formed = false;
        for (size_t l = 0; l < plan.size(); ++l) {
          const LayerShare& s = plan[l];
          float* rows = f.phi.data() + idx.front() * f.k + s.feature;
          if (s.kind == LayerShare::Kron) {
            // (R_outᵀ δ_i)(R_inᵀ ā_i)ᵀ from the layer's captures; no gradient formed.
            engine.linear_capture(l, input, dout);
            const int64_t in = s.a_dim - (s.bias ? 1 : 0);
            abar.assign(static_cast<size_t>(b * s.a_dim), 1.0f);
            for (int64_t i = 0; i < b; ++i) std::copy_n(input.data() + i * in, in, abar.data() + i * s.a_dim);
            a_proj.assign(static_cast<size_t>(b * s.k_in), 0.0f);
            d_proj.assign(static_cast<size_t>(b * s.k_out), 0.0f);
            matmul_f32(false, false, b, s.k_in, s.a_dim, abar.data(), s.r_in.data(), 0.0f, a_proj.data());
            matmul_f32(false, false, b, s.k_out, s.out, dout.data(), s.r_out.data(), 0.0f, d_proj.data());
            for (int64_t i = 0; i < b; ++i)
              for (int64_t r = 0; r < s.k_out; ++r)
                for (int64_t c = 0; c < s.k_in; ++c)
                  rows[i * f.k + r * s.k_in + c] = d_proj[i * s.k_out + r] * a_proj[i * s.k_in + c];
            continue;
          }
          if (!formed) {
            grads.assign(static_cast<size_t>(b * p), 0.0f);
            PerExampleRequest req;
            req.grads = grads.data();
            req.ld_grads = p;
            engine.accumulate(req);
            formed = true;
          }
          if (s.kind == LayerShare::Whole) {
            for (int64_t i = 0; i < b; ++i) std::copy_n(grads.data() + i * p + s.offset, s.params, rows + i * f.k);
          } else {
            jl_project_strided(grads.data() + s.offset, b, s.params, p, s.k, s.seed, rows, f.k);
          }
        }
  });
  return f;
}

}  // namespace

TrakFeatures trak_features(Module& model, const data::ImageSet& set, const TrakOptions& o, const PassOptions& opt) {
  validate(o);
  if (o.project && o.projection == "kron") return trak_features_layered(model, set, o, opt);
  PerExampleEngine engine(model);
  const int64_t p = engine.num_params();
  TrakFeatures f;
  f.n = set.n;
  f.k = o.project ? o.proj_dim : p;
  f.phi.assign(static_cast<size_t>(f.n * f.k), 0.0f);
  f.one_minus_p.assign(static_cast<size_t>(f.n), 0.0);
  for_each_feature_batch(model, engine, set, opt, f, [&](const std::vector<int64_t>& idx) {
        float* rows = f.phi.data() + idx.front() * f.k;
        PerExampleRequest req;
        if (o.project) {
          // Projected where the captures live: on the GPU only the [b, k] rows come back.
          req.projected = rows;
          req.proj_k = f.k;
          req.ld_projected = f.k;
          req.proj_seed = o.seed;
          req.formed_budget = o.gradient_budget;
        } else {
          req.grads = rows;
          req.ld_grads = p;
        }
        engine.accumulate(req);
  });
  return f;
}

TrakKernel trak_kernel(const TrakFeatures& train, const TrakOptions& o) {
  TrakKernel kern;
  kern.n = train.n, kern.k = train.k;
  if (train.n < 1) return kern;
  const std::vector<double> phi(train.phi.begin(), train.phi.end());  // Φ [n, k] in double
  kern.gram = train.k > train.n;
  if (!kern.gram) {
    kern.inverse = matmul_f64(true, false, train.k, train.k, train.n, phi, phi);  // ΦᵀΦ
    pseudo_inverse(train.k, kern.inverse, o.damping);
  } else {
    kern.inverse = matmul_f64(false, true, train.n, train.n, train.k, phi, phi);  // ΦΦᵀ
    pseudo_inverse(train.n, kern.inverse, o.damping);
  }
  return kern;
}

std::vector<std::vector<double>> trak_kernel_scores(const TrakFeatures& train, const TrakFeatures& queries,
                                                    const TrakOptions& o) {
  if (train.k != queries.k) fail("trak: features of {} and {} dimensions", train.k, queries.k);
  if (train.n < 1 || queries.n < 1) return std::vector<std::vector<double>>(static_cast<size_t>(queries.n));
  return trak_kernel_scores(train, trak_kernel(train, o), queries);
}

std::vector<std::vector<double>> trak_kernel_scores(const TrakFeatures& train, const TrakKernel& kernel,
                                                    const TrakFeatures& queries) {
  if (train.k != queries.k) fail("trak: features of {} and {} dimensions", train.k, queries.k);
  const int64_t n = train.n, k = train.k, q = queries.n;
  if (n < 1 || q < 1) return std::vector<std::vector<double>>(static_cast<size_t>(q));
  if (kernel.n != n || kernel.k != k)
    fail("trak: a kernel of {} examples x {} dimensions for features of {} x {}", kernel.n, kernel.k, n, k);
  // Φ [n, k] and the queries' φ, in double.
  const std::vector<double> phi(train.phi.begin(), train.phi.end()), phi_q(queries.phi.begin(), queries.phi.end());
  // u_q = K⁺ φ_q, and the kernel score is φ_iᵀ u_q. Where k > n, Φ K⁺ φ_q is (ΦΦᵀ)⁺ Φ φ_q, so
  // t = Φ K⁺ φ_q comes from the n × n Gram matrix.
  std::vector<double> t;  // [n, q]: φ_iᵀ K⁺ φ_q
  if (!kernel.gram) {
    const auto u = matmul_f64(false, true, k, q, k, kernel.inverse, phi_q);  // [k, q]
    t = matmul_f64(false, false, n, q, k, phi, u);
  } else {
    const auto c = matmul_f64(false, true, n, q, k, phi, phi_q);  // Φ φ_q
    t = matmul_f64(false, false, n, q, n, kernel.inverse, c);
  }
  std::vector<std::vector<double>> r(static_cast<size_t>(q), std::vector<double>(static_cast<size_t>(n)));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < q; ++j) r[j][i] = t[i * q + j];
  return r;
}

std::vector<double> trak_kernel_self(const TrakFeatures& train, const TrakOptions& o) {
  const int64_t n = train.n, k = train.k;
  std::vector<double> out(static_cast<size_t>(n), 0.0);
  if (n < 1) return out;
  const std::vector<double> phi(train.phi.begin(), train.phi.end());
  if (k <= n) {  // rows of (Φ K⁺) against rows of Φ
    const TrakKernel kernel = trak_kernel(train, o);
    const auto pk = matmul_f64(false, false, n, k, k, phi, kernel.inverse);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < k; ++c) out[i] += pk[i * k + c] * phi[i * k + c];
  } else {  // Φ K⁺ Φᵀ = (ΦΦᵀ)⁺ ΦΦᵀ, as trak_kernel_scores forms it
    const auto gram = matmul_f64(false, true, n, n, k, phi, phi);
    auto inv = gram;
    pseudo_inverse(n, inv, o.damping);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) out[i] += inv[i * n + j] * gram[j * n + i];
  }
  return out;
}

std::vector<std::vector<double>> trak_scores(const TrakFeatures& train, const TrakFeatures& queries,
                                             const TrakOptions& o) {
  auto r = trak_kernel_scores(train, queries, o);
  for (auto& row : r)
    for (int64_t i = 0; i < train.n; ++i) row[i] = -row[i] * train.one_minus_p[i];
  return r;
}

void TrakEnsemble::add(const TrakFeatures& train, const TrakFeatures& queries, const TrakOptions& o) {
  add(train, trak_kernel(train, o), queries);
}

void TrakEnsemble::add(const TrakFeatures& train, const TrakKernel& kernel, const TrakFeatures& queries) {
  const auto t = trak_kernel_scores(train, kernel, queries);
  if (models_ == 0) {
    kernel_.assign(t.size(), std::vector<double>(static_cast<size_t>(train.n), 0.0));
    one_minus_p_.assign(static_cast<size_t>(train.n), 0.0);
  }
  if (t.size() != kernel_.size() || static_cast<size_t>(train.n) != one_minus_p_.size())
    fail("trak ensemble: a model with {} queries and {} examples, the first had {} and {}", t.size(), train.n,
         kernel_.size(), one_minus_p_.size());
  for (size_t j = 0; j < t.size(); ++j)
    for (size_t i = 0; i < t[j].size(); ++i) kernel_[j][i] += t[j][i];
  for (int64_t i = 0; i < train.n; ++i) one_minus_p_[i] += train.one_minus_p[i];
  ++models_;
}

std::vector<std::vector<double>> TrakEnsemble::scores() const {
  auto r = kernel_;
  const double m = static_cast<double>(models_);
  for (auto& row : r)
    for (size_t i = 0; i < row.size(); ++i) row[i] = -(row[i] / m) * (one_minus_p_[i] / m);
  return r;
}

}  // namespace lethe::repair
