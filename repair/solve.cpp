#include "repair/solve.h"

#include <algorithm>
#include <cmath>

#include "datasets/transforms.h"
#include "repair/kfac.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/rng.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

const std::vector<std::string>& linear_solvers() {
  static const std::vector<std::string> s = {"diag", "kfac", "cg", "lissa", "gd"};
  return s;
}

void validate(const SolverOptions& o) {
  const auto& solvers = linear_solvers();
  if (std::find(solvers.begin(), solvers.end(), o.solver) == solvers.end())
    throw UsageError(fmt::format("--solver: unknown solver '{}' (known: diag, kfac, cg, lissa, gd)", o.solver));
  if (o.curvature != "fisher" && o.curvature != "ggn")
    throw UsageError(fmt::format("--curvature: unknown '{}' (known: fisher, ggn)", o.curvature));
  if (!(o.damping >= 0)) throw UsageError(fmt::format("--damping {}: must be >= 0", o.damping));
  if (o.iterations < 1) throw UsageError(fmt::format("--iterations {}: must be >= 1", o.iterations));
  if (o.solver_batch < 1) throw UsageError(fmt::format("--solver-batch {}: must be >= 1", o.solver_batch));
}

std::vector<double> solve_damped(Module& model, const data::ImageSet& train, const std::vector<double>& b,
                                 const SolverOptions& o, const SolverContext& c, std::map<std::string, double>& stats) {
  validate(o);
  auto pass = [&c](const std::string& stage) {
    PassOptions p;
    p.batch = c.batch;
    if (c.progress) p.progress = [&c, stage](int64_t d, int64_t t) { c.progress(stage, d, t); };
    return p;
  };
  const std::string& s = o.solver;
  if (s == "kfac") {
    Kfac k = kfac_factors(model, train, c.fisher, pass("kfac"));
    return kfac_apply(k, b, o.damping);
  }
  const auto diag = diagonal_fisher(model, train, c.fisher, pass("fisher"));
  if (s == "diag") {
    std::vector<double> v(b.size());
    for (size_t j = 0; j < b.size(); ++j) v[j] = b[j] / (diag[j] + o.damping);
    return v;
  }
  auto damped_fvp = [&](const data::ImageSet& set, const std::vector<double>& x) {
    PassOptions p;
    p.batch = c.batch;
    auto y = o.curvature == "ggn" ? ggn_vector_product(model, set, x, p) : fisher_vector_product(model, set, x, p);
    for (size_t j = 0; j < y.size(); ++j) y[j] += o.damping * x[j];
    return y;
  };
  const double diag_max = *std::max_element(diag.begin(), diag.end()) + o.damping;
  const double bnorm = std::sqrt(dot(b, b));
  if (s == "cg") {
    // Conjugate gradient on the full empirical Fisher, warm-started at the diagonal solve.
    std::vector<double> x(b.size());
    for (size_t j = 0; j < b.size(); ++j) x[j] = b[j] / (diag[j] + o.damping);
    auto ax = damped_fvp(train, x);
    std::vector<double> r(b.size()), p(b.size());
    for (size_t j = 0; j < b.size(); ++j) p[j] = r[j] = b[j] - ax[j];
    double rr = dot(r, r);
    int it = 0;
    for (it = 1; it <= o.iterations && std::sqrt(rr) > 1e-6 * bnorm; ++it) {
      check_interrupt("at CG iteration {}", it);
      const auto ap = damped_fvp(train, p);
      const double alpha = rr / dot(p, ap);
      for (size_t j = 0; j < x.size(); ++j) {
        x[j] += alpha * p[j];
        r[j] -= alpha * ap[j];
      }
      const double rr_new = dot(r, r);
      for (size_t j = 0; j < p.size(); ++j) p[j] = r[j] + rr_new / rr * p[j];
      rr = rr_new;
      if (c.progress) c.progress("cg", it, o.iterations);
    }
    stats["cg_iterations"] = it - 1;
    stats["cg_relative_residual"] = std::sqrt(rr) / bnorm;
    return x;
  }
  // Stochastic solvers: Fisher-vector products on seeded random mini-batches of D.
  Rng rng = stream(c.seed, Stream::kSolverBatches);
  auto minibatch = [&] {
    std::vector<int64_t> idx;
    const int64_t m = std::min(o.solver_batch, train.n);
    for (int64_t i = 0; i < m; ++i) idx.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(train.n))));
    return data::take(train, idx);
  };
  if (s == "lissa") {
    // v_{t+1} = b + v_t − (F̂_B + δI) v_t / scale; v = v_T / scale. The scale must exceed the
    // operator's largest eigenvalue; the diagonal's maximum times a margin is a cheap bound proxy.
    const double scale = o.lissa_scale > 0 ? o.lissa_scale : 10.0 * diag_max;
    std::vector<double> v = b;
    for (int it = 1; it <= o.iterations; ++it) {
      check_interrupt("at LiSSA iteration {}", it);
      const auto hv = damped_fvp(minibatch(), v);
      for (size_t j = 0; j < v.size(); ++j) v[j] = b[j] + v[j] - hv[j] / scale;
      if (c.progress) c.progress("lissa", it, o.iterations);
    }
    for (auto& x : v) x /= scale;
    stats["lissa_scale"] = scale;
    return v;
  }
  if (s == "gd") {
    // Gradient descent on ½ vᵀ(F̂+δI)v − bᵀv from the diagonal solve.
    const double eta = o.gd_lr > 0 ? o.gd_lr : 1.0 / (10.0 * diag_max);
    std::vector<double> v(b.size());
    for (size_t j = 0; j < b.size(); ++j) v[j] = b[j] / (diag[j] + o.damping);
    for (int it = 1; it <= o.iterations; ++it) {
      check_interrupt("at gradient-descent iteration {}", it);
      const auto hv = damped_fvp(minibatch(), v);
      for (size_t j = 0; j < v.size(); ++j) v[j] -= eta * (hv[j] - b[j]);
      if (c.progress) c.progress("gd", it, o.iterations);
    }
    stats["gd_lr"] = eta;
    return v;
  }
  throw UsageError(fmt::format("--solver: unknown solver '{}' (known: diag, kfac, cg, lissa, gd)", s));
}

}  // namespace lethe::repair
