#include "repair/method_support.h"

#include <algorithm>

#include "influence/params.h"
#include "nn/linalg.h"
#include "util/error.h"

namespace lethe::repair {

PassOptions pass(const IdentifyOptions& o, const std::string& stage) {
  PassOptions p;
  p.batch = o.batch;
  if (o.progress) p.progress = [&o, stage](int64_t d, int64_t t) { o.progress(stage, d, t); };
  return p;
}

SolverContext solver_context(const IdentifyOptions& o) {
  SolverContext c;
  c.batch = o.batch;
  c.fisher = o.fisher;
  c.seed = o.seed;
  c.progress = o.progress;
  return c;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

std::vector<double> negated_dots(Module& model, const data::ImageSet& train, const std::vector<double>& v,
                                 const IdentifyOptions& o) {
  auto d = per_example_dots(model, train, to_float(v), 1, pass(o, "score"));
  for (auto& x : d) x = -x;
  return d;
}

Block query_gradients(Module& model, const data::ImageSet& queries, const IdentifyOptions& o) {
  const size_t p = static_cast<size_t>(ParamLayout::of(model).total);
  Block out(static_cast<size_t>(queries.n));
  // A batch of queries' float gradients at a time, so that the block's Q × P float matrix is
  // never held beside its double copy (420 MB for 1,000 queries of the MNIST CNN; the peak of
  // an attribute block is set later, by the products, so it did not move).
  const int64_t chunk = std::max<int64_t>(1, o.batch);
  for (int64_t begin = 0; begin < queries.n; begin += chunk) {
    const int64_t end = std::min(queries.n, begin + chunk);
    PassOptions part = pass(o, "grad queries");
    if (o.progress) part.progress = [&o, begin, n = queries.n](int64_t d, int64_t) { o.progress("grad queries", begin + d, n); };
    const auto g = per_example_gradients(model, queries, begin, end, part);
    for (int64_t j = begin; j < end; ++j)
      out[j].assign(g.begin() + (j - begin) * p, g.begin() + (j - begin + 1) * p);
  }
  return out;
}

void truncate_rank(const ParamLayout& layout, int64_t rank, std::vector<double>& v) {
  for (size_t t = 0; t < layout.shapes.size(); ++t) {
    const Shape& shape = layout.shapes[t];
    if (shape.size() < 2) continue;  // biases and BatchNorm's vectors stay whole
    const int64_t rows = shape[0], cols = shape_numel(shape) / rows;
    const int64_t small = std::min(rows, cols);
    if (rank >= small) continue;
    double* m = v.data() + layout.offsets[t];
    std::vector<double> mat(m, m + rows * cols);
    // The top `rank` singular vectors on the smaller side, from the Gram matrix's eigenvectors;
    // the best rank-r approximation (Eckart–Young) is the projection onto them.
    const bool left = rows <= cols;
    std::vector<double> gram = matmul_f64(!left, left, small, small, left ? cols : rows, mat, mat);
    std::vector<double> w;
    symmetric_eigen(small, gram, w);  // ascending: the top ones are the last columns
    std::vector<double> u(static_cast<size_t>(small * rank));
    for (int64_t i = 0; i < small; ++i)
      for (int64_t k = 0; k < rank; ++k) u[i * rank + k] = gram[i * small + (small - 1 - k)];
    if (left) {  // U_r (U_rᵀ M)
      const auto c = matmul_f64(true, false, rank, cols, rows, u, mat);
      const auto r = matmul_f64(false, false, rows, cols, rank, u, c);
      std::copy(r.begin(), r.end(), m);
    } else {  // (M V_r) V_rᵀ
      const auto c = matmul_f64(false, false, rows, rank, cols, mat, u);
      const auto r = matmul_f64(false, true, rows, cols, rank, c, u);
      std::copy(r.begin(), r.end(), m);
    }
  }
}

QueryRows query_gradient_rows(Module& model, const data::ImageSet& queries, const IdentifyOptions& o) {
  // Idle host blocks are let go where a phase ends: the last pass's (over D, for the block before)
  // are not this pass's sizes, nor this pass's the next step's (the preconditioning, D's pass).
  release_idle_host_blocks();
  QueryRows rows(queries.n, ParamLayout::of(model).total);
  if (queries.n > 0) per_example_gradients(model, queries, 0, queries.n, rows.values.get(), pass(o, "grad queries"));
  release_idle_host_blocks();
  return rows;
}

namespace {

// Each row's weight matrices cut to `rank` in double (truncate_rank), written back in float.
void truncate_rows(const ParamLayout& layout, int64_t rank, QueryRows& rows) {
  std::vector<double> v(static_cast<size_t>(rows.p));
  for (int64_t j = 0; j < rows.q; ++j) {
    float* r = rows.row(j);
    std::copy(r, r + rows.p, v.begin());
    truncate_rank(layout, rank, v);
    std::copy(v.begin(), v.end(), r);
  }
}

}  // namespace

void add_negated_dots(Module& model, const data::ImageSet& train, const Block& vs, const IdentifyOptions& o,
                      std::vector<std::vector<double>>& scores, double weight) {
  const int64_t q = static_cast<int64_t>(vs.size());
  if (q == 0) return;
  QueryRows rows(q, static_cast<int64_t>(vs.front().size()));
  const ParamLayout layout = o.query_rank > 0 ? ParamLayout::of(model) : ParamLayout{};
  std::vector<double> cut;
  for (int64_t j = 0; j < q; ++j) {
    const std::vector<double>* v = &vs[static_cast<size_t>(j)];
    if (static_cast<int64_t>(v->size()) != rows.p) fail("add_negated_dots: vectors of {} and {} values in one block", rows.p, v->size());
    if (o.query_rank > 0) {  // cut in double, as the vector was formed
      cut = *v;
      truncate_rank(layout, o.query_rank, cut);
      v = &cut;
    }
    std::copy(v->begin(), v->end(), rows.row(j));
  }
  IdentifyOptions whole = o;
  whole.query_rank = 0;  // already cut
  add_negated_dots(model, train, std::move(rows), whole, scores, weight);
}

void add_negated_dots(Module& model, const data::ImageSet& train, QueryRows vs, const IdentifyOptions& o,
                      std::vector<std::vector<double>>& scores, double weight) {
  const int64_t q = vs.q;
  if (q == 0) return;
  const ParamLayout layout = ParamLayout::of(model);
  if (vs.p != layout.total) fail("add_negated_dots: query vectors of {} values for {} parameters", vs.p, layout.total);
  if (o.query_rank > 0) truncate_rows(layout, o.query_rank, vs);
  release_idle_host_blocks();  // the preconditioning's blocks are not the pass over D's sizes either
  const auto d = per_example_dots(model, train, vs.values.get(), q, pass(o, "score"));
  vs = QueryRows{};  // the products are done with them: let them go before the scores grow
  if (scores.empty()) scores.assign(static_cast<size_t>(q), std::vector<double>(static_cast<size_t>(train.n), 0.0));
  // d is [n, q]: a tile of examples at a time, so that both sides stay in cache.
  constexpr int64_t kTile = 64;
  for (int64_t i0 = 0; i0 < train.n; i0 += kTile) {
    const int64_t i1 = std::min(train.n, i0 + kTile);
    for (int64_t j = 0; j < q; ++j) {
      double* s = scores[static_cast<size_t>(j)].data();
      for (int64_t i = i0; i < i1; ++i) s[i] -= weight * d[static_cast<size_t>(i * q + j)];
    }
  }
}

void report(const IdentifyOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

}  // namespace lethe::repair
