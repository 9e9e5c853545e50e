#pragma once
// Query vectors' Linear-layer blocks in factored form, for inner products with many queries.
//
// A Linear layer's per-example gradient is an outer product, g_i = d_i ā_iᵀ (output gradient and
// input, the input augmented by a 1 for the bias). When a query's block V_j of that layer has
// low rank, V_j ≈ Σ_k c_jk w_jkᵀ, its inner product with g_i is Σ_k (d_i · c_jk)(ā_i · w_jk):
// r (out + in + 1) multiply-adds instead of out (in + 1), and no example's gradient is formed.
// A query that is one example's gradient has rank one there (TRAK's, TracIn's and gradcos's
// queries); a rank-r query (`--query-rank`) has rank r. For the MNIST CNN's 1568 × 50 layer,
// three quarters of θ, a rank-one query costs 48 times less.
//
// The factors come from a modified Gram–Schmidt with pivoting on the block's rows, in double,
// stopped when the residual's Frobenius norm is at most kFactorTolerance of the block's: the
// inner products then differ from the formed ones by at most that fraction of |g_i| |V_j|
// (Cauchy–Schwarz), below the float rounding of a formed GEMM over the block (the products are
// float GEMMs over out and in + 1 terms, summed over the rank in double). A block whose float
// rounding is the only thing beyond rank one (a formed outer product) stops at rank one: that
// rounding is 2⁻²⁴ of its norm, 16 times below the tolerance.
//
// A layer is factored when every query's rank stays below the break-even rank, where the
// factored products cost half of the formed ones; otherwise (a preconditioned query of full rank,
// say) it keeps the engine's formed path. CPU only: on the GPU the captures stay on the device
// and every layer takes the engine's path.
#include <cstdint>
#include <vector>

#include "influence/per_example.h"

namespace lethe::repair {

// Residual tolerance of the factors, relative to the block's Frobenius norm: 2⁻²⁰.
inline constexpr double kFactorTolerance = 1.0 / (1 << 20);

class FactoredQueries {
 public:
  // Factors the q query vectors' blocks (row j at queries + j * ld, θ-indexed as the engine's
  // layout) for every Linear layer of the engine where that pays, as described above, for
  // products with `examples` training examples. Finding rank r costs about 3r/examples of the
  // formed products, so the rank tried is also capped at examples / 16 (at least 4): a
  // full-rank query of a wide layer is given up on early.
  FactoredQueries(const PerExampleEngine& engine, const float* queries, int64_t q, int64_t ld, int64_t examples);

  bool any() const { return !layers_.empty(); }
  // Per engine layer (kfac_blocks() order): 1 where the layer is factored, for
  // PerExampleEngine::accumulate(req, skip).
  const std::vector<char>& skip() const { return skip_; }
  // dots[i * q + j] += the factored layers' share of <g_i, v_j> for every example i of the
  // engine's current batch (after its backward pass).
  void accumulate(const PerExampleEngine& engine, double* dots) const;
  // Each factored layer's largest query rank, in layer order (for tests and reports).
  std::vector<int64_t> max_ranks() const;

  // One block M [rows, cols] (row-major, in double) as M ≈ C Wᵀ with C [rows, r] and W [cols, r]
  // stored as r columns each (c_k = C[:, k] at c + k * rows, w_k at w + k * cols), its residual
  // within kFactorTolerance of its norm. Returns r, or -1 when r would pass max_rank.
  static int64_t factor(const double* m, int64_t rows, int64_t cols, int64_t max_rank, std::vector<double>& c,
                        std::vector<double>& w);

 private:
  struct Layer {
    size_t index = 0;               // in the engine's layer order
    int64_t out = 0, in = 0;        // the weight [out, in]
    bool bias = false;
    std::vector<int64_t> first;     // query j's factors are columns [first[j], first[j + 1])
    std::vector<float> c, w, wb;    // [R, out], [R, in], the bias entries of w [R]
  };
  int64_t q_ = 0;
  std::vector<char> skip_;
  std::vector<Layer> layers_;
};

}  // namespace lethe::repair
