// Rotations into and out of a Kronecker eigenbasis (nn/eigenbasis.h) against a double-precision
// rotation written here: vectors in θ's layout of a layer (weight, then bias), rows wider than
// the layer (the gaps neither read nor written), with and without a bias; the inverse rotation;
// the sums of squares; and, where a GPU is usable, the same on the GPU against the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/device.h"
#include "nn/eigenbasis.h"
#include "nn/linalg.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe {
namespace {

std::vector<float> uniform(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.uniform(-1, 1));
  return v;
}

// An orthonormal basis of R^n (columns, row major): the eigenvectors of a random symmetric matrix.
std::vector<double> orthonormal(int64_t n, uint64_t seed) {
  const auto r = uniform(n * n, seed);
  std::vector<double> a(static_cast<size_t>(n * n)), w;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) a[i * n + j] = r[i * n + j] + r[j * n + i];
  symmetric_eigen(n, a, w);
  return a;
}

struct Layer {
  int64_t out, in;
  bool bias;
  int64_t a_dim() const { return in + (bias ? 1 : 0); }
  int64_t len() const { return out * in + (bias ? out : 0); }
};

KroneckerBasis basis_on(const Layer& l, const std::vector<double>& qa, const std::vector<double>& qg, Device dev) {
  const std::vector<float> fa(qa.begin(), qa.end()), fg(qg.begin(), qg.end());
  return {l.out, l.in, l.bias, Tensor::from_vector({l.a_dim(), l.a_dim()}, fa, dev),
          Tensor::from_vector({l.out, l.out}, fg, dev)};
}

// Q_Gᵀ V Q_A in double for the vector at v (θ's layout of the layer).
std::vector<double> rotated_in_double(const Layer& l, const float* v, const std::vector<double>& qa,
                                      const std::vector<double>& qg) {
  const int64_t ad = l.a_dim();
  std::vector<double> mat(static_cast<size_t>(l.out * ad));
  for (int64_t o = 0; o < l.out; ++o) {
    for (int64_t k = 0; k < l.in; ++k) mat[o * ad + k] = v[o * l.in + k];
    if (l.bias) mat[o * ad + l.in] = v[l.out * l.in + o];
  }
  return matmul_f64(false, false, l.out, ad, ad, matmul_f64(true, false, l.out, ad, l.out, qg, mat), qa);
}

// The largest |got − want| over the largest |want|.
double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, scale = 0;
  for (size_t j = 0; j < want.size(); ++j) {
    diff = std::max(diff, std::abs(got[j] - want[j]));
    scale = std::max(scale, std::abs(want[j]));
  }
  return diff / scale;
}

