#include "influence/factored_queries.h"

#include <algorithm>
#include <cmath>

#include "nn/linalg.h"
#include "util/error.h"

namespace lethe::repair {

int64_t FactoredQueries::factor(const double* m, int64_t rows, int64_t cols, int64_t max_rank, std::vector<double>& c,
                                std::vector<double>& w) {
  c.clear(), w.clear();
  std::vector<double> r(m, m + rows * cols), norm2(static_cast<size_t>(rows));
  double total = 0;
  for (int64_t t = 0; t < rows * cols; ++t) total += r[t] * r[t];
  const double tolerance2 = kFactorTolerance * kFactorTolerance * total;
  for (int64_t rank = 0;; ++rank) {
    // The residual's norm is recomputed, not downdated: the stopping test is on what is left.
    double residual = 0;
    for (int64_t o = 0; o < rows; ++o) {
      double s = 0;
      for (int64_t k = 0; k < cols; ++k) s += r[o * cols + k] * r[o * cols + k];
      residual += norm2[static_cast<size_t>(o)] = s;
    }
    if (residual <= tolerance2) return rank;
    if (rank == max_rank) return -1;
    // The largest remaining row, normalised, is the next direction w_k; c_k = R w_k; R -= c_k w_kᵀ.
    const int64_t pivot = std::max_element(norm2.begin(), norm2.end()) - norm2.begin();
    const double scale = 1.0 / std::sqrt(norm2[static_cast<size_t>(pivot)]);
    const size_t w0 = w.size();
    for (int64_t k = 0; k < cols; ++k) w.push_back(r[pivot * cols + k] * scale);
    for (int64_t o = 0; o < rows; ++o) {
      double s = 0;
      for (int64_t k = 0; k < cols; ++k) s += r[o * cols + k] * w[w0 + k];
      c.push_back(s);
      for (int64_t k = 0; k < cols; ++k) r[o * cols + k] -= s * w[w0 + k];
    }
  }
}

FactoredQueries::FactoredQueries(const PerExampleEngine& engine, const float* queries, int64_t q, int64_t ld,
                                 int64_t examples)
    : q_(q) {
  const auto shapes = engine.layer_shapes();
  skip_.assign(shapes.size(), 0);
  if (q < 1 || engine.on_gpu()) return;
  for (size_t k = 0; k < shapes.size(); ++k) {
    const auto& s = shapes[k];
    if (!s.outer_product) continue;
    const int64_t cols = s.in + (s.bias ? 1 : 0);
    // Break-even: r (out + in + 1) against out (in + 1), the factored path taken at half or less.
    const int64_t max_rank = std::min(s.out * cols / (2 * (s.out + cols)), std::max<int64_t>(4, examples / 16));
    if (max_rank < 1) continue;
    std::vector<std::vector<double>> cs(static_cast<size_t>(q)), ws(static_cast<size_t>(q));
    bool too_high = false;
    std::vector<double> block(static_cast<size_t>(s.out * cols));
    for (int64_t j = 0; j < q && !too_high; ++j) {
      const float* v = queries + j * ld + s.offset;
      for (int64_t o = 0; o < s.out; ++o) {
        for (int64_t i = 0; i < s.in; ++i) block[o * cols + i] = v[o * s.in + i];
        if (s.bias) block[o * cols + s.in] = v[s.out * s.in + o];
      }
      too_high = factor(block.data(), s.out, cols, max_rank, cs[j], ws[j]) < 0;
    }
    if (too_high) continue;
    Layer layer;
    layer.index = k, layer.out = s.out, layer.in = s.in, layer.bias = s.bias;
    layer.first.assign(1, 0);
    for (int64_t j = 0; j < q; ++j) {
      const auto& c = cs[j];
      const auto& w = ws[j];
      const int64_t rank = static_cast<int64_t>(c.size()) / s.out;
      for (int64_t t = 0; t < rank; ++t) {
        layer.c.insert(layer.c.end(), c.begin() + t * s.out, c.begin() + (t + 1) * s.out);
        layer.w.insert(layer.w.end(), w.begin() + t * cols, w.begin() + t * cols + s.in);
        layer.wb.push_back(s.bias ? static_cast<float>(w[t * cols + s.in]) : 0.0f);
      }
      layer.first.push_back(layer.first.back() + rank);
    }
    skip_[k] = 1;
    layers_.push_back(std::move(layer));
  }
}

void FactoredQueries::accumulate(const PerExampleEngine& engine, double* dots) const {
  std::vector<float> a, d;
  for (const Layer& l : layers_) {
    LETHE_CHECK(engine.linear_capture(l.index, a, d), "factored queries: layer {} is not a Linear layer", l.index);
    const int64_t n = static_cast<int64_t>(d.size()) / l.out, rank = l.first.back();
    if (n == 0 || rank == 0) continue;
    LETHE_CHECK(static_cast<int64_t>(a.size()) == n * l.in, "factored queries: layer {} captured {} inputs for {} examples",
                l.index, a.size(), n);
    // (d_i · c_k) and (ā_i · w_k) for every example and factor: two float GEMMs, over out and in.
    std::vector<float> dc(static_cast<size_t>(n * rank)), aw(static_cast<size_t>(n * rank));
    matmul_f32(false, true, n, rank, l.out, d.data(), l.c.data(), 0.0f, dc.data());
    matmul_f32(false, true, n, rank, l.in, a.data(), l.w.data(), 0.0f, aw.data());
    const int64_t q = q_;
    for (int64_t i = 0; i < n; ++i) {
      const float* dci = dc.data() + i * rank;
      const float* awi = aw.data() + i * rank;
      for (int64_t j = 0; j < q; ++j) {
        double s = 0;
        for (int64_t t = l.first[j]; t < l.first[j + 1]; ++t)
          s += static_cast<double>(dci[t]) * (static_cast<double>(awi[t]) + l.wb[t]);
        dots[i * q + j] += s;
      }
    }
  }
}

std::vector<int64_t> FactoredQueries::max_ranks() const {
  std::vector<int64_t> out;
  for (const Layer& l : layers_) {
    int64_t most = 0;
    for (size_t j = 0; j + 1 < l.first.size(); ++j) most = std::max(most, l.first[j + 1] - l.first[j]);
    out.push_back(most);
  }
  return out;
}

}  // namespace lethe::repair
