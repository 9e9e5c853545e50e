// Per-example quantities against their definitions: a loop of single-example backward passes
// through the autograd. The engine's float32 arithmetic differs from the loop's only in
// summation order, so agreement is asserted to 1e-4 relative (plus a small absolute floor).
#include <gtest/gtest.h>

#include <cmath>

#include <fmt/format.h>

#include "datasets/mnist.h"
#include "nn/models.h"
#include "learning/train.h"
#include "nn/autograd.h"
#include "nn/spec.h"
#include "influence/factored_queries.h"
#include "influence/jvp.h"
#include "influence/per_example.h"
#include "influence/kfac.h"
#include "influence/params.h"
#include "influence/quantities.h"
#include "influence/loop_gradients.h"

namespace lethe::repair {
namespace {

data::ImageSet random_images(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
  data::ImageSet s;
  s.n = n, s.channels = c, s.height = h, s.width = w;
  Rng rng(seed);
  for (int64_t i = 0; i < n * c * h * w; ++i) s.pixels.push_back(static_cast<float>(rng.uniform(-0.5, 1.0)));
  for (int64_t i = 0; i < n; ++i) s.labels.push_back(static_cast<int32_t>(rng.below(10)));
  for (int64_t i = 0; i < n; ++i) s.source_index.push_back(i);
  return s;
}

// A small net with the awkward geometry: stride-2 padded conv, no-bias linear.
std::unique_ptr<Sequential> small_net(Rng& rng) {
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Conv2d>(2, 3, 3, 2, 1, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Conv2d>(3, 4, 3, 1, 0, rng))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Flatten>())
      .add(std::make_unique<Linear>(4 * 3 * 2, 7, rng, /*bias=*/false))
      .add(std::make_unique<ReLU>())
      .add(std::make_unique<Linear>(7, 10, rng));
  return net;
}

void expect_close(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-4 * std::abs(want) + 1e-6) << what;
}

struct Case {
  const char* name;
  std::function<std::unique_ptr<Module>(Rng&)> make;
  int64_t c, h, w;
};

class PerExample : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    Rng rng(21);
    if (GetParam() == 0) {
      model_ = make_mnist_cnn(rng);
      set_ = random_images(9, 1, 28, 28, 22);
    } else {
      model_ = small_net(rng);
      set_ = random_images(11, 2, 9, 8, 23);
    }
    ref_ = loop_gradients(*model_, set_);
    p_ = static_cast<int64_t>(ref_[0].size());
  }
  // per_example_dots with each batch size against the loop's gradients, in double.
  void expect_dots_match_the_loop(const std::vector<float>& queries, int64_t q, std::initializer_list<int64_t> batches) {
    for (int64_t batch : batches) {
      PassOptions opt;
      opt.batch = batch;
      const auto dots = per_example_dots(*model_, set_, queries, q, opt);
      for (int64_t i = 0; i < set_.n; ++i)
        for (int64_t j = 0; j < q; ++j) {
          double want = 0;
          for (int64_t k = 0; k < p_; ++k) want += ref_[i][k] * queries[j * p_ + k];
          expect_close(dots[i * q + j], want, fmt::format("dot example {} query {} batch {}", i, j, batch));
        }
    }
  }
  std::unique_ptr<Module> model_;
  data::ImageSet set_;
  std::vector<std::vector<double>> ref_;
  int64_t p_ = 0;
};

TEST_P(PerExample, GradientsMatchTheLoopForEveryBatchSize) {
  for (int64_t batch : {1, 4, 64}) {
    PassOptions opt;
    opt.batch = batch;
    const auto g = per_example_gradients(*model_, set_, 0, set_.n, opt);
    ASSERT_EQ(static_cast<int64_t>(g.size()), set_.n * p_);
    for (int64_t i = 0; i < set_.n; ++i)
      for (int64_t j = 0; j < p_; j += 7)
        ASSERT_NEAR(g[i * p_ + j], ref_[i][j], 1e-4 * std::abs(ref_[i][j]) + 1e-6) << "example " << i << " param " << j
                                                                                   << " batch " << batch;
  }
  // A sub-range gives the same rows.
  const auto part = per_example_gradients(*model_, set_, 3, 5);
  for (int64_t j = 0; j < p_; j += 5) expect_close(part[p_ + j], ref_[4][j], "range row");
}

