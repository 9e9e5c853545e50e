#include "influence/solve.h"

#include <algorithm>
#include <cmath>

#include <fmt/ranges.h>

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

// One damped solve's inputs (δ already resolved) and the pieces its solvers share: the
// diagonal Fisher, (C + δI) products over a block, and seeded mini-batches of D.
struct Problem {
  Module& model;
  const data::ImageSet& train;
  const Block& bs;
  const SolverOptions& o;
  const SolverContext& c;
  std::map<std::string, double>& stats;
  std::vector<double> diag;  // filled by diagonal_start()

  PassOptions pass(const std::string& stage) const {
    PassOptions p;
    p.batch = c.batch;
    if (c.progress) p.progress = [this, stage](int64_t d, int64_t t) { c.progress(stage, d, t); };
    return p;
  }

  // b / (diag(C) + δ) for every right-hand side: the diag solver's answer, the others' start.
  Block diagonal_start() {
    diag = diagonal_fisher(model, train, c.fisher, pass("fisher"));
    Block start;
    for (const auto& b : bs) {
      std::vector<double> v(b.size());
      for (size_t j = 0; j < b.size(); ++j) v[j] = b[j] / (diag[j] + o.damping);
      start.push_back(std::move(v));
    }
    return start;
  }
  double diag_max() const { return *std::max_element(diag.begin(), diag.end()) + o.damping; }

  // (C + δI) x for every x of a block: one pass over the set for all of them.
  Block damped_fvp(const data::ImageSet& set, const Block& xs) const {
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
  }

  // Stochastic solvers: products on seeded random mini-batches of D, the same mini-batch for
  // every right-hand side.
  data::ImageSet minibatch(Rng& rng) const {
    std::vector<int64_t> idx;
    const int64_t m = std::min(o.solver_batch, train.n);
    for (int64_t i = 0; i < m; ++i) idx.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(train.n))));
    return data::take(train, idx);
  }
};

Block solve_kfac(Problem& p) {
  Kfac k = kfac_factors(p.model, p.train, p.c.fisher, p.pass("kfac"));
  Block v;
  for (const auto& b : p.bs) v.push_back(kfac_apply(k, b, p.o.damping));
  return v;
}

Block solve_diag(Problem& p) { return p.diagonal_start(); }

// Conjugate gradient on the full empirical Fisher, warm-started at the diagonal solve; each
// right-hand side runs its own recurrence, and the ones not yet converged share a pass.
Block solve_cg(Problem& pr) {
  const size_t q = pr.bs.size();
  Block x = pr.diagonal_start(), r(q), p(q);
  std::vector<double> rr(q), bnorm(q);
  const Block ax = pr.damped_fvp(pr.train, x);
  for (size_t i = 0; i < q; ++i) {
    const auto& b = pr.bs[i];
    bnorm[i] = std::sqrt(dot(b, b));
    r[i].resize(b.size());
    for (size_t j = 0; j < b.size(); ++j) r[i][j] = b[j] - ax[i][j];
    p[i] = r[i];
    rr[i] = dot(r[i], r[i]);
  }
  auto converged = [&](size_t i) { return !(std::sqrt(rr[i]) > 1e-6 * bnorm[i]); };
  int it = 0;
  for (it = 1; it <= pr.o.iterations; ++it) {
    std::vector<size_t> active;
    for (size_t i = 0; i < q; ++i)
      if (!converged(i)) active.push_back(i);
    if (active.empty()) break;
    check_interrupt("at CG iteration {}", it);
    Block ps;
    for (size_t i : active) ps.push_back(p[i]);
    const Block aps = pr.damped_fvp(pr.train, ps);
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
    if (pr.c.progress) pr.c.progress("cg", it, pr.o.iterations);
  }
  double worst = 0;
  for (size_t i = 0; i < q; ++i) worst = std::max(worst, std::sqrt(rr[i]) / bnorm[i]);
  pr.stats["cg_iterations"] = it - 1;
  pr.stats["cg_relative_residual"] = worst;
  return x;
}

// v_{t+1} = b + v_t − (F̂_B + δI) v_t / scale; v = v_T / scale. The scale must exceed the
// operator's largest eigenvalue; the diagonal's maximum times a margin is a cheap bound proxy.
Block solve_lissa(Problem& p) {
  p.diagonal_start();
  const double scale = p.o.lissa_scale > 0 ? p.o.lissa_scale : 10.0 * p.diag_max();
  Rng rng = stream(p.c.seed, Stream::kSolverBatches);
  Block v = p.bs;
  for (int it = 1; it <= p.o.iterations; ++it) {
    check_interrupt("at LiSSA iteration {}", it);
    const Block hv = p.damped_fvp(p.minibatch(rng), v);
    for (size_t i = 0; i < v.size(); ++i)
      for (size_t j = 0; j < v[i].size(); ++j) v[i][j] = p.bs[i][j] + v[i][j] - hv[i][j] / scale;
    if (p.c.progress) p.c.progress("lissa", it, p.o.iterations);
  }
  for (auto& vi : v)
    for (auto& x : vi) x /= scale;
  p.stats["lissa_scale"] = scale;
  return v;
}

// Gradient descent on ½ vᵀ(F̂+δI)v − bᵀv from the diagonal solve.
Block solve_gd(Problem& p) {
  Block v = p.diagonal_start();
  const double eta = p.o.gd_lr > 0 ? p.o.gd_lr : 1.0 / (10.0 * p.diag_max());
  Rng rng = stream(p.c.seed, Stream::kSolverBatches);
  for (int it = 1; it <= p.o.iterations; ++it) {
    check_interrupt("at gradient-descent iteration {}", it);
    const Block hv = p.damped_fvp(p.minibatch(rng), v);
    for (size_t i = 0; i < v.size(); ++i)
      for (size_t j = 0; j < v[i].size(); ++j) v[i][j] -= eta * (hv[i][j] - p.bs[i][j]);
    if (p.c.progress) p.c.progress("gd", it, p.o.iterations);
  }
  p.stats["gd_lr"] = eta;
  return v;
}

struct NamedSolver {
  const char* name;
  Block (*solve)(Problem&);
};

// Every solver by name, in the order --help lists them.
constexpr NamedSolver kSolvers[] = {
    {"diag", solve_diag}, {"kfac", solve_kfac}, {"cg", solve_cg}, {"lissa", solve_lissa}, {"gd", solve_gd}};

const NamedSolver& find_solver(const std::string& name) {
  for (const auto& s : kSolvers)
    if (name == s.name) return s;
  throw UsageError(fmt::format("--solver: unknown solver '{}' (known: {})", name, linear_solver_names(", ")));
}

}  // namespace

const std::vector<std::string>& linear_solvers() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& s : kSolvers) n.emplace_back(s.name);
    return n;
  }();
  return names;
}

std::string linear_solver_names(const std::string& separator) {
  return fmt::format("{}", fmt::join(linear_solvers(), separator));
}

void validate(const SolverOptions& o) {
  find_solver(o.solver);
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

Block solve_damped_many(Module& model, const data::ImageSet& train, const Block& bs, const SolverOptions& given,
                        const SolverContext& c, std::map<std::string, double>& stats) {
  validate(given);
  SolverOptions o = given;
  o.damping = solver_damping(given);
  stats["damping"] = o.damping;
  if (bs.empty()) return {};
  Problem p{model, train, bs, o, c, stats, {}};
  return find_solver(o.solver).solve(p);
}

}  // namespace lethe::repair
