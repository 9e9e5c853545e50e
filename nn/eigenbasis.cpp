#include "nn/eigenbasis.h"

#include "kernels/backend.h"
#include "util/error.h"

namespace lethe {
namespace {

void check_rows(const KroneckerBasis& b, const Tensor& t, const char* what) {
  LETHE_CHECK(t.dim() == 2 && t.size(1) == b.rotated_size() && t.device() == b.device(),
              "{}: rows of {} values on the basis's device for a [{}, {}] layer", what,
              t.dim() == 2 ? t.size(1) : -1, b.out, b.a_dim());
}

}  // namespace

Tensor rotate_into(const KroneckerBasis& b, const float* v, int64_t n, int64_t ld) {
  const int64_t ad = b.a_dim(), m = b.rotated_size();
  LETHE_CHECK(n >= 0 && ld >= b.params(), "rotate_into: {} vectors {} floats apart", n, ld);
  const Device dev = b.device();
  Tensor right = Tensor::empty({n, m}, dev), t = Tensor::empty({n, m}, dev);
  if (n == 0) return t;
  LETHE_DISPATCH(dev, gemm_strided_batched, false, false, b.out, ad, b.in, 1.0f, v, b.in, ld, b.qa.data(), ad, 0, 0.0f,
                 right.data(), ad, m, n);
  if (b.bias)
    LETHE_DISPATCH(dev, gemm_strided_batched, false, false, b.out, ad, 1, 1.0f, v + b.out * b.in, 1, ld,
                   b.qa.data() + b.in * ad, ad, 0, 1.0f, right.data(), ad, m, n);
  LETHE_DISPATCH(dev, gemm_strided_batched, true, false, b.out, ad, b.out, 1.0f, b.qg.data(), b.out, 0, right.data(), ad,
                 m, 0.0f, t.data(), ad, m, n);
  return t;
}

void rotate_out_of(const KroneckerBasis& b, const Tensor& s, float* out, int64_t ld) {
  check_rows(b, s, "rotate_out_of");
  const int64_t ad = b.a_dim(), m = b.rotated_size(), n = s.size(0);
  LETHE_CHECK(ld >= b.params(), "rotate_out_of: vectors {} floats apart", ld);
  if (n == 0) return;
  const Device dev = b.device();
  Tensor left = Tensor::empty({n, m}, dev);
  LETHE_DISPATCH(dev, gemm_strided_batched, false, false, b.out, ad, b.out, 1.0f, b.qg.data(), b.out, 0, s.data(), ad, m,
                 0.0f, left.data(), ad, m, n);
  LETHE_DISPATCH(dev, gemm_strided_batched, false, true, b.out, b.in, ad, 1.0f, left.data(), ad, m, b.qa.data(), ad, 0,
                 0.0f, out, b.in, ld, n);
  if (b.bias)
    LETHE_DISPATCH(dev, gemm_strided_batched, false, true, b.out, 1, ad, 1.0f, left.data(), ad, m,
                   b.qa.data() + b.in * ad, ad, 0, 0.0f, out + b.out * b.in, 1, ld, n);
}

void add_outer_product_moments(const KroneckerBasis& b, const Tensor& a, const Tensor& d, double* acc) {
  const int64_t n = a.dim() > 0 ? a.size(0) : 0, ad = b.a_dim();
  LETHE_CHECK(a.numel() == n * b.in && d.numel() == n * b.out && a.device() == b.device() && d.device() == b.device(),
              "add_outer_product_moments: {} inputs and {} output gradients for {} examples of a [{}, {}] layer",
              a.numel(), d.numel(), n, b.out, b.in);
  if (n == 0) return;
  const Device dev = b.device();
  Tensor ar = Tensor::empty({n, ad}, dev), dr = Tensor::empty({n, b.out}, dev), s = Tensor::empty({b.out, ad}, dev);
  LETHE_DISPATCH(dev, gemm, false, false, n, ad, b.in, 1.0f, a.data(), b.in, b.qa.data(), ad, 0.0f, ar.data(), ad);
  if (b.bias) LETHE_DISPATCH(dev, add_row_bias, n, ad, b.qa.data() + b.in * ad, ar.data());  // the constant 1's row
  LETHE_DISPATCH(dev, gemm, false, false, n, b.out, b.out, 1.0f, d.data(), b.out, b.qg.data(), b.out, 0.0f, dr.data(),
                 b.out);
  LETHE_DISPATCH(dev, mul, n * ad, ar.data(), ar.data(), ar.data());
  LETHE_DISPATCH(dev, mul, n * b.out, dr.data(), dr.data(), dr.data());
  LETHE_DISPATCH(dev, gemm, true, false, b.out, ad, n, 1.0f, dr.data(), b.out, ar.data(), ad, 0.0f, s.data(), ad);
  LETHE_DISPATCH(dev, add_to_double, b.out * ad, s.data(), acc);
}

void scale_columns(Tensor& t, const Tensor& s) {
  LETHE_CHECK(t.dim() == 2 && s.numel() == t.size(1) && s.device() == t.device(),
              "scale_columns: {} scales for rows of {}", s.numel(), t.dim() == 2 ? t.size(1) : -1);
  LETHE_DISPATCH(t.device(), scale_columns, t.size(0), t.size(1), t.data(), s.data(), t.data());
}

void add_column_squares(const Tensor& t, double* acc) {
  LETHE_CHECK(t.dim() == 2, "add_column_squares: a matrix, not {} dimensions", t.dim());
  LETHE_DISPATCH(t.device(), add_column_squares, t.size(0), t.size(1), t.data(), acc);
}

void add_weighted_row_squares(const Tensor& t, const Tensor& w, double* acc) {
  LETHE_CHECK(t.dim() == 2 && w.numel() == t.size(1) && w.device() == t.device(),
              "add_weighted_row_squares: {} weights for rows of {}", w.numel(), t.dim() == 2 ? t.size(1) : -1);
  LETHE_DISPATCH(t.device(), add_weighted_row_squares, t.size(0), t.size(1), t.data(), w.data(), acc);
}

}  // namespace lethe
