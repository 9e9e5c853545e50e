// Attribution at query scale (repair/attribute.h) and its outputs (report/score_matrix.h):
//   - the blocked matrix is identify_per_query's, whatever the block size, and a resumed run
//     scores exactly the rows it had not finished;
//   - every method's self-influence is the diagonal of D scored against itself as queries;
//   - the query low-rank truncation is the best rank-r approximation;
//   - the streamed safetensors file loads (checksum included), in F32 and BF16, and resumes from
//     its record only under the same key; the budget check refuses a budget below one query.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "datasets/idx_fixture.h"
#include "datasets/transforms.h"
#include "influence/conv_fixture.h"
#include "influence/ekfac_factors.h"
#include "influence/loop_gradients.h"
#include "influence/logistic_fixture.h"
#include "influence/params.h"
#include "nn/half.h"
#include "nn/linalg.h"
#include "nn/safetensors.h"
#include "repair/attribute.h"
#include "repair/method_support.h"
#include "report/score_matrix.h"
#include "util/error.h"

namespace lethe::repair {
namespace {

using data::fixture::TempDir;

// Largest |a − b| relative to b's largest magnitude.
double relative_gap(const std::vector<double>& a, const std::vector<double>& b) {
  double gap = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    gap = std::max(gap, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return scale > 0 ? gap / scale : gap;
}

struct Attribute : ::testing::Test {
  data::ImageSet train = random_images(17, 2, 10, 8, 10, 81), queries = random_images(7, 2, 10, 8, 10, 82);
  std::unique_ptr<Sequential> model = tiny_conv_net(83);

  // Every row attribute() hands out, by query.
  std::vector<std::vector<double>> run(const AttributeOptions& o, int64_t first_row = 0) {
    std::vector<std::vector<double>> rows(static_cast<size_t>(queries.n));
    int64_t expect = first_row;
    attribute(*model, train, queries, o, first_row, [&](int64_t first, const std::vector<std::vector<double>>& block) {
      EXPECT_EQ(first, expect) << "blocks out of order";
      for (size_t r = 0; r < block.size(); ++r) rows[static_cast<size_t>(first) + r] = block[r];
      expect = first + static_cast<int64_t>(block.size());
    });
    EXPECT_EQ(expect, queries.n);
    return rows;
  }
};

// Each query's row does not depend on which others share its block: blocks of 1, 3 and all 7
// against identify_per_query over the 7 at once (float products: 1e-6 of the row's scale).
TEST_F(Attribute, BlockedRowsAreThePerQueryScores) {
  for (const char* method : {"tracin", "ekfac", "gradcos", "trak"}) {
    AttributeOptions o;
    o.identify.method = method;
    o.identify.solve.damping = 1e-2;
    o.identify.batch = 5;
    const QueryScores whole = identify_per_query(*model, train, queries, o.identify);
    for (int64_t block : {1, 3, 7}) {
      o.block = block;
      const auto rows = run(o);
      for (int64_t j = 0; j < queries.n; ++j)
        EXPECT_LE(relative_gap(rows[j], whole.scores[j]), 1e-6) << method << " block " << block << " query " << j;
    }
  }
}

// The per-query scores keep their queries as float rows (tracin's gradients; ekfac's rotated in
// place by ekfac_apply_rows): against each example's loop gradient in double, dotted with each
// query's loop gradient (tracin) or with ekfac_apply's double solve of it (ekfac).
TEST_F(Attribute, FloatRowsScoreAsTheDoubleReferenceDoes) {
  const auto g = loop_gradients(*model, train), gq = loop_gradients(*model, queries);
  for (const char* method : {"tracin", "ekfac"}) {
    IdentifyOptions o;
    o.method = method;
    o.solve.damping = 1e-2;
    o.batch = 5;
    const QueryScores got = identify_per_query(*model, train, queries, o);
    const bool ekfac = std::string(method) == "ekfac";
    const Ekfac e = ekfac ? ekfac_factors(*model, train, o.fisher, pass(o, "ekfac")) : Ekfac{};
    for (int64_t j = 0; j < queries.n; ++j) {
      const std::vector<double> v = ekfac ? ekfac_apply(e, gq[j], o.solve.damping) : gq[j];
      std::vector<double> want(static_cast<size_t>(train.n));
      for (int64_t i = 0; i < train.n; ++i) {
        double d = 0;
        for (size_t k = 0; k < v.size(); ++k) d += g[i][k] * v[k];
        want[i] = -d;
      }
      // float gradients and products (and float rotations for ekfac, amplified by the inverse)
      EXPECT_LE(relative_gap(got.scores[j], want), ekfac ? 1e-4 : 1e-5) << method << " query " << j;
    }
  }
  // Rows of another length are refused before any pass.
  QueryRows short_rows(2, ParamLayout::of(*model).total - 1);
  std::vector<std::vector<double>> scores;
  IdentifyOptions o;
  EXPECT_THROW(add_negated_dots(*model, train, std::move(short_rows), o, scores), Error);
}

TEST_F(Attribute, AResumedRunScoresOnlyTheRowsLeft) {
  AttributeOptions o;
  o.identify.method = "tracin";
  o.block = 3;
  const auto all = run(o);
  const auto rest = run(o, 3);
  for (int64_t j = 0; j < 3; ++j) EXPECT_TRUE(rest[j].empty()) << "row " << j << " scored again";
  for (int64_t j = 3; j < queries.n; ++j) EXPECT_LE(relative_gap(rest[j], all[j]), 1e-6) << j;
}

// r(z, z) against the diagonal of D scored against itself (queries = D): the same preconditioner
// applied the other way round (to the query vector there, as squared rotated entries here).
TEST_F(Attribute, SelfInfluenceIsTheDiagonalOfThePairwiseMatrix) {
  struct Case {
    const char* method;
    const char* solver;
  };
  for (const Case c : {Case{"tracin", ""}, Case{"linear", "diag"}, Case{"linear", "kfac"}, Case{"ekfac", ""},
                       Case{"trak", "64"}, Case{"trak", "8"}}) {
    IdentifyOptions o;
    o.method = c.method;
    if (*c.solver && std::string(c.method) == "linear") o.solve.solver = c.solver;
    if (std::string(c.method) == "trak") o.trak.proj_dim = std::stoll(c.solver);  // k above and below n = 17
    o.solve.damping = 1e-2;
    o.batch = 5;
    const QueryScores pairwise = identify_per_query(*model, train, train, o);
    const IdentifyResult self = self_influence(*model, train, o);
    ASSERT_EQ(self.scores.size(), static_cast<size_t>(train.n));
    std::vector<double> diagonal;
    for (int64_t i = 0; i < train.n; ++i) diagonal.push_back(pairwise.scores[i][i]);
    EXPECT_LE(relative_gap(self.scores, diagonal), 1e-5) << c.method << " " << c.solver;
    for (double s : self.scores) EXPECT_LE(s, 0.0) << c.method << ": −gᵀH⁻¹g with H positive definite";
  }
}

TEST_F(Attribute, MethodsWithoutSelfInfluenceSayWhy) {
  IdentifyOptions o;
  for (const char* m : {"gradcos", "ewc", "loss"}) {
    o.method = m;
    std::string why;
    EXPECT_FALSE(has_self_influence(m, &why)) << m;
    EXPECT_FALSE(why.empty()) << m;
    EXPECT_THROW(self_influence(*model, train, o), UsageError) << m;
  }
  o.method = "linear";
  o.solve.solver = "cg";
  EXPECT_THROW(self_influence(*model, train, o), UsageError);
}

// The truncation against the singular values: what remains of a matrix is its best rank-r
// approximation, so the removed part's squared norm is the sum of the discarded σ².
TEST(QueryRank, TruncationKeepsTheLeadingSingularSubspace) {
  Rng rng(91);
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Linear>(9, 5, rng));  // weight [5, 9], bias [5]
  const ParamLayout layout = ParamLayout::of(*net);
  std::vector<double> v(static_cast<size_t>(layout.total));
  for (auto& x : v) x = rng.uniform(-1, 1);
  const std::vector<double> w(v.begin(), v.begin() + 45);
  auto gram = matmul_f64(false, true, 5, 5, 9, w, w);
  std::vector<double> sigma2;
  symmetric_eigen(5, gram, sigma2);  // ascending σ²
  for (int64_t r : {1, 2, 4}) {
    auto t = v;
    truncate_rank(layout, r, t);
    double removed = 0;
    for (int64_t j = 0; j < 45; ++j) removed += (v[j] - t[j]) * (v[j] - t[j]);
    double discarded = 0;
    for (int64_t k = 0; k < 5 - r; ++k) discarded += sigma2[k];
    EXPECT_NEAR(removed, discarded, 1e-10 * (1 + discarded)) << "rank " << r;
    for (int64_t j = 45; j < layout.total; ++j) EXPECT_EQ(t[j], v[j]) << "the bias is left whole";
  }
  auto whole = v;
  truncate_rank(layout, 5, whole);
  EXPECT_EQ(whole, v) << "a rank at the matrix's own leaves it as it is";
}

TEST(AttributePlan, BlocksFitTheBudgetAndARunWithoutRoomIsRefused) {
  AttributeOptions o;
  o.memory_gb = 1e-3;  // 1 MB
  o.identify.method = "linear";
  const int64_t per = attribute_bytes_per_query(10000, 1000, o.identify);
  EXPECT_EQ(per, 10000 * 20 + 1000 * 20);
  const AttributePlan p = plan_attribute(10000, 1000, 50, o);
  EXPECT_EQ(p.bytes_per_query, per) << "linear's solves keep the queries in double beside their float copy";
  EXPECT_LE(p.block * per, 1000000);
  EXPECT_EQ(p.blocks, (50 + p.block - 1) / p.block);
  EXPECT_GE(p.block * p.blocks, 50);
  EXPECT_LT((p.block - 1) * p.blocks, 50) << "blocks of equal size";
  o.memory_gb = 1e-4;  // 100 kB: less than one query
  EXPECT_THROW(plan_attribute(10000, 1000, 50, o), UsageError);
  // tracin's and ekfac's queries are float rows alone: 4 bytes a parameter, so larger blocks.
  o.memory_gb = 1e-3;
  for (const char* method : {"tracin", "ekfac"}) {
    o.identify.method = method;
    const AttributePlan t = plan_attribute(10000, 1000, 50, o);
    EXPECT_EQ(t.bytes_per_query, 10000 * 4 + 1000 * 20) << method;
    EXPECT_LE(t.block * t.bytes_per_query, 1000000) << method;
    EXPECT_GT(t.block, p.block) << method;
  }
  // trak's queries are its projected features, whatever θ's size.
  o.identify.method = "trak";
  o.identify.trak.proj_dim = 64;
  EXPECT_EQ(attribute_bytes_per_query(10000, 1000, o.identify), 64 * 20 + 1000 * 28);
  EXPECT_EQ(attribute_bytes_per_query(1000000, 1000, o.identify), 64 * 20 + 1000 * 28);
  o.memory_gb = 1;
  EXPECT_THROW(plan_attribute(10000, 1000, 0, o), UsageError);
}

// ---- the streamed outputs ----

std::vector<std::vector<double>> sample_rows(int64_t rows, int64_t cols, int64_t first) {
  std::vector<std::vector<double>> out;
  for (int64_t r = 0; r < rows; ++r) {
    out.emplace_back();
    for (int64_t c = 0; c < cols; ++c) out.back().push_back(std::sin(0.7 * static_cast<double>((first + r) * cols + c)) * 3.0);
  }
  return out;
}

report::ScoreMatrixSpec matrix_spec(DType dtype, const std::string& key) {
  report::ScoreMatrixSpec s;
  s.rows = 5, s.cols = 11, s.dtype = dtype, s.key = key;
  s.row_ids = {4, 8, 15, 16, 23};
  s.metadata = {{"lethe.attribute.method", "tracin"}};
  return s;
}

TEST(ScoreMatrix, StreamedFileLoadsWithItsChecksumInEveryDtype) {
  TempDir dir;
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    const std::string path = dir.file(std::string(dtype_name(dtype)) + ".safetensors");
    report::ScoreMatrixWriter w(path, matrix_spec(dtype, "k"));
    w.write_rows(0, sample_rows(2, 11, 0));
    w.write_rows(2, sample_rows(3, 11, 2));
    EXPECT_FALSE(std::filesystem::exists(path)) << "the target appears only when complete";
    w.finish();
    const SafetensorsFile f = load_safetensors(path);  // verifies lethe.crc32
    ASSERT_NE(f.find("scores"), nullptr);
    EXPECT_EQ(f.find("scores")->shape, (std::vector<int64_t>{5, 11}));
    const auto ids = f.find("query_indices")->values<int64_t>();
    EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end()), (std::vector<int64_t>{4, 8, 15, 16, 23}));
    const auto got = f.find("scores")->to_f32();
    const auto want = sample_rows(5, 11, 0);
    const double tol = dtype == DType::F32 ? 1e-6 : dtype == DType::BF16 ? 3.0 * 0x1p-8 : 3.0 * 0x1p-11;
    for (int64_t r = 0; r < 5; ++r)
      for (int64_t c = 0; c < 11; ++c) EXPECT_NEAR(got[r * 11 + c], want[r][c], tol) << dtype_name(dtype);
    EXPECT_FALSE(std::filesystem::exists(path + ".partial"));
    EXPECT_FALSE(std::filesystem::exists(path + ".partial.json"));
  }
}

