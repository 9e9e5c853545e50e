#pragma once
// Rotations into and out of a Kronecker-factored layer's eigenbasis, for a batch of vectors at
// once, where the arrays live (kernels/backend.inc's strided-batched GEMMs and sums of squares,
// on the CPU or the GPU): EK-FAC's refit of the eigenvalues, its self-influence and its
// preconditioned queries (influence/ekfac_factors.h) are made of them.
//
// A layer's vector (a gradient, a query) is laid out as θ lays the layer out: the weight
// [out, in] row major, then the bias [out] if it has one. As a matrix it is V = [W | b],
// [out, a_dim] with a_dim = in + bias, and its rotation is Q_Gᵀ V Q_A for the eigenvectors
// Q_A [a_dim, a_dim] and Q_G [out, out] (columns, row major).
#include <cstdint>

#include "nn/tensor.h"

namespace lethe {

// A layer's shape and its eigenvectors in float on the device its vectors live on.
struct KroneckerBasis {
  int64_t out = 0, in = 0;
  bool bias = false;
  Tensor qa, qg;  // [a_dim, a_dim], [out, out]
  int64_t a_dim() const { return in + (bias ? 1 : 0); }
  int64_t params() const { return out * in + (bias ? out : 0); }  // a vector's length in θ
  int64_t rotated_size() const { return out * a_dim(); }
  Device device() const { return qa.device(); }
};

// T [n, out · a_dim], row i = Q_Gᵀ V_i Q_A, for n vectors of the layer `ld` floats apart from
// `v` (an array on the basis's device). Float GEMMs: the weight's right product with Q_A's
// first `in` rows and the bias column's with its last, then Q_Gᵀ on the left, each strided and
// batched over the n vectors.
Tensor rotate_into(const KroneckerBasis& b, const float* v, int64_t n, int64_t ld);
// Its inverse for rotated rows s [n, out · a_dim]: Q_G s_i Q_Aᵀ written as the layer's n
// vectors, `ld` floats apart from `out` (an array on the basis's device).
void rotate_out_of(const KroneckerBasis& b, const Tensor& s, float* out, int64_t ld);

// Λ += Σ_i (Q_Gᵀ d_i)(Q_Aᵀ ā_i)ᵀ squared entrywise, for a Linear layer's batch: its input a
// [n, in] and output gradient d [n, out] on the basis's device (ā_i = [a_i, 1] with a bias), acc
// [out · a_dim] doubles there. Its per-example gradient d_i ā_iᵀ is rank one, so this is
// (D Q_G)²ᵀ (Ā Q_A)²: float GEMMs, the batch's sum in float, added into acc in double.
void add_outer_product_moments(const KroneckerBasis& b, const Tensor& a, const Tensor& d, double* acc);

// t[i, j] *= s[j] for t [n, m] and s [m] on one device.
void scale_columns(Tensor& t, const Tensor& s);
// acc[j] += Σ_i t[i, j]² and acc[i] += Σ_j w[j] t[i, j]² for t [n, m], summed in double into
// acc, an array of doubles on t's device.
void add_column_squares(const Tensor& t, double* acc);
void add_weighted_row_squares(const Tensor& t, const Tensor& w, double* acc);

}  // namespace lethe
