#pragma once
// TRAK (Park et al. 2023): attribution by a linear model in a random projection of the
// per-example gradients. Each example's gradient of the margin f(z) = log p_y − log(1 − p_y) is
// projected to k dimensions by a seeded Johnson–Lindenstrauss matrix (nn/linalg.h jl_project,
// regenerated block by block, never stored), φ_i = Rᵀ∇f(z_i); the after-kernel K = ΦᵀΦ over D is
// inverted in double, and a query q's attribution to z_i is τ_q(z_i) = φ_qᵀ K⁻¹ φ_i (1 − p_i).
//
// The margin depends on the logits through p_y alone, as the loss ℓ = −log p_y does, so
// ∇f = −∇ℓ / (1 − p_y): the projected margin gradient is the projected loss gradient ψ = Rᵀ∇ℓ
// rescaled per example, and τ_q(z_i) = φ_qᵀ K⁻¹ (−ψ_i). lethe's score r = −τ (a cause of q's
// loss scores high), the same sign as linear influence's −∇ℓ(z)ᵀ H⁻¹ ∇ℓ(q).
//
// K is k × k. Where k exceeds the examples n, its rank is at most n and the same scores come
// from the n × n Gram matrix, Φ K⁺ = (ΦΦᵀ)⁺ Φ; either is inverted on its eigenvalues above
// 1e-10 of the largest (a pseudo-inverse), plus an optional relative damping.
#include <cstdint>
#include <functional>
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "repair/quantities.h"

namespace lethe::repair {

struct TrakOptions {
  int64_t proj_dim = 2048;  // k
  bool project = true;      // false: φ is the whole gradient (k = P), for checks on small models
  uint64_t seed = 0;        // the projection's
  double damping = 0;       // K + damping · mean eigenvalue(K) · I
};

// Refuses (UsageError naming --proj-dim) a k outside [1, 65536].
void validate(const TrakOptions& o);

// The projected loss gradients ψ_i [n, k] of a set and 1 − p_i, p_i the probability of z_i's label.
struct TrakFeatures {
  int64_t n = 0, k = 0;
  std::vector<float> psi;
  std::vector<double> one_minus_p;
};
TrakFeatures trak_features(Module& model, const data::ImageSet& set, const TrakOptions& o, const PassOptions& opt = {});

// r_q(z_i) = −τ_q(z_i) for every query q (rows) and example z_i of D (columns).
std::vector<std::vector<double>> trak_scores(const TrakFeatures& train, const TrakFeatures& queries,
                                             const TrakOptions& o);

}  // namespace lethe::repair