TEST_P(PerExample, DotsWithSeveralQueries) {
  Rng rng(24);
  const int64_t q = 3;
  std::vector<float> queries(static_cast<size_t>(q * p_));
  for (auto& v : queries) v = static_cast<float>(rng.uniform(-1, 1));
  expect_dots_match_the_loop(queries, q, {2, 5, 100});
}

TEST_P(PerExample, DotsWithLowRankQueriesTakeTheFactoredPathAndAgree) {
  // Queries that are examples' gradients (rank one in each Linear layer, up to float rounding),
  // sums of two (rank two) and one scaled: the Linear layers go through their factors.
  const int64_t q = 4;
  std::vector<float> queries(static_cast<size_t>(q * p_));
  for (int64_t k = 0; k < p_; ++k) {
    queries[k] = static_cast<float>(ref_[1][k]);
    queries[p_ + k] = static_cast<float>(ref_[2][k] + ref_[5][k]);
    queries[2 * p_ + k] = static_cast<float>(-3.0 * ref_[0][k]);
    queries[3 * p_ + k] = static_cast<float>(ref_[set_.n - 1][k]);
  }
  PerExampleEngine engine(*model_);
  const FactoredQueries factored(engine, queries.data(), q, p_, set_.n);
  ASSERT_TRUE(factored.any());
  int64_t linear_layers = 0;
  for (const auto& s : engine.layer_shapes()) linear_layers += s.outer_product ? 1 : 0;
  const auto ranks = factored.max_ranks();
  // Every Linear layer is factored (each one's break-even rank is at least two), at rank two at most.
  for (int64_t r : ranks) EXPECT_LE(r, 2);
  EXPECT_EQ(static_cast<int64_t>(ranks.size()), linear_layers);
  expect_dots_match_the_loop(queries, q, {3, 100});
}

TEST_P(PerExample, SkippingLayersRefusesFormedAndProjectedGradients) {
  // A skipped layer's segment would be left unformed, so only sums may skip layers.
  PerExampleEngine engine(*model_);
  std::vector<char> skip(engine.layer_shapes().size(), 0);
  skip.back() = 1;
  std::vector<float> rows(static_cast<size_t>(set_.n * p_));
  PerExampleRequest formed;
  formed.grads = rows.data();
  formed.ld_grads = p_;
  EXPECT_THROW(engine.accumulate(formed, skip), Error);
  PerExampleRequest projected;
  projected.projected = rows.data();
  projected.proj_k = 4;
  projected.ld_projected = 4;
  EXPECT_THROW(engine.accumulate(projected, skip), Error);
}

TEST_P(PerExample, SquaredNorms) {
  const auto norms = per_example_sq_norms(*model_, set_, PassOptions{3, {}});
  for (int64_t i = 0; i < set_.n; ++i) {
    double want = 0;
    for (double v : ref_[i]) want += v * v;
    expect_close(norms[i], want, fmt::format("norm of example {}", i));
  }
}

// Under a diagonal metric whose weights differ per parameter, so a weight taken from the wrong
// place (a Linear layer's bias column, a layer's offset) moves the result.
TEST_P(PerExample, SquaredNormsUnderADiagonalMetric) {
  Rng rng(24);
  std::vector<double> w(static_cast<size_t>(p_));
  for (auto& x : w) x = rng.uniform(0.1, 10.0);
  const auto norms = per_example_weighted_sq_norms(*model_, set_, w, PassOptions{4, {}});
  ASSERT_EQ(static_cast<int64_t>(norms.size()), set_.n);
  for (int64_t i = 0; i < set_.n; ++i) {
    double want = 0;
    for (int64_t k = 0; k < p_; ++k) want += w[k] * ref_[i][k] * ref_[i][k];
    expect_close(norms[i], want, fmt::format("weighted norm of example {}", i));
  }
  w.pop_back();
  EXPECT_THROW(per_example_weighted_sq_norms(*model_, set_, w), Error);
}

