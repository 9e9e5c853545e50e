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
#include "influence/quantities.h"

namespace lethe::repair {

struct TrakOptions {
  int64_t proj_dim = 2048;  // k
  bool project = true;      // false: φ is the whole gradient (k = P), for checks on small models
  // dense: one JL matrix over all of θ, applied to each formed per-example gradient.
  // kron: k shared among the layers in proportion to their parameters; a Linear layer's share
  //   is a Kronecker product R_out ⊗ R_in applied to its captured output gradient δ and input ā
  //   (its per-example gradient δ āᵀ is rank one, so (R_outᵀδ)(R_inᵀā)ᵀ is exact and costs
  //   (out + in) per dimension pair instead of out · in), the other layers' shares dense JL
  //   matrices over their segments; a layer whose share covers its parameters is kept whole.
  //   The total is about k (shares rounded to whole k_out × k_in products). Cheaper, but a Kronecker product of two k'-dimensional JL
  //   matrices keeps inner products of rank-one gradients only to about √(2/k_out + 2/k_in).
  std::string projection = "dense";
  uint64_t seed = 0;        // the projection's
  double damping = 0;       // K + damping · mean eigenvalue(K) · I
  // dense: floats of per-example gradients formed at once to be projected (0: nn's
  // kProjectedGradientBudget, 4 GiB); a batch past it is projected a chunk of examples at a
  // time, with the same features to the bit on the CPU.
  int64_t gradient_budget = 0;
};

// Refuses (UsageError naming the flag) a k outside [1, 65536] or an unknown projection.
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
