#pragma once
// KFAC: the Fisher of each Linear/Conv2d layer approximated as A ⊗ G (Martens & Grosse 2015;
// Grosse & Martens 2016 for convolutions), with A = E[ā āᵀ] over layer inputs (ā carries a 1
// for the bias) and G = E[d dᵀ] over output gradients. Both factors are eigendecomposed in double
// precision, so damped inverses and powers cost two small matrix products per layer.
//
// BatchNorm2d (evaluation mode) has no Kronecker structure worth the name: its per-example
// gradient is two numbers per channel (Σ d x̂, Σ d). Its block is the exact Fisher restricted to
// each channel's pair (γ_c, β_c): a 2×2 matrix per channel, which keeps the strong γ/β coupling
// a diagonal would drop (both are sums of the same d) at 4 numbers a channel, and drops only
// the cross-channel terms, as KFAC drops cross-layer ones.
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "influence/quantities.h"

namespace lethe::repair {

struct KfacLayer {
  std::string name;
  int64_t offset = 0;       // weight's start in θ; the bias follows
  int64_t out = 0, in = 0;  // weight as [out, in]
  bool bias = false;
  int64_t a_dim() const { return in + (bias ? 1 : 0); }
  std::vector<double> A, G;            // normalised factors (row-major)
  std::vector<double> QA, lA, QG, lG;  // eigenvectors (columns) and eigenvalues
  // BatchNorm2d: out = channels, in = 0; per channel c the normalised 2×2 block over (γ_c, β_c)
  // (γ at offset + c, β at offset + out + c) as pairs[4c..4c+3], its eigenvectors (columns) in
  // QP[4c..] and eigenvalues in lP[2c..].
  bool channel_pairs = false;
  std::vector<double> pairs, QP, lP;
};

struct Kfac {
  std::vector<KfacLayer> layers;
  int64_t num_params = 0;
  // What kfac_factors spent on the pass gathering A and G, and on their eigendecompositions.
  double seconds_covariance = 0, seconds_eigendecomposition = 0;
};

// The layers of `model` as KFAC sees them (names, places in θ, shapes), with nothing computed;
// `num_params` receives θ's length.
std::vector<KfacLayer> kfac_layer_shapes(Module& model, int64_t& num_params);

// Factors over `set` (labels as `fisher` says), eigendecomposed.
Kfac kfac_factors(Module& model, const data::ImageSet& set, const FisherOptions& fisher = {}, const PassOptions& opt = {});

// (A ⊗ G + damping I)^power v per layer, for v laid out as θ; power -1 is the damped inverse.
std::vector<double> kfac_apply(const Kfac& kfac, const std::vector<double>& v, double damping, double power = -1.0);

// A BatchNorm layer's 2×2 blocks (pairs) eigendecomposed into QP and lP.
void decompose_pairs(KfacLayer& layer);

// One layer's share of kfac_apply: its segment of `out` set to (block + damping I)^power v.
void kfac_apply_layer(const KfacLayer& layer, const std::vector<double>& v, double damping, double power,
                      std::vector<double>& out);

// A Linear/Conv2d layer's segment of θ as the matrix [W | b] ([out, a_dim], row-major), and back.
std::vector<double> layer_matrix(const KfacLayer& layer, const std::vector<double>& v);
void set_layer_matrix(const KfacLayer& layer, const std::vector<double>& m, std::vector<double>& v);

// The diagonal of A ⊗ G (for an EWC anchor): diag(G)_o diag(A)_k.
std::vector<double> kfac_diagonal(const Kfac& kfac);

// (A ⊗ G) v without damping: the quadratic form's matrix-vector product, for a KFAC-EWC anchor.
std::vector<double> kfac_multiply(const Kfac& kfac, const std::vector<double>& v);

}  // namespace lethe::repair