TEST_P(PerExample, EmpiricalDiagonalFisher) {
  const auto f = diagonal_fisher(*model_, set_, {}, PassOptions{4, {}});
  ASSERT_EQ(static_cast<int64_t>(f.size()), p_);
  for (int64_t j = 0; j < p_; ++j) {
    double want = 0;
    for (const auto& g : ref_) want += g[j] * g[j];
    want /= static_cast<double>(set_.n);
    ASSERT_NEAR(f[j], want, 1e-4 * want + 1e-9) << "parameter " << j;
  }
}

TEST_P(PerExample, SummedGradientAndFisherVectorProduct) {
  const auto total = summed_gradient(*model_, set_, PassOptions{4, {}});
  for (int64_t j = 0; j < p_; j += 3) {
    double want = 0;
    for (const auto& g : ref_) want += g[j];
    expect_close(total[j], want, fmt::format("summed gradient {}", j));
  }
  Rng rng(25);
  std::vector<double> v(static_cast<size_t>(p_));
  for (auto& x : v) x = rng.uniform(-1, 1);
  const auto fv = fisher_vector_product(*model_, set_, v, PassOptions{4, {}});
  std::vector<double> s(static_cast<size_t>(set_.n));
  for (int64_t i = 0; i < set_.n; ++i)
    for (int64_t k = 0; k < p_; ++k) s[i] += ref_[i][k] * v[k];
  for (int64_t j = 0; j < p_; j += 3) {
    double want = 0;
    for (int64_t i = 0; i < set_.n; ++i) want += ref_[i][j] * s[i];
    want /= static_cast<double>(set_.n);
    EXPECT_NEAR(fv[j], want, 2e-4 * std::abs(want) + 1e-6) << "Fv " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, PerExample, ::testing::Values(0, 1),
                         [](const auto& info) { return info.param == 0 ? std::string("MnistCnn") : std::string("SmallNet"); });

TEST(PerExampleFisher, SampledFisherIsUnbiasedForTheTrueFisherOnOneLinearLayer) {
  // One linear layer on one example: the true Fisher's diagonal is
  // E_{y~p}[(p - e_y)_o^2] a_k^2 = p_o (1 - p_o) a_k^2; many label draws must approach it.
  Rng rng(26);
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(4, 3, rng));
  data::ImageSet set = random_images(1, 1, 2, 2, 27);
  set.labels[0] = 0;
  FisherOptions fo;
  fo.kind = FisherKind::Sampled;
  fo.mc_samples = 20000;
  fo.seed = 28;
  const auto f = diagonal_fisher(*net, set, fo);
  Tensor logits;
  {
    std::vector<int64_t> idx{0};
    logits = net->forward(batch_images(set, idx, Device::CPU, nullptr));
  }
  const auto z = logits.to_vector();
  double zmax = std::max({z[0], z[1], z[2]}), tot = 0;
  for (float v : z) tot += std::exp(v - zmax);
  for (int o = 0; o < 3; ++o) {
    const double p = std::exp(z[o] - zmax) / tot;
    for (int k = 0; k < 4; ++k) {
      const double a = set.pixels[k];
      const double want = p * (1 - p) * a * a;
      // Monte Carlo: the estimate's std is below want/sqrt(20000)*few; 5% is far outside it.
      EXPECT_NEAR(f[o * 4 + k], want, 0.05 * want + 1e-7) << o << "," << k;
    }
  }
}

