#include "repair/trak.h"

#include <algorithm>
#include <cmath>

#include "learning/batches.h"
#include "nn/linalg.h"
#include "repair/params.h"
#include "repair/per_example.h"
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
  if (!(o.damping >= 0)) throw UsageError(fmt::format("--trak-damping {}: must be >= 0", o.damping));
}

TrakFeatures trak_features(Module& model, const data::ImageSet& set, const TrakOptions& o, const PassOptions& opt) {
  validate(o);
  PerExampleEngine engine(model);
  const int64_t p = engine.num_params();
  TrakFeatures f;
  f.n = set.n;
  f.k = o.project ? o.proj_dim : p;
  f.psi.assign(static_cast<size_t>(f.n * f.k), 0.0f);
  f.one_minus_p.assign(static_cast<size_t>(f.n), 0.0);
  std::vector<float> grads;
  BatchWalk walk;
  walk.interruptible_as = "trak pass";
  walk.progress = opt.progress;
  for_each_image_batch(
      set, opt.batch, model.device(),
      [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
        const int64_t b = static_cast<int64_t>(idx.size());
        const auto losses = engine.backward(engine.forward(x), labels);
        for (int64_t i = 0; i < b; ++i) f.one_minus_p[idx[i]] = -std::expm1(-static_cast<double>(losses[i]));
        float* rows = f.psi.data() + idx.front() * f.k;
        PerExampleRequest req;
        req.ld_grads = p;
        if (o.project) {
          grads.assign(static_cast<size_t>(b * p), 0.0f);
          req.grads = grads.data();
          engine.accumulate(req);
          jl_project(grads.data(), b, p, f.k, o.seed, rows);
        } else {
          req.grads = rows;
          engine.accumulate(req);
        }
      },
      walk);
  return f;
}

std::vector<std::vector<double>> trak_scores(const TrakFeatures& train, const TrakFeatures& queries,
                                             const TrakOptions& o) {
  if (train.k != queries.k) fail("trak: features of {} and {} dimensions", train.k, queries.k);
  const int64_t n = train.n, k = train.k, q = queries.n;
  if (n < 1 || q < 1) return std::vector<std::vector<double>>(static_cast<size_t>(q));
  // Φ [n, k], φ_i = −ψ_i / (1 − p_i); the queries' φ likewise.
  auto margins = [](const TrakFeatures& f) {
    std::vector<double> phi(f.psi.size());
    for (int64_t i = 0; i < f.n; ++i) {
      const double s = -1.0 / std::max(f.one_minus_p[i], 1e-30);
      for (int64_t c = 0; c < f.k; ++c) phi[i * f.k + c] = s * static_cast<double>(f.psi[i * f.k + c]);
    }
    return phi;
  };
  const auto phi = margins(train), phi_q = margins(queries);
  // u_q = K⁺ φ_q, and r_q(z_i) = −τ = −φ_iᵀ u_q (1 − p_i) = ψ_iᵀ u_q. Where k > n, Φ K⁺ φ_q is
  // (ΦΦᵀ)⁺ Φ φ_q, so t = Φ K⁺ φ_q comes from the n × n Gram matrix and r_q(z_i) = −t_i (1 − p_i).
  std::vector<double> t;  // [n, q]: φ_iᵀ K⁺ φ_q
  if (k <= n) {
    auto kernel = matmul_f64(true, false, k, k, n, phi, phi);  // ΦᵀΦ
    pseudo_inverse(k, kernel, o.damping);
    const auto u = matmul_f64(false, true, k, q, k, kernel, phi_q);  // [k, q]
    t = matmul_f64(false, false, n, q, k, phi, u);
  } else {
    auto gram = matmul_f64(false, true, n, n, k, phi, phi);  // ΦΦᵀ
    pseudo_inverse(n, gram, o.damping);
    const auto c = matmul_f64(false, true, n, q, k, phi, phi_q);  // Φ φ_q
    t = matmul_f64(false, false, n, q, n, gram, c);
  }
  std::vector<std::vector<double>> r(static_cast<size_t>(q), std::vector<double>(static_cast<size_t>(n)));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < q; ++j) r[j][i] = -t[i * q + j] * train.one_minus_p[i];
  return r;
}

}  // namespace lethe::repair
