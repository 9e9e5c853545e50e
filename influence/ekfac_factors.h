#pragma once
// EK-FAC (George et al. 2018): KFAC's eigenbases with the eigenvalues refitted. KFAC approximates
// a Linear/Conv2d layer's Fisher block by A ⊗ G, whose eigenbasis is Q_G ⊗ Q_A and whose
// eigenvalues are the products λ_G,o λ_A,k. EK-FAC keeps the basis and replaces each product by
// the second moment of the per-example gradients along that eigenvector,
//   Λ[o,k] = (1/N) Σ_i ((Q_Gᵀ g_i Q_A)[o,k])²,   g_i the layer's gradient as [out, in + bias],
// which is the diagonal of Qᵀ F Q: of all matrices diagonal in that basis it is the one nearest
// the empirical Fisher F in Frobenius norm. A Linear layer's g_i = d_i āᵢᵀ is rank one, so its
// rotation is (Q_Gᵀ d_i)(Q_Aᵀ ā_i)ᵀ and Λ = (D Q_G)²ᵀ (Ā Q_A)² over a batch, no g_i formed; a
// Conv2d layer's g_i = Σ_t d_it ā_itᵀ is materialised a batch at a time and rotated. Both run
// where the model lives (float GEMMs of nn/eigenbasis.h, the squares summed in double there):
// on the GPU no per-example gradient crosses to the host, only Λ at the end of the pass.
// BatchNorm2d keeps KFAC's exact 2×2 block per channel: there is nothing to refit.
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "influence/kfac.h"
#include "influence/quantities.h"

namespace lethe::repair {

struct Ekfac {
  Kfac basis;  // per layer: Q_A, Q_G (A, G, λ_A, λ_G as KFAC left them), or BatchNorm's 2×2 blocks
  std::vector<std::vector<double>> lambda;  // per layer: Λ as [out, a_dim]; empty for BatchNorm
  int64_t examples = 0;                     // N, the examples Λ averages over
  double seconds_lambda = 0;                // the refitting pass (basis holds the others)
};

// KFAC's factors over `set`, then one more pass refitting Λ in their eigenbases. Conv2d layers'
// per-example gradients are formed in batches of at most opt.batch examples, fewer where a batch
// of whole gradients (batch × P floats) would pass 256 MiB (nn's kMaterialisedGradientBudget).
Ekfac ekfac_factors(Module& model, const data::ImageSet& set, const FisherOptions& fisher = {},
                    const PassOptions& opt = {});

// What the ekfac method adds to the damping δ: a relative part, and where its factors are
// saved or read.
struct EkfacOptions {
  double relative_damping = 0;  // δ_l = δ + this × the mean refitted eigenvalue of layer l
  std::string save_factors;     // factors written here (safetensors)
  std::string load_factors;     // and read from here instead of being computed
};

// (F_ekfac + δ_l I)⁻¹ v per layer, v laid out as θ: Q ((Qᵀ v) / (Λ + δ_l)) Qᵀ with
// δ_l = damping + relative_damping · mean(Λ_l) (mean of the 2×2 blocks' eigenvalues for
// BatchNorm). Fails unless damping > 0 and relative_damping >= 0.
std::vector<double> ekfac_apply(const Ekfac& e, const std::vector<double>& v, double damping,
                                double relative_damping = 0);

// The same for a block of vectors, in float, on `device` (where the model lives): each layer's
// rotations are strided-batched float GEMMs over the block. The per-query scores work this way
// (`lethe attribute`, the benchmark; through ekfac_apply_rows): the query gradients are float to
// begin with and their products with D are float GEMMs after, and the rotations in double cost
// twice as long (for ResNet-9 about 20 GFLOP a query). Agrees with ekfac_apply to float rounding
// amplified by the inverse's conditioning (tests bound it). BatchNorm's 2×2 blocks are applied
// on the host.
std::vector<std::vector<double>> ekfac_apply_block(const Ekfac& e, const std::vector<std::vector<double>>& vs,
                                                   double damping, double relative_damping = 0,
                                                   Device device = Device::CPU);
// The same in place on a block kept as float rows (what `lethe attribute` scores with): no
// double copy of the block is made, so a query costs 4 bytes a parameter. BatchNorm's blocks are
// applied in double and rounded back to float.
void ekfac_apply_rows(const Ekfac& e, QueryRows& vs, double damping, double relative_damping = 0,
                      Device device = Device::CPU);

// Every example's gᵀ (F_ekfac + δ_l I)⁻¹ g, g its loss gradient (given labels), in one pass over
// `set` without forming a matrix over D: the squared entries of each layer's rotated gradient
// Q_Gᵀ g Q_A weighted by 1 / (Λ + δ_l), BatchNorm's pairs through their 2×2 blocks. Equal to
// gᵀ ekfac_apply(e, g, damping, relative_damping) (the self-influence's magnitude).
std::vector<double> ekfac_self_influence(Module& model, const data::ImageSet& set, const Ekfac& e, double damping,
                                         double relative_damping = 0, const PassOptions& opt = {});
// KFAC's factors as EK-FAC's with Λ = λ_G ⊗ λ_A, so (KFAC + δI)⁻¹ quantities go the same way.
Ekfac kfac_as_ekfac(const Kfac& kfac);

// Factors as safetensors: per layer k "k.QA", "k.QG", "k.lambda" (BatchNorm: "k.pairs"), with
// the model's layer layout and a checksum of its parameters and buffers in the metadata.
void save_ekfac(const std::string& path, const Ekfac& e, Module& model);
// Reads factors saved by save_ekfac; refuses (one line naming the file) a file of another
// model: other layers or shapes, other parameters or buffers, or another number of examples
// when `examples` is not 0.
Ekfac load_ekfac(const std::string& path, Module& model, int64_t examples = 0);

}  // namespace lethe::repair
