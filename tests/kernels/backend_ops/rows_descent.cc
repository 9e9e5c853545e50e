// The table's rows for the early-stopped descent's record (descent_*) and TRAK's random
// projections (jl_block, jl_project).
#include <cmath>
#include <limits>
#include <string>

#include "kernels/backend.h"
#include "kernels/jl_bits.h"
#include "kernels/types.h"
#include "kernels/backend_ops/ops.h"

namespace lethe::backend_ops {
namespace {

using R = DescentRecord;
constexpr Tolerance kExact{0, 0, 0};
constexpr int64_t kResnetParams = 11'173'962;  // ResNet-18 with 10 classes: θ's length
const float kNaN = std::numeric_limits<float>::quiet_NaN(), kInf = std::numeric_limits<float>::infinity();

// ---- the descent's record ----------------------------------------------------------------------
// Records and flags are copies and comparisons: exact everywhere. The expected records are
// written out from the contract in kernels/backend.inc for each scenario.

// A record mid-descent: best 2.5 reached at step 3, one step since, a stale "improved" flag.
std::vector<float> running_record() {
  std::vector<float> r(R::kSlots, 0.0f);
  r[R::kBest] = 2.5f, r[R::kBestStep] = 3, r[R::kSinceBest] = 1, r[R::kImproved] = 1;
  return r;
}

std::vector<double> widen_record(const std::vector<float>& r) { return {r.begin(), r.end()}; }

// The arrays a step checks: their lengths, and where a non-finite value is put (array, index).
struct Poison {
  int array;
  int64_t index;
  float value;
};
struct CheckScenario {
  std::string what;
  std::vector<int64_t> lengths;
  std::vector<Poison> poison;
  bool failed_before;  // the record already holds a failure
  int expect_array;    // the array the record must name (-1: the record stays as it was)
};

std::vector<std::vector<float>> check_arrays(const CheckScenario& sc) {
  std::vector<std::vector<float>> xs;
  for (size_t t = 0; t < sc.lengths.size(); ++t) xs.push_back(uniform(sc.lengths[t], 70 + t));
  for (const Poison& p : sc.poison) xs[static_cast<size_t>(p.array)][static_cast<size_t>(p.index)] = p.value;
  return xs;
}

// 63 arrays of lengths 1 to 4,801, the first a loss's one value.
std::vector<int64_t> many_lengths() {
  std::vector<int64_t> lengths{1};
  for (int64_t t = 1; t < 63; ++t) lengths.push_back(1 + (t * 977) % 4801);
  return lengths;
}

Row descent_check_finite_row() {
  Row r{"descent_check_finite", kExact, kExact, {}};
  const int step = 12;
  const std::vector<CheckScenario> scenarios = {
      {"all finite", {1, 100003, 7}, {}, false, -1},
      {"NaN last in the second, inf in the third", {1, 100003, 7}, {{1, 100002, kNaN}, {2, 0, kInf}}, false, 1},
      {"inf first in the first", {1, 100003, 7}, {{0, 0, kInf}}, false, 0},
      {"an empty array before the bad one", {1, 0, 7}, {{2, 6, -kInf}}, false, 2},
      {"a failure already recorded", {1, 100003, 7}, {{0, 0, kNaN}}, true, -1},
      {"ResNet-18 params and gradient, NaN last", {1, kResnetParams, kResnetParams}, {{2, kResnetParams - 1, kNaN}}, false, 2},
      // More arrays than one launch takes (ResNet-18 has 62 parameter arrays): the first bad one
      // in the second launch, a later one after it, an early one in a scenario of its own.
      {"63 arrays, NaN in the 51st, inf in the 61st", many_lengths(), {{50, 17, kNaN}, {60, 0, kInf}}, false, 50},
      {"63 arrays, inf in the 2nd and the 51st", many_lengths(), {{1, 3, kInf}, {50, 0, kNaN}}, false, 1},
      {"63 arrays, all finite", many_lengths(), {}, false, -1},
  };
  for (const CheckScenario& sc : scenarios) {
    auto record = [=] {
      auto rec = running_record();
      if (sc.failed_before) rec[R::kBadStep] = 4, rec[R::kBadArray] = 2, rec[R::kBadValue] = 7;
      return rec;
    };
    Case cs;
    cs.shape = sc.what;
    cs.resnet = sc.lengths[1] == kResnetParams;
    for (const int64_t n : sc.lengths) cs.bytes += 4.0 * n;
    cs.make = [=](Device dev) {
      Instance ins(dev);
      std::vector<const float*> xs;
      for (const auto& x : check_arrays(sc)) xs.push_back(ins.input(x));
      float* rec = ins.input(record());
      const auto lengths = sc.lengths;
      ins.launch = [=] {
        LETHE_DISPATCH(dev, descent_check_finite, static_cast<int>(xs.size()), xs.data(), lengths.data(), step, rec);
      };
      ins.compare("record", rec, R::kSlots);
      return ins;
    };
    cs.reference = [=] {
      auto rec = record();
      if (sc.expect_array >= 0) {
        rec[R::kBadStep] = step;
        rec[R::kBadArray] = static_cast<float>(sc.expect_array);
        rec[R::kBadValue] = check_arrays(sc)[static_cast<size_t>(sc.expect_array)][0];
      }
      return Outputs{{"record", widen_record(rec)}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// The patience rule at step 12 with patience 3, from the running record (best 2.5, one step since).
Row descent_track_row() {
  Row r{"descent_track", kExact, kExact, {}};
  const int step = 12, patience = 3;
  struct Scenario {
    std::string what;
    float criterion;
    float since_best;
    bool failed_before;
  };
  for (const Scenario& sc : std::vector<Scenario>{{"improves", 1.0f, 1, false},
                                                  {"ties the best", 2.5f, 1, false},
                                                  {"worse, patience left", 3.0f, 1, false},
                                                  {"worse, patience used up", 3.0f, 2, false},
                                                  {"criterion NaN", kNaN, 1, false},
                                                  {"criterion inf", kInf, 1, false},
                                                  {"a failure recorded this step", 1.0f, 1, true}}) {
    auto record = [=] {
      auto rec = running_record();
      rec[R::kSinceBest] = sc.since_best;
      if (sc.failed_before) rec[R::kBadStep] = step, rec[R::kBadArray] = 1, rec[R::kBadValue] = kNaN;
      return rec;
    };
    Case cs;
    cs.shape = sc.what;
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* criterion = ins.input(std::vector<float>{sc.criterion});
      float* rec = ins.input(record());
      ins.launch = [=] { LETHE_DISPATCH(dev, descent_track, criterion, step, patience, rec); };
      ins.compare("record", rec, R::kSlots);
      return ins;
    };
    cs.reference = [=] {
      auto rec = record();
      rec[R::kImproved] = 0, rec[R::kStoppedNow] = 0;
      if (sc.failed_before) {
        rec[R::kStopStep] = step;
      } else if (!std::isfinite(sc.criterion)) {
        rec[R::kCriterionBadStep] = step, rec[R::kCriterionBadValue] = sc.criterion, rec[R::kStopStep] = step;
      } else if (sc.criterion < rec[R::kBest]) {
        rec[R::kBest] = sc.criterion, rec[R::kBestStep] = step, rec[R::kSinceBest] = 0, rec[R::kImproved] = 1;
      } else if (++rec[R::kSinceBest] >= patience) {
        rec[R::kStopStep] = step, rec[R::kStoppedNow] = 1;
      }
      return Outputs{{"record", widen_record(rec)}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// dst[t] = src[t] for every array when record[slot] != 0, nothing otherwise; an empty array
// among them.
Row descent_copy_if_row() {
  Row r{"descent_copy_if", kExact, kExact, {}};
  struct Scenario {
    std::vector<int64_t> lengths;
    bool flag;
  };
  for (const Scenario& sc : std::vector<Scenario>{{{5, 0, 100003}, true},
                                                  {{5, 0, 100003}, false},
                                                  {{kResnetParams, kResnetParams}, true},
                                                  {many_lengths(), true}}) {
    const int slot = R::kImproved;
    auto record = [=] {
      auto rec = running_record();
      rec[slot] = sc.flag ? 1.0f : 0.0f;
      return rec;
    };
    auto arrays = [=](uint64_t seed) {
      std::vector<std::vector<float>> xs;
      for (const int64_t n : sc.lengths) xs.push_back(uniform(n, seed++));
      return xs;
    };
    Case cs;
    cs.shape = sc.lengths.size() > 8 ? std::to_string(sc.lengths.size()) + " arrays" : "lengths";
    for (const int64_t n : sc.lengths) {
      if (sc.lengths.size() <= 8) cs.shape.append(" ").append(std::to_string(n));
      cs.bytes += 8.0 * n;
    }
    cs.shape += sc.flag ? ", flag set" : ", flag clear";
    cs.resnet = sc.lengths[0] == kResnetParams;
    cs.make = [=](Device dev) {
      Instance ins(dev);
      std::vector<const float*> src;
      std::vector<float*> dst;
      for (const auto& x : arrays(200)) src.push_back(ins.input(x));
      for (const auto& x : arrays(300)) dst.push_back(ins.input(x));
      const float* rec = ins.input(record());
      const auto lengths = sc.lengths;
      ins.launch = [=] {
        LETHE_DISPATCH(dev, descent_copy_if, static_cast<int>(src.size()), src.data(), dst.data(), lengths.data(), rec,
                       slot);
      };
      for (size_t t = 0; t < dst.size(); ++t)
        ins.compare("dst[" + std::to_string(t) + "]", dst[t], static_cast<size_t>(sc.lengths[t]));
      return ins;
    };
    cs.reference = [=] {
      Outputs out;
      const auto want = arrays(sc.flag ? 200 : 300);
      for (size_t t = 0; t < want.size(); ++t) out.push_back({"dst[" + std::to_string(t) + "]", widen(want[t])});
      return out;
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// ---- TRAK's projections ------------------------------------------------------------------------

// The matrix is bits, not arithmetic: the backends' blocks are equal. The reference takes each
// entry's sign from kernels/jl_bits.h's documented rule (entry by entry, not the kernels' word
// loop) and scales it by 1/√k in double; the kernels' 1/√k is a float: one rounding, rtol 1.2e-7.
Row jl_block_row() {
  Row r{"jl_block", {0, 1.2e-7, 0}, kExact, {}};
  const uint64_t seed = 42;
  struct Block {
    int64_t row0, rows, k;
  };
  // Odd widths around a 64-bit word, TRAK's default k, and one 256-row block of R at k = 2048
  // far down a ResNet-18's θ.
  for (const Block& b : {Block{1000, 37, 1}, Block{1000, 37, 63}, Block{1000, 37, 64}, Block{1000, 37, 100},
                         Block{1000, 37, 2048}, Block{kResnetParams - 256, 256, 2048}}) {
    Case cs;
    cs.shape = "rows " + std::to_string(b.row0) + "+" + std::to_string(b.rows) + " k=" + std::to_string(b.k);
    cs.resnet = b.row0 > 1'000'000;
    cs.bytes = 4.0 * b.rows * b.k;
    cs.make = [=](Device dev) {
      Instance ins(dev);
      float* out = ins.output<float>(static_cast<size_t>(b.rows * b.k));
      ins.launch = [=] { LETHE_DISPATCH(dev, jl_block, seed, b.row0, b.rows, b.k, out); };
      ins.compare("block", out, static_cast<size_t>(b.rows * b.k));
      return ins;
    };
    cs.reference = [=] {
      std::vector<double> out;
      const double scale = 1.0 / std::sqrt(static_cast<double>(b.k));
      for (int64_t row = b.row0; row < b.row0 + b.rows; ++row) {
        const uint64_t key = jl::row_key(seed, row);
        for (int64_t c = 0; c < b.k; ++c) out.push_back(jl::entry(key, c, 1.0f) > 0 ? scale : -scale);
      }
      return Outputs{{"block", out}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

// out = g·R over p terms: a float dot product (2e-7 per term against the exact sum, twice that
// between backends, as gemm's; R's entries are ±1/√k, so this is looser than gemm's by √k).
// Strided rows on both sides; out starts at 0.5 everywhere, so its padding must stay 0.5, an
// overwrite must not add, and an accumulation must.
Row jl_project_row() {
  Row r{"jl_project", {0, 1e-6, 2e-7}, {0, 2e-6, 4e-7}, {}};
  const uint64_t seed = 9;
  struct Projection {
    int64_t n, p, ld_g, k, ld_out;
    bool accumulate, resnet;
  };
  // Three blocks of R with strided rows (adding, then overwriting); nothing to project (p = 0);
  // one element; the per-example gradients of a ResNet-18 layer1 convolution (64·64·3·3
  // parameters) for 8 examples at k = 512.
  for (const Projection& pr : {Projection{5, 600, 610, 130, 140, true, false}, Projection{5, 600, 610, 130, 140, false, false},
                               Projection{3, 0, 4, 17, 20, false, false}, Projection{1, 1, 1, 1, 1, true, false},
                               Projection{8, 36'864, 36'864, 512, 512, false, true}}) {
    auto g = [=] { return uniform(pr.n * pr.ld_g, 3); };
    const size_t out_size = static_cast<size_t>(pr.n * pr.ld_out);
    Case cs;
    cs.shape = "n=" + std::to_string(pr.n) + " p=" + std::to_string(pr.p) + " k=" + std::to_string(pr.k) +
               (pr.ld_g != pr.p || pr.ld_out != pr.k ? " strided" : "") + (pr.accumulate ? " adding" : "");
    cs.resnet = pr.resnet;
    cs.error_scale = static_cast<double>(pr.p);
    cs.flops = 2.0 * pr.n * pr.p * pr.k;
    cs.bytes = 4.0 * (pr.n * pr.p + 2 * pr.n * pr.k);
    cs.make = [=](Device dev) {
      Instance ins(dev);
      const float* gd = ins.input(g());
      float* out = ins.input(std::vector<float>(out_size, 0.5f));
      ins.launch = [=] { LETHE_DISPATCH(dev, jl_project, gd, pr.n, pr.p, pr.ld_g, pr.k, seed, out, pr.ld_out, pr.accumulate); };
      ins.compare("out", out, out_size);
      return ins;
    };
    cs.reference = [=] {
      const auto gv = g();
      std::vector<double> out(out_size, 0.5);
      const double scale = 1.0 / std::sqrt(static_cast<double>(pr.k));
      for (int64_t i = 0; i < pr.n; ++i)
        for (int64_t c = 0; c < pr.k; ++c) out[i * pr.ld_out + c] = pr.accumulate ? 0.5 : 0.0;
      for (int64_t row = 0; row < pr.p; ++row) {
        const uint64_t key = jl::row_key(seed, row);
        for (int64_t c = 0; c < pr.k; ++c) {
          const double rc = jl::entry(key, c, 1.0f) > 0 ? scale : -scale;
          for (int64_t i = 0; i < pr.n; ++i) out[i * pr.ld_out + c] += gv[i * pr.ld_g + row] * rc;
        }
      }
      return Outputs{{"out", out}};
    };
    r.cases.push_back(std::move(cs));
  }
  return r;
}

}  // namespace

std::vector<Row> descent_rows() {
  return {descent_check_finite_row(), descent_track_row(), descent_copy_if_row()};
}

std::vector<Row> projection_rows() { return {jl_block_row(), jl_project_row()}; }

}  // namespace lethe::backend_ops
