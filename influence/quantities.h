#pragma once
// Dataset-level per-example quantities: the engine run over a whole ImageSet in batches.
// Results do not depend on the batch size beyond float rounding (tests check it). Every function
// here evaluates the model in evaluation mode (BatchNorm with its running statistics) and
// restores its mode on return.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "nn/ops.h"
#include "util/rng.h"

namespace lethe::repair {

struct PassOptions {
  int64_t batch = 256;
  std::function<void(int64_t done, int64_t total)> progress;  // examples processed
};

// Which labels the Fisher's gradients use: the given ones (empirical Fisher) or labels drawn
// from the model's predictive distribution (the true Fisher, Monte Carlo).
enum class FisherKind { Empirical, Sampled };
FisherKind parse_fisher_kind(const std::string& name);  // empirical | sampled
std::string fisher_kind_name(FisherKind kind);          // its inverse

struct FisherOptions {
  FisherKind kind = FisherKind::Empirical;
  int mc_samples = 1;  // label draws per example (Sampled)
  uint64_t seed = 0;
};

// Labels drawn from softmax(logits) row by row (for the sampled Fisher).
Labels sample_labels(const Tensor& logits, Rng& rng);

// ℓ(z_i; θ) for every example, forward passes only.
std::vector<float> per_example_losses(Module& model, const data::ImageSet& set, const PassOptions& opt = {});

// ∇ℓ(S; θ) = Σ_{z in S} ∇ℓ(z; θ), flattened (ParamLayout order).
std::vector<double> summed_gradient(Module& model, const data::ImageSet& set, const PassOptions& opt = {});

// Per-example gradients of examples [begin, end) as rows of a [(end-begin), P] matrix.
std::vector<float> per_example_gradients(Module& model, const data::ImageSet& set, int64_t begin, int64_t end,
                                         const PassOptions& opt = {});
// The same written to `out` (room for (end - begin) × P floats; every entry is written).
void per_example_gradients(Module& model, const data::ImageSet& set, int64_t begin, int64_t end, float* out,
                           const PassOptions& opt = {});

// A block of query vectors as the products read them: q rows of p floats, row-major. Gradients
// come out of the engine in float and the products with D are float GEMMs, so a block kept in
// this form alone takes 4 bytes a parameter where a Block of doubles and its float copy take 12.
struct QueryRows {
  int64_t q = 0, p = 0;
  std::unique_ptr<float[]> values;  // q × p, not zeroed when made
  QueryRows() = default;
  QueryRows(int64_t rows, int64_t cols);
  float* row(int64_t j) { return values.get() + j * p; }
  const float* row(int64_t j) const { return values.get() + j * p; }
};

// <∇ℓ(z_i), v_j> for every example i and query j: queries is [q, P]; result [n, q] (row-major).
std::vector<double> per_example_dots(Module& model, const data::ImageSet& set, const std::vector<float>& queries,
                                     int64_t q, const PassOptions& opt = {});
// The same with the queries at `queries` (q rows of P floats).
std::vector<double> per_example_dots(Module& model, const data::ImageSet& set, const float* queries, int64_t q,
                                     const PassOptions& opt = {});

// ||∇ℓ(z_i)||² for every example.
std::vector<double> per_example_sq_norms(Module& model, const data::ImageSet& set, const PassOptions& opt = {});
// Σ_j w_j g_ij² for every example: its squared norm under the diagonal metric w (P values), in
// one pass layer by layer where the model lives (influence/layer_walk.h): a Linear layer's from
// its capture, Σ_{o,c} d_io² W_oc ā_ic² (no gradient formed), any other layer's from its gradients
// formed a batch at a time with its weights rounded to float, the squares summed in double.
std::vector<double> per_example_weighted_sq_norms(Module& model, const data::ImageSet& set, const std::vector<double>& w,
                                                  const PassOptions& opt = {});

// Diagonal Fisher (1/N) Σ_i E[g_i ∘ g_i], over P parameters. When `losses` is given it also
// receives ℓ(z_i; θ) for every example, which the same forward pass computes anyway.
std::vector<double> diagonal_fisher(Module& model, const data::ImageSet& set, const FisherOptions& fisher = {},
                                    const PassOptions& opt = {}, std::vector<float>* losses = nullptr);

// Empirical-Fisher-vector product (1/N) Σ_i g_i <g_i, v>: one forward and two backward passes a batch.
std::vector<double> fisher_vector_product(Module& model, const data::ImageSet& set, const std::vector<double>& v,
                                          const PassOptions& opt = {});

// The same for several vectors in one pass: each batch's per-example gradients G are formed once
// and multiplied twice, Gᵀ (G V), instead of a second backward pass per vector.
std::vector<std::vector<double>> fisher_vector_products(Module& model, const data::ImageSet& set,
                                                        const std::vector<std::vector<double>>& vs,
                                                        const PassOptions& opt = {});

// Gauss-Newton-vector product (1/N) Σ_i J_iᵀ H_i J_i v, H_i the softmax cross-entropy's Hessian
// in the logits (diag(p) − p pᵀ): the true Fisher's product, exact rather than sampled. When
// `loss_derivatives` is given it also receives <∇ℓ(z_i), v> = (p_i − y_i)ᵀ J_i v for every example,
// which the same forward derivatives give.
std::vector<double> ggn_vector_product(Module& model, const data::ImageSet& set, const std::vector<double>& v,
                                       const PassOptions& opt = {}, std::vector<double>* loss_derivatives = nullptr);

}  // namespace lethe::repair
