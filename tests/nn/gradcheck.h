#pragma once
// Central-difference gradient checks for float32 ops.
//
// The scalar probed is L(x) = sum_i w_i f(x)_i with fixed random weights w, accumulated in
// double on the host, so the only float32 error is in f itself. With step h the central
// difference has truncation error O(h^2 f''') and rounding error about eps_f32 * |f| / h; for
// the ops here (piecewise linear or smooth with O(1) derivatives) h = 1e-2 keeps both near
// 1e-4 relative to the gradient scale, so the checks use atol = rtol = 2e-3 unless a test says
// otherwise. Kinks (relu at 0, ties in max-pooling) are kept away from by construction.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "nn/autograd.h"
#include "nn/ops.h"
#include "util/rng.h"

namespace lethe::testing {

inline Tensor random_tensor(const Shape& shape, Rng& rng, double lo = -1.0, double hi = 1.0) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = static_cast<float>(rng.uniform(lo, hi));
  return Tensor::from_vector(shape, v);
}

// Values whose magnitude is at least `gap` (away from relu's kink).
inline Tensor random_away_from_zero(const Shape& shape, Rng& rng, double gap = 0.05) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) {
    const double m = rng.uniform(gap, 1.0);
    x = static_cast<float>(rng.uniform() < 0.5 ? -m : m);
  }
  return Tensor::from_vector(shape, v);
}

// A random permutation of evenly spaced values: all distinct, spaced `step` apart (no ties in
// max-pooling, even after a finite-difference nudge smaller than step/2).
inline Tensor distinct_values(const Shape& shape, Rng& rng, double step = 0.05) {
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((static_cast<double>(i) - v.size() / 2.0) * step);
  rng.shuffle(v);
  return Tensor::from_vector(shape, v);
}

struct GradCheckOptions {
  double h = 1e-2;
  double atol = 2e-3;
  double rtol = 2e-3;
  int max_coords = 40;  // coordinates probed per input (all when the input is smaller)
};

inline double weighted_sum(const Tensor& y, const std::vector<double>& w) {
  const auto v = y.to_vector();
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += w[i] * v[i];
  return s;
}

// Checks d/d(inputs[i]) of sum(w * f(inputs)) for every input that requires a gradient.
inline void expect_gradients_match(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                   std::vector<Tensor> inputs, Rng& rng, GradCheckOptions opt = {}) {
  Tensor y = f(inputs);
  std::vector<double> w(static_cast<size_t>(y.numel()));
  std::vector<float> wf(w.size());
  for (size_t i = 0; i < w.size(); ++i) wf[i] = static_cast<float>(w[i] = rng.uniform(-1.0, 1.0));
  for (auto& in : inputs) in.zero_grad();
  y.backward(Tensor::from_vector(y.shape(), wf, y.device()));

  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& in = inputs[k];
    if (!in.requires_grad()) continue;
    ASSERT_TRUE(in.grad().defined()) << "input " << k << " got no gradient";
    const auto analytic = in.grad().to_vector();
    const int64_t n = in.numel();
    std::vector<int64_t> coords;
    if (n <= opt.max_coords) {
      for (int64_t j = 0; j < n; ++j) coords.push_back(j);
    } else {
      for (int j = 0; j < opt.max_coords; ++j) coords.push_back(static_cast<int64_t>(rng.below(static_cast<uint64_t>(n))));
    }
    int mismatches = 0;
    for (int64_t j : coords) {
      NoGradGuard no_grad;
      float* p = in.data();
      const float saved = p[j];
      p[j] = saved + static_cast<float>(opt.h);
      const double plus = weighted_sum(f(inputs), w);
      p[j] = saved - static_cast<float>(opt.h);
      const double minus = weighted_sum(f(inputs), w);
      p[j] = saved;
      const double numeric = (plus - minus) / (2 * opt.h);
      const double got = analytic[static_cast<size_t>(j)];
      if (std::abs(got - numeric) > opt.atol + opt.rtol * std::abs(numeric) && mismatches++ < 5)
        ADD_FAILURE() << "input " << k << " coordinate " << j << ": analytic " << got << " vs numeric " << numeric;
    }
    EXPECT_EQ(mismatches, 0) << "input " << k << " of shape " << shape_str(in.shape());
  }
}

}  // namespace lethe::testing