TEST(Kfac, LinearFactorsAndInverseMatchADenseSolve) {
  Rng rng(29);
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(3, 4, rng));
  data::ImageSet set = random_images(50, 1, 1, 3, 30);
  for (auto& y : set.labels) y %= 4;
  set.num_classes = 4;
  Kfac k = kfac_factors(*net, set);
  ASSERT_EQ(k.layers.size(), 1u);
  const auto& l = k.layers[0];
  // A = E[ā āᵀ] with ā = [x, 1].
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      double want = 0;
      for (int64_t i = 0; i < set.n; ++i) {
        const double ar = r < 3 ? set.pixels[i * 3 + r] : 1.0, ac = c < 3 ? set.pixels[i * 3 + c] : 1.0;
        want += ar * ac / set.n;
      }
      EXPECT_NEAR(l.A[r * 4 + c], want, 1e-5);
    }
  // (A ⊗ G + δI)^{-1} v against a dense solve of the 16x16 system in θ's layout [W (4x3), b (4)].
  const double damping = 0.1;
  const int64_t p = k.num_params;
  auto index = [&](int64_t o, int64_t kk) { return kk < 3 ? o * 3 + kk : 12 + o; };
  std::vector<double> m(static_cast<size_t>(p * p), 0.0);
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t kk = 0; kk < 4; ++kk)
      for (int64_t o2 = 0; o2 < 4; ++o2)
        for (int64_t k2 = 0; k2 < 4; ++k2)
          m[index(o, kk) * p + index(o2, k2)] = l.G[o * 4 + o2] * l.A[kk * 4 + k2] + (index(o, kk) == index(o2, k2) ? damping : 0);
  std::vector<double> v(static_cast<size_t>(p));
  for (auto& x : v) x = rng.uniform(-1, 1);
  const auto x = kfac_apply(k, v, damping);
  // Check M x == v.
  for (int64_t r = 0; r < p; ++r) {
    double mx = 0;
    for (int64_t c = 0; c < p; ++c) mx += m[r * p + c] * x[c];
    EXPECT_NEAR(mx, v[r], 1e-8) << "row " << r;
  }
  // kfac_multiply is the undamped operator.
  const auto y = kfac_multiply(k, v);
  for (int64_t r = 0; r < p; ++r) {
    double mv = 0;
    for (int64_t c = 0; c < p; ++c) mv += (m[r * p + c] - (r == c ? damping : 0)) * v[c];
    EXPECT_NEAR(y[r], mv, 1e-9) << "row " << r;
  }
}

TEST(Kfac, ConvFactorsMatchTheirDefinition) {
  // Conv A = E_i[Σ_t ā_it ā_itᵀ]: its trace is E_i[Σ_t ||ā_it||²], computable from the unfolded
  // input directly; G's trace is E_i[Σ_t ||d_it||²]/T.
  Rng rng(31);
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Conv2d>(1, 2, 3, 1, 1, rng)).add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(2 * 4 * 4, 10, rng));
  data::ImageSet set = random_images(6, 1, 4, 4, 32);
  Kfac k = kfac_factors(*net, set);
  const auto& l = k.layers[0];
  ASSERT_EQ(l.a_dim(), 10);
  double trace_a = 0;
  for (int j = 0; j < 10; ++j) trace_a += l.A[j * 10 + j];
  double want = 0;  // Σ_t ||patch_t||² + T (the bias coordinate), averaged over examples
  for (int64_t i = 0; i < set.n; ++i)
    for (int oy = 0; oy < 4; ++oy)
      for (int ox = 0; ox < 4; ++ox) {
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx) {
            const int iy = oy - 1 + ky, ix = ox - 1 + kx;
            if (iy < 0 || iy >= 4 || ix < 0 || ix >= 4) continue;
            const double v = set.pixels[i * 16 + iy * 4 + ix];
            want += v * v;
          }
        want += 1.0;
      }
  want /= set.n;
  EXPECT_NEAR(trace_a, want, 1e-4 * want);
  // Eigenvalues reconstruct A.
  for (int r = 0; r < 10; ++r)
    for (int c = 0; c < 10; ++c) {
      double rec = 0;
      for (int j = 0; j < 10; ++j) rec += l.QA[r * 10 + j] * l.lA[j] * l.QA[c * 10 + j];
      EXPECT_NEAR(rec, l.A[r * 10 + c], 1e-9 * (1 + std::abs(l.A[r * 10 + c])));
    }
}

}  // namespace
}  // namespace lethe::repair