TEST(ScoreMatrix, AnInterruptedFileResumesUnderItsKeyAndRestartsUnderAnother) {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  {
    report::ScoreMatrixWriter w(path, matrix_spec(DType::F32, "run-a"));
    w.write_rows(0, sample_rows(2, 11, 0));
  }  // interrupted after two rows
  {
    report::ScoreMatrixWriter w(path, matrix_spec(DType::F32, "run-b"));
    EXPECT_EQ(w.rows_done(), 0) << "another key starts afresh";
  }  // and stops before writing anything: run-a's record stands
  {
    report::ScoreMatrixWriter w(path, matrix_spec(DType::F32, "run-a"));
    EXPECT_EQ(w.rows_done(), 2);
  }
  {
    report::ScoreMatrixWriter w(path, matrix_spec(DType::F32, "run-b"));
    w.write_rows(0, sample_rows(1, 11, 100));
  }  // run-b wrote a row: run-a's rows are gone
  {
    report::ScoreMatrixWriter w(path, matrix_spec(DType::F32, "run-a"));
    EXPECT_EQ(w.rows_done(), 0);
    w.write_rows(0, sample_rows(2, 11, 0));
  }
  report::ScoreMatrixWriter w(path, matrix_spec(DType::F32, "run-a"));
  ASSERT_EQ(w.rows_done(), 2);
  EXPECT_TRUE(w.resumed());
  EXPECT_THROW(w.write_rows(0, sample_rows(1, 11, 0)), Error) << "rows already written";
  w.write_rows(2, sample_rows(3, 11, 2));
  w.finish();
  const auto got = load_safetensors(path).find("scores")->to_f32();
  const auto want = sample_rows(5, 11, 0);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 11; ++c) EXPECT_FLOAT_EQ(got[r * 11 + c], static_cast<float>(want[r][c]));
}