void expect_rotations_match(const Layer& l, Device dev) {
  SCOPED_TRACE("layer [" + std::to_string(l.out) + ", " + std::to_string(l.in) + (l.bias ? " + 1]" : "]"));
  const int64_t n = 3, ld = l.len() + 5, m = l.out * l.a_dim();
  const double tol = 5e-7 * static_cast<double>(l.a_dim() + l.out);
  const auto qa = orthonormal(l.a_dim(), 1), qg = orthonormal(l.out, 2);
  const KroneckerBasis b = basis_on(l, qa, qg, dev);
  const auto v = uniform(n * ld, 3);
  const Tensor vd = Tensor::from_vector({n, ld}, v, dev);
  const Tensor t = rotate_into(b, vd.data(), n, ld);
  ASSERT_EQ(t.size(0), n);
  ASSERT_EQ(t.size(1), m);
  const auto got = t.to_vector();
  for (int64_t i = 0; i < n; ++i) {
    const auto want = rotated_in_double(l, v.data() + i * ld, qa, qg);
    // Float GEMMs over a_dim and out terms: rounding that grows with their lengths (~u·K).
    EXPECT_LT(relative_error({got.begin() + i * m, got.begin() + (i + 1) * m}, want), tol) << "vector " << i;
  }
  // The bases are orthonormal, so rotating back gives each vector again, and the gaps between
  // the rows keep what they held.
  Tensor back = Tensor::full({n, ld}, 7.0f, dev);
  rotate_out_of(b, t, back.data(), ld);
  const auto round_trip = back.to_vector();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < ld; ++j) {
      const float x = round_trip[i * ld + j];
      if (j < l.len())
        EXPECT_NEAR(x, v[i * ld + j], tol) << "vector " << i << " entry " << j;
      else
        EXPECT_EQ(x, 7.0f) << "gap " << j << " of row " << i << " written";
    }
  // Sums of squares in double: each column's over the rows, each row's weighted.
  std::vector<double> cols(static_cast<size_t>(m), 1.0), rows(static_cast<size_t>(n), 2.0);
  const auto w = uniform(m, 4);
  Tensor wd = Tensor::from_vector({m}, w, dev);
  const auto host = t.to_vector();
  std::vector<double> want_cols = cols, want_rows = rows;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      const double x = host[i * m + j];
      want_cols[j] += x * x;
      want_rows[i] += w[j] * x * x;
    }
  if (dev == Device::CPU) {
    add_column_squares(t, cols.data());
    add_weighted_row_squares(t, wd, rows.data());
  } else {
    // Device arrays of doubles: through device memory and back.
    void* dc = device::cuda_alloc(cols.size() * sizeof(double));
    void* dr = device::cuda_alloc(rows.size() * sizeof(double));
    device::copy_host_to_cuda(dc, cols.data(), cols.size() * sizeof(double));
    device::copy_host_to_cuda(dr, rows.data(), rows.size() * sizeof(double));
    add_column_squares(t, static_cast<double*>(dc));
    add_weighted_row_squares(t, wd, static_cast<double*>(dr));
    device::copy_cuda_to_host(cols.data(), dc, cols.size() * sizeof(double));
    device::copy_cuda_to_host(rows.data(), dr, rows.size() * sizeof(double));
    device::cuda_free(dc);
    device::cuda_free(dr);
  }
  for (int64_t j = 0; j < m; ++j) EXPECT_NEAR(cols[j], want_cols[j], 1e-12 * want_cols[j]) << "column " << j;
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(rows[i], want_rows[i], 1e-12 * std::abs(want_rows[i]) + 1e-12) << "row " << i;
  // Scaling the columns: each entry times its column's scale, one rounding.
  Tensor scaled = Tensor::from_vector({n, m}, host, dev);
  scale_columns(scaled, wd);
  const auto s = scaled.to_vector();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) EXPECT_EQ(s[i * m + j], host[i * m + j] * w[j]);
}

TEST(Eigenbasis, RotationsMatchTheDoubleRotationAndInvertOnTheCpu) {
  for (const Layer& l : {Layer{5, 7, true}, Layer{4, 9, false}, Layer{1, 3, true}, Layer{6, 1, true}})
    expect_rotations_match(l, Device::CPU);
}

TEST(CudaEigenbasis, RotationsMatchTheCpuReference) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  for (const Layer& l : {Layer{5, 7, true}, Layer{4, 9, false}, Layer{64, 576, false}, Layer{32, 800, true}})
    expect_rotations_match(l, Device::CUDA);
}

TEST(Eigenbasis, RowsOfAnotherLayerAreRefused) {
  const Layer l{3, 4, true};
  const KroneckerBasis b = basis_on(l, orthonormal(5, 5), orthonormal(3, 6), Device::CPU);
  Tensor wrong = Tensor::zeros({2, 14});
  std::vector<float> out(64);
  EXPECT_THROW(rotate_out_of(b, wrong, out.data(), 16), Error);
  Tensor right = Tensor::zeros({2, 15});
  EXPECT_THROW(rotate_out_of(b, right, out.data(), 10), Error);  // rows narrower than the layer
  EXPECT_NO_THROW(rotate_out_of(b, right, out.data(), 16));
}

}  // namespace
}  // namespace lethe
