#include "influence/solve.h"

#include <algorithm>
#include <cmath>

#include "datasets/transforms.h"
#include "influence/kfac.h"
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
  return std::move(solve_damped_many(model, train, {b}, o, c, stats).front());
}

double solver_damping(const SolverOptions& o) { return o.damping_set || o.solver != "gd" ? o.damping : kGdDamping; }

std::vector<std::vector<double>> solve_damped_many(Module& model, const data::ImageSet& train, const Block& bs,
                                                   const SolverOptions& given, const SolverContext& c,
                                                   std::map<std::string, double>& stats) {
  validate(given);
  SolverOptions o = given;
  o.damping = solver_damping(given);
  stats["damping"] = o.damping;
  if (bs.empty()) return {};
  auto pass = [&c](const std::string& stage) {
    PassOptions p;
    p.batch = c.batch;
    if (c.progress) p.progress = [&c, stage](int64_t d, int64_t t) { c.progress(stage, d, t); };
    return p;
  };
  const size_t q = bs.size();
  const std::string& s = o.solver;
  if (s == "kfac") {
    Kfac k = kfac_factors(model, train, c.fisher, pass("kfac"));
    Block v;
    for (const auto& b : bs) v.push_back(kfac_apply(k, b, o.damping));
    return v;
  }
  const auto diag = diagonal_fisher(model, train, c.fisher, pass("fisher"));
  auto diagonal_solve = [&](const std::vector<double>& b) {
    std::vector<double> v(b.size());
    for (size_t j = 0; j < b.size(); ++j) v[j] = b[j] / (diag[j] + o.damping);
    return v;
  };
  Block start;
  for (const auto& b : bs) start.push_back(diagonal_solve(b));
  if (s == "diag") return start;
  // (C + δI) x for every x of a block: one pass over the set for all of them.
  auto damped_fvp = [&](const data::ImageSet& set, const Block& xs) {
    PassOptions p;
    p.batch = c.batch;
    Block ys;
    if (o.curvature == "ggn") {
      for (const auto& x : xs) ys.push_back(ggn_vector_product(model, set, x, p));
    } else if (xs.size() == 1) {
      ys.push_back(fisher_vector_product(model, set, xs.front(), p));
    } else {
      ys = fisher_vector_products(model, set, xs, p);
    }
    for (size_t i = 0; i < xs.size(); ++i)
      for (size_t j = 0; j < xs[i].size(); ++j) ys[i][j] += o.damping * xs[i][j];
    return ys;
  };
  const double diag_max = *std::max_element(diag.begin(), diag.end()) + o.damping;
  if (s == "cg") {
    // Conjugate gradient on the full empirical Fisher, warm-started at the diagonal solve; each
    // right-hand side runs its own recurrence, and the ones not yet converged share a pass.
    Block x = start, r(q), p(q);
    std::vector<double> rr(q), bnorm(q);
    const Block ax = damped_fvp(train, x);
    for (size_t i = 0; i < q; ++i) {
      const auto& b = bs[i];
      bnorm[i] = std::sqrt(dot(b, b));
      r[i].resize(b.size());
      for (size_t j = 0; j < b.size(); ++j) r[i][j] = b[j] - ax[i][j];
      p[i] = r[i];
      rr[i] = dot(r[i], r[i]);
    }
    auto converged = [&](size_t i) { return !(std::sqrt(rr[i]) > 1e-6 * bnorm[i]); };
    int it = 0;
    for (it = 1; it <= o.iterations; ++it) {
      std::vector<size_t> active;
      for (size_t i = 0; i < q; ++i)
        if (!converged(i)) active.push_back(i);
      if (active.empty()) break;
      check_interrupt("at CG iteration {}", it);
      Block ps;
      for (size_t i : active) ps.push_back(p[i]);
      const Block aps = damped_fvp(train, ps);
      for (size_t a = 0; a < active.size(); ++a) {
        const size_t i = active[a];
        const auto& ap = aps[a];
        const double alpha = rr[i] / dot(p[i], ap);
        for (size_t j = 0; j < x[i].size(); ++j) {
          x[i][j] += alpha * p[i][j];
          r[i][j] -= alpha * ap[j];
        }
        const double rr_new = dot(r[i], r[i]);
        for (size_t j = 0; j < p[i].size(); ++j) p[i][j] = r[i][j] + rr_new / rr[i] * p[i][j];
        rr[i] = rr_new;
      }
      if (c.progress) c.progress("cg", it, o.iterations);
    }
    double worst = 0;
    for (size_t i = 0; i < q; ++i) worst = std::max(worst, std::sqrt(rr[i]) / bnorm[i]);
    stats["cg_iterations"] = it - 1;
    stats["cg_relative_residual"] = worst;
    return x;
  }
  // Stochastic solvers: Fisher-vector products on seeded random mini-batches of D, the same
  // mini-batch for every right-hand side.
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
    Block v = bs;
    for (int it = 1; it <= o.iterations; ++it) {
      check_interrupt("at LiSSA iteration {}", it);
      const Block hv = damped_fvp(minibatch(), v);
      for (size_t i = 0; i < q; ++i)
        for (size_t j = 0; j < v[i].size(); ++j) v[i][j] = bs[i][j] + v[i][j] - hv[i][j] / scale;
      if (c.progress) c.progress("lissa", it, o.iterations);
    }
    for (auto& vi : v)
      for (auto& x : vi) x /= scale;
    stats["lissa_scale"] = scale;
    return v;
  }
  if (s == "gd") {
    // Gradient descent on ½ vᵀ(F̂+δI)v − bᵀv from the diagonal solve.
    const double eta = o.gd_lr > 0 ? o.gd_lr : 1.0 / (10.0 * diag_max);
    Block v = start;
    for (int it = 1; it <= o.iterations; ++it) {
      check_interrupt("at gradient-descent iteration {}", it);
      const Block hv = damped_fvp(minibatch(), v);
      for (size_t i = 0; i < q; ++i)
        for (size_t j = 0; j < v[i].size(); ++j) v[i][j] -= eta * (hv[i][j] - bs[i][j]);
      if (c.progress) c.progress("gd", it, o.iterations);
    }
    stats["gd_lr"] = eta;
    return v;
  }
  throw UsageError(fmt::format("--solver: unknown solver '{}' (known: diag, kfac, cg, lissa, gd)", s));
}

}  // namespace lethe::repair