TEST(ScoreMatrix, TopKListsEachQuerysHighestScoresAndResumes) {
  TempDir dir;
  const std::string path = dir.file("top.csv");
  const std::vector<int64_t> ids = {4, 8, 15};
  {
    report::TopKWriter w(path, 2, ids, "k");
    w.write_rows(0, {{0.5, 3.0, -1.0, 3.0}});
  }
  report::TopKWriter w(path, 2, ids, "k");
  ASSERT_EQ(w.rows_done(), 1);
  w.write_rows(1, {{1.0, 2.0, 0.0, -4.0}, {-1.0, -2.0, -3.0, -0.5}});
  w.finish();
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text,
            "query,test_index,rank,train_index,score\n"
            "0,4,1,1,3\n0,4,2,3,3\n"
            "1,8,1,1,2\n1,8,2,0,1\n"
            "2,15,1,3,-0.5\n2,15,2,0,-1\n");
}

TEST(ScoreMatrix, AFolderOrAMissingFolderIsRefused) {
  TempDir dir;
  EXPECT_THROW(report::ScoreMatrixWriter(dir.str(), matrix_spec(DType::F32, "k")), UsageError);
  EXPECT_THROW(report::ScoreMatrixWriter(dir.file("no/such/m.safetensors"), matrix_spec(DType::F32, "k")), UsageError);
}

}  // namespace
}  // namespace lethe::repair