namespace lethe::repair {
namespace {

// uᵀ (J v) against (Jᵀ u)ᵀ v for random u and v at x, and the forward value against the
// model's own; returns (Jᵀ u)ᵀ v so a caller can check the direction mattered.
double expect_jvp_adjoint(Module& model, const Tensor& x, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(ParamLayout::of(model).total));
  for (auto& e : v) e = static_cast<float>(rng.uniform(-1, 1));
  const auto [z, dz] = jvp(model, x, v);
  std::vector<float> u(static_cast<size_t>(z.numel()));
  for (auto& e : u) e = static_cast<float>(rng.uniform(-1, 1));
  model.zero_grad();
  Tensor logits = model.forward(x);
  EXPECT_EQ(logits.to_vector(), z.to_vector());
  logits.backward(Tensor::from_vector(logits.shape(), u));
  const auto jtu = flatten_grads(model);
  const auto jv = dz.to_vector();
  double lhs = 0, rhs = 0;
  for (size_t i = 0; i < u.size(); ++i) lhs += static_cast<double>(u[i]) * jv[i];
  for (size_t j = 0; j < v.size(); ++j) rhs += static_cast<double>(jtu[j]) * v[j];
  EXPECT_NEAR(lhs, rhs, 1e-4 * (1 + std::abs(rhs)));
  return rhs;
}

TEST(ForwardMode, JvpIsTheAdjointOfTheBackwardPass) {
  // uᵀ (J v) = (Jᵀ u)ᵀ v for any u, v: the forward-mode product against the reverse pass the
  // gradient checks already verify. Both sides are float32 sums of ~1e5 terms accumulated in
  // double, so they agree to ~1e-5 relative; finite differences could not test this tightly,
  // as moving all 1e5 parameters at once flips relu and pooling choices.
  Rng rng(41);
  auto model = make_mnist_cnn(rng);
  data::ImageSet set = random_images(3, 1, 28, 28, 42);
  std::vector<int64_t> idx{0, 1, 2};
  Tensor x = batch_images(set, idx, Device::CPU, nullptr);
  expect_jvp_adjoint(*model, x, rng);
}

TEST(ForwardMode, JvpOfASpecNetworkWithAveragePoolingAndAGeneralResidual) {
  // The spec-built modules the hand-written models lack: average pooling and a residual block
  // that is not torchvision's (a 1x1 projection shortcut with bias, BatchNorm in the body). The
  // same adjoint identity as above, and the forward value equal to the model's own.
  const char* text = R"({"format": "lethe.model/1", "name": "probe", "input": [1, 8, 8], "classes": 3,
    "layers": [
      {"type": "conv2d", "name": "stem", "in": 1, "out": 4, "kernel": 3, "padding": 1},
      {"type": "avgpool2d", "kernel": 2},
      {"type": "residual", "name": "block", "body": [
         {"type": "conv2d", "name": "a", "in": 4, "out": 6, "kernel": 3, "padding": 1},
         {"type": "batchnorm2d", "name": "bn", "channels": 6},
         {"type": "relu"},
         {"type": "conv2d", "name": "b", "in": 6, "out": 6, "kernel": 3, "padding": 1}],
       "shortcut": [{"type": "conv2d", "name": "proj", "in": 4, "out": 6, "kernel": 1}]},
      {"type": "global_avgpool2d"},
      {"type": "linear", "name": "head", "in": 6, "out": 3}]})";
  Rng rng(45);
  auto model = build_net(parse_net_spec(text, "probe"), rng);
  model->train(false);
  data::ImageSet set = random_images(4, 1, 8, 8, 46);
  std::vector<int64_t> idx{0, 1, 2, 3};
  Tensor x = batch_images(set, idx, Device::CPU, nullptr);
  EXPECT_GT(std::abs(expect_jvp_adjoint(*model, x, rng)), 1e-3);  // a direction the network responds to
}

TEST(ForwardMode, GaussNewtonProductOfLogisticRegressionHasItsClosedForm) {
  // For z = W a + b the GGN is (1/N) Σ_i H_i ⊗ [a_i;1][a_i;1]ᵀ with H_i = diag(p_i) − p_i p_iᵀ.
  Rng rng(43);
  auto net = std::make_unique<Sequential>();
  net->add(std::make_unique<Flatten>()).add(std::make_unique<Linear>(4, 3, rng));
  data::ImageSet set = random_images(7, 1, 2, 2, 44);
  for (auto& y : set.labels) y %= 3;
  set.num_classes = 3;
  std::vector<double> v(15);
  for (auto& e : v) e = rng.uniform(-1, 1);
  const auto gv = ggn_vector_product(*net, set, v, PassOptions{3, {}});
  auto* lin = static_cast<Linear*>(&net->layer(1));
  const auto w = lin->weight.to_vector(), b = lin->bias.to_vector();
  std::vector<double> want(15, 0.0);
  for (int64_t i = 0; i < set.n; ++i) {
    const float* a = set.image(i);
    double z[3], p[3], zv[3], tot = 0;
    for (int o = 0; o < 3; ++o) {
      z[o] = b[o];
      zv[o] = v[12 + o];
      for (int k = 0; k < 4; ++k) {
        z[o] += w[o * 4 + k] * a[k];
        zv[o] += v[o * 4 + k] * a[k];
      }
    }
    for (int o = 0; o < 3; ++o) tot += p[o] = std::exp(z[o]);
    double pz = 0;
    for (int o = 0; o < 3; ++o) pz += (p[o] /= tot) * zv[o];
    for (int o = 0; o < 3; ++o) {
      const double u = p[o] * (zv[o] - pz);
      for (int k = 0; k < 4; ++k) want[o * 4 + k] += u * a[k] / set.n;
      want[12 + o] += u / set.n;
    }
  }
  for (int j = 0; j < 15; ++j) EXPECT_NEAR(gv[j], want[j], 1e-5 * (1 + std::abs(want[j]))) << j;
}

}  // namespace
}  // namespace lethe::repair

namespace lethe::repair {
namespace {

TEST(FactoredQueries, FactorStopsAtTheRankItsToleranceSees) {
  Rng rng(31);
  const int64_t rows = 6, cols = 9;
  std::vector<double> u(rows * 3), v(cols * 3);
  for (auto& x : u) x = rng.uniform(-1, 1);
  for (auto& x : v) x = rng.uniform(-1, 1);
  // An outer product rounded to float, as a formed gradient is: rank one.
  std::vector<double> m(rows * cols);
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t k = 0; k < cols; ++k) m[o * cols + k] = static_cast<float>(u[o] * v[k]);
  std::vector<double> c, w;
  EXPECT_EQ(FactoredQueries::factor(m.data(), rows, cols, 3, c, w), 1);
  // A sum of three outer products: rank three, and C Wᵀ gives it back.
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t k = 0; k < cols; ++k) {
      double s = 0;
      for (int64_t t = 0; t < 3; ++t) s += u[t * rows + o] * v[t * cols + k];
      m[o * cols + k] = s;
    }
  ASSERT_EQ(FactoredQueries::factor(m.data(), rows, cols, 5, c, w), 3);
  double err = 0, norm = 0;
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t k = 0; k < cols; ++k) {
      double s = 0;
      for (int64_t t = 0; t < 3; ++t) s += c[t * rows + o] * w[t * cols + k];
      err += (s - m[o * cols + k]) * (s - m[o * cols + k]);
      norm += m[o * cols + k] * m[o * cols + k];
    }
  EXPECT_LE(std::sqrt(err), kFactorTolerance * std::sqrt(norm));
  // Past the largest rank asked for: -1. A zero block: rank zero.
  EXPECT_EQ(FactoredQueries::factor(m.data(), rows, cols, 2, c, w), -1);
  std::fill(m.begin(), m.end(), 0.0);
  EXPECT_EQ(FactoredQueries::factor(m.data(), rows, cols, 2, c, w), 0);
}

TEST(FactoredQueries, FullRankQueriesKeepTheFormedPath) {
  Rng rng(32);
  auto model = make_mnist_cnn(rng);
  PerExampleEngine engine(*model);
  const int64_t p = engine.num_params();
  std::vector<float> queries(static_cast<size_t>(2 * p));
  for (auto& x : queries) x = static_cast<float>(rng.uniform(-1, 1));
  const FactoredQueries factored(engine, queries.data(), 2, p, 1000);
  EXPECT_FALSE(factored.any());
  for (char s : factored.skip()) EXPECT_EQ(s, 0);
}

}  // namespace
}  // namespace lethe::repair
