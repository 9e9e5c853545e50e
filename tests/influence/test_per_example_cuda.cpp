// The per-example engine with the model on the GPU against the same engine on the CPU, same
// weights and inputs: inner products with one and with several queries, squared norms, the
// diagonal Fisher and materialised gradients, on the MNIST CNN (convolutions, pooling, linear
// layers) and on a small ResNet (BatchNorm in evaluation mode, residual sums, projections).
//
// Tolerances. More than the per-example kernels differ between the two runs: the forward and
// backward passes take other algorithms on the GPU (cuDNN's choice, cuBLAS) and add in other
// orders, so every captured input and output gradient already differs from its CPU twin by float
// rounding, a few ulps a layer (more where cuDNN picks a transform-based convolution, still about
// 1e-6 of a layer's largest value). Each value is compared as |gpu − cpu| <= atol + rtol |cpu| with
// rtol = 1e-3 and atol = 1e-4 of a scale: for gradients and the Fisher the largest |value| within
// the same parameter tensor, for an inner product <g_i, v_j> the sum of its terms' magnitudes
// Σ_k |g_ik v_jk|, for a squared norm the norm itself. That is two orders of magnitude above the
// expected differences, while a wrong offset, scale, query or missing layer moves a value by
// about its own size.
// A ReLU or max-pool decision that the rounding flips would move values by more than that; with
// random inputs a pre-activation within rounding distance of zero (or a near-tie in a pooling
// window) has a chance of about 1e-7 a unit, so the fixed seeds here are not expected to meet one.
//
// Every test skips where no GPU is usable, and in a build without the CUDA backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/device.h"
#include "nn/models.h"
#include "learning/train.h"
#include "influence/ekfac_factors.h"
#include "influence/kfac.h"
#include "influence/params.h"
#include "influence/per_example.h"
#include "influence/quantities.h"
#include "influence/trak_features.h"
#include "influence/resnet_fixture.h"

namespace lethe::repair {
namespace {

constexpr double kRtol = 1e-3, kScaleAtol = 1e-4;

data::ImageSet random_images(int64_t n, int64_t c, int64_t h, int64_t w, uint64_t seed) {
  data::ImageSet s;
  s.n = n, s.channels = c, s.height = h, s.width = w, s.num_classes = 10;
  Rng rng(seed);
  for (int64_t i = 0; i < n * c * h * w; ++i) s.pixels.push_back(static_cast<float>(rng.uniform(-0.5, 1.0)));
  for (int64_t i = 0; i < n; ++i) s.labels.push_back(static_cast<int32_t>(rng.below(10)));
  for (int64_t i = 0; i < n; ++i) s.source_index.push_back(i);
  return s;
}

std::vector<float> random_queries(int64_t count, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(count));
  for (auto& x : v) x = static_cast<float>(rng.uniform(-1, 1));
  return v;
}

// |gpu[k] − cpu[k]| <= atol[k] + rtol |cpu[k]| for every k; the first mismatches are printed.
template <class T>
::testing::AssertionResult close_to_cpu(const std::vector<T>& cpu, const std::vector<T>& gpu,
                                        const std::vector<double>& atol, double rtol = kRtol) {
  if (cpu.size() != gpu.size())
    return ::testing::AssertionFailure() << "sizes differ: cpu " << cpu.size() << ", gpu " << gpu.size();
  constexpr int kShown = 8;
  int64_t mismatches = 0;
  std::ostringstream first;
  first.precision(9);
  for (size_t k = 0; k < cpu.size(); ++k) {
    const double a = cpu[k], b = gpu[k];
    if (std::abs(a - b) <= atol[k] + rtol * std::abs(a)) continue;  // false for a NaN on either side
    if (mismatches++ < kShown)
      first << "\n  [" << k << "] cpu " << a << "  gpu " << b << "  |diff| " << std::abs(a - b) << "  atol " << atol[k];
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << mismatches << " of " << cpu.size() << " values differ (rtol " << rtol
                                       << "); first:" << first.str();
}

// atol for values laid out as `rows` rows of θ, `ld` apart: kScaleAtol times the largest |value|
// of the same parameter tensor over all rows (gaps between rows get 0).
template <class T>
std::vector<double> per_tensor_atol(const ParamLayout& layout, const std::vector<T>& cpu, int64_t rows, int64_t ld) {
  std::vector<double> atol(cpu.size(), 0.0);
  for (size_t t = 0; t < layout.offsets.size(); ++t) {
    const int64_t begin = layout.offsets[t], end = begin + shape_numel(layout.shapes[t]);
    double largest = 0;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = begin; k < end; ++k) largest = std::max(largest, std::abs(static_cast<double>(cpu[i * ld + k])));
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t k = begin; k < end; ++k) atol[static_cast<size_t>(i * ld + k)] = kScaleAtol * largest;
  }
  return atol;
}

// atol for dots[i*q + j] = <g_i, v_j>: kScaleAtol Σ_k |g_ik v_jk|, from the CPU's gradients
// (rows `ld_grads` apart) and the queries (rows `ld_queries` apart).
std::vector<double> dot_atol(const std::vector<float>& grads, int64_t n, int64_t p, int64_t ld_grads,
                             const std::vector<float>& queries, int64_t q, int64_t ld_queries) {
  std::vector<double> atol(static_cast<size_t>(n * q));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < q; ++j) {
      double terms = 0;
      for (int64_t k = 0; k < p; ++k)
        terms += std::abs(static_cast<double>(grads[i * ld_grads + k]) * queries[j * ld_queries + k]);
      atol[static_cast<size_t>(i * q + j)] = kScaleAtol * terms;
    }
  return atol;
}

std::vector<double> relative_atol(const std::vector<double>& cpu) {
  std::vector<double> atol(cpu.size());
  for (size_t k = 0; k < cpu.size(); ++k) atol[k] = kScaleAtol * std::abs(cpu[k]);
  return atol;
}

// The same model twice (the factory draws the same weights from the same seed), one on the GPU.
struct ModelPair {
  std::unique_ptr<Module> cpu, gpu;
  explicit ModelPair(const std::function<std::unique_ptr<Module>()>& make) : cpu(make()), gpu(make()) { gpu->to(Device::CUDA); }
};

// Every dataset-level quantity through both engines. Batches of 3 leave a ragged last batch.
void expect_quantities_match(ModelPair& m, const data::ImageSet& set) {
  const PassOptions opt{3, {}};
  const ParamLayout layout = ParamLayout::of(*m.cpu);
  const int64_t n = set.n, p = layout.total;
  ASSERT_EQ(ParamLayout::of(*m.gpu).total, p);
  ASSERT_EQ(m.gpu->device(), Device::CUDA);

  const auto grads = per_example_gradients(*m.cpu, set, 0, n, opt);
  EXPECT_TRUE(close_to_cpu(grads, per_example_gradients(*m.gpu, set, 0, n, opt), per_tensor_atol(layout, grads, n, p)))
      << "per-example gradients";
  // A sub-range whose rows start mid-batch.
  const auto part = per_example_gradients(*m.cpu, set, 1, n - 1, opt);
  EXPECT_TRUE(close_to_cpu(part, per_example_gradients(*m.gpu, set, 1, n - 1, opt),
                           per_tensor_atol(layout, part, n - 2, p)))
      << "per-example gradients of examples [1, n-1)";

  // A convolution's inner products with 1 and 3 queries go through its own convolution
  // (kConvolvedQueries), with 6 through its gradients formed by batched GEMMs, with 20 through
  // the engine's GEMMs over formed gradients (kGpuGemmQueries). gpu-check.sh runs these tests
  // again with LETHE_CONV_DOTS=0 LETHE_CONV_GEMM=0, for the tiled kernel.
  for (const int64_t q : {1, 3, 6, 20}) {
    const auto queries = random_queries(q * p, 70 + static_cast<uint64_t>(q));
    const auto dots = per_example_dots(*m.cpu, set, queries, q, opt);
    EXPECT_TRUE(close_to_cpu(dots, per_example_dots(*m.gpu, set, queries, q, opt),
                             dot_atol(grads, n, p, p, queries, q, p)))
        << "inner products with " << q << " queries";
  }

  const auto norms = per_example_sq_norms(*m.cpu, set, opt);
  EXPECT_TRUE(close_to_cpu(norms, per_example_sq_norms(*m.gpu, set, opt), relative_atol(norms))) << "squared norms";

  const auto fisher = diagonal_fisher(*m.cpu, set, {}, opt);
  EXPECT_TRUE(close_to_cpu(fisher, diagonal_fisher(*m.gpu, set, {}, opt), per_tensor_atol(layout, fisher, 1, p)))
      << "diagonal Fisher";

  // Squared norms under the diagonal metric 1 / (F + δ) (linear's diag self-influence): Linear
  // layers from their captures on the host, the others' gradients weighted where they are formed.
  std::vector<double> metric(fisher.size());
  for (size_t j = 0; j < fisher.size(); ++j) metric[j] = 1.0 / (fisher[j] + 1e-2);
  const auto weighted = per_example_weighted_sq_norms(*m.cpu, set, metric, opt);
  EXPECT_TRUE(close_to_cpu(weighted, per_example_weighted_sq_norms(*m.gpu, set, metric, opt), relative_atol(weighted)))
      << "squared norms under the diagonal metric";

  // The Fisher-vector product, its batches' gradients summed on the device.
  Rng rng(70);
  std::vector<double> v(static_cast<size_t>(p));
  for (auto& x : v) x = rng.uniform(-1, 1);
  const auto fv = fisher_vector_product(*m.cpu, set, v, opt);
  EXPECT_TRUE(close_to_cpu(fv, fisher_vector_product(*m.gpu, set, v, opt), per_tensor_atol(layout, fv, 1, p)))
      << "Fisher-vector product";
}

TEST(CudaPerExampleEngine, MnistCnnQuantitiesMatchTheCpu) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  ModelPair m([] {
    Rng rng(61);
    return std::unique_ptr<Module>(make_mnist_cnn(rng));
  });
  expect_quantities_match(m, random_images(8, 1, 28, 28, 62));
}

TEST(CudaPerExampleEngine, ResNetWithBatchNormQuantitiesMatchTheCpu) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  ModelPair m([] { return small_resnet(63); });
  expect_quantities_match(m, resnet_images(7, 8, 64));
}

// TRAK's dense projection runs where the captures live: the GPU forms each batch's gradients
// and projects them itself, and only the [n, k] features come back. They match the CPU's (the
// same seeded R on both, kernels/jl_bits.h) to float rounding: each feature sums p terms of
// size |g_ij|/√k.
TEST(CudaPerExampleEngine, TrakProjectedFeaturesMatchTheCpu) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  ModelPair m([] {
    Rng rng(67);
    return std::unique_ptr<Module>(make_mnist_cnn(rng));
  });
  const auto set = random_images(7, 1, 28, 28, 68);
  TrakOptions o;
  o.proj_dim = 96;
  o.seed = 69;
  const PassOptions opt{3, {}};
  const TrakFeatures cpu = trak_features(*m.cpu, set, o, opt), gpu = trak_features(*m.gpu, set, o, opt);
  ASSERT_EQ(cpu.k, 96);
  ASSERT_EQ(gpu.k, 96);
  const int64_t p = ParamLayout::of(*m.cpu).total;
  const auto grads = per_example_gradients(*m.cpu, set, 0, set.n, opt);
  std::vector<double> atol(cpu.phi.size());
  for (int64_t i = 0; i < set.n; ++i) {
    double l1 = 0;
    for (int64_t j = 0; j < p; ++j) l1 += std::abs(static_cast<double>(grads[i * p + j]));
    // The features are margin gradients, the loss gradients' size divided by 1 − p_i.
    for (int64_t c = 0; c < cpu.k; ++c)
      atol[static_cast<size_t>(i * cpu.k + c)] = kScaleAtol * l1 / cpu.one_minus_p[i] / std::sqrt(96.0);
  }
  EXPECT_TRUE(close_to_cpu(cpu.phi, gpu.phi, atol)) << "projected features";
  EXPECT_TRUE(close_to_cpu(cpu.one_minus_p, gpu.one_minus_p, relative_atol(cpu.one_minus_p))) << "1 - p";
  // Under a budget of two examples' gradients the GPU forms and projects each batch of three in
  // chunks of two and one: the same features within the same tolerance.
  o.gradient_budget = 2 * p;
  EXPECT_TRUE(close_to_cpu(cpu.phi, trak_features(*m.gpu, set, o, opt).phi, atol)) << "projected features, chunked";
}

// KFAC gathers its statistics on the host from the GPU's captures.
TEST(CudaPerExampleEngine, ResNetKfacFactorsMatchTheCpu) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  ModelPair m([] { return small_resnet(65); });
  const auto set = resnet_images(6, 8, 66);
  const Kfac cpu = kfac_factors(*m.cpu, set, {}, PassOptions{4, {}});
  const Kfac gpu = kfac_factors(*m.gpu, set, {}, PassOptions{4, {}});
  ASSERT_EQ(cpu.layers.size(), gpu.layers.size());
  auto scaled_atol = [](const std::vector<double>& v) {
    double largest = 0;
    for (double x : v) largest = std::max(largest, std::abs(x));
    return std::vector<double>(v.size(), kScaleAtol * largest);
  };
  for (size_t k = 0; k < cpu.layers.size(); ++k) {
    const auto& c = cpu.layers[k];
    const auto& g = gpu.layers[k];
    SCOPED_TRACE(c.name);
    EXPECT_TRUE(close_to_cpu(c.A, g.A, scaled_atol(c.A))) << "A";
    EXPECT_TRUE(close_to_cpu(c.G, g.G, scaled_atol(c.G))) << "G";
    EXPECT_TRUE(close_to_cpu(c.pairs, g.pairs, scaled_atol(c.pairs))) << "BatchNorm pairs";
  }
}

// EK-FAC where the model lives: the Λ pass rotates each batch's convolution gradients on the
// GPU and sums their squares there, self-influence weights them there, and a block of query
// vectors is rotated, divided and rotated back there; only Λ's sums, the scores and the block's
// image come back. The eigenbases of two runs may differ inside a near-degenerate eigenspace, so
// Λ is compared through what no rotation changes, its sum per layer (the mean squared gradient
// norm); self-influence and the applied block use the CPU's factors on both sides. MNIST's CNN
// has convolutions with a bias, the ResNet BatchNorm pairs and convolutions without.
void expect_ekfac_matches(ModelPair& m, const data::ImageSet& set) {
  const PassOptions opt{3, {}};
  const Ekfac cpu = ekfac_factors(*m.cpu, set, {}, opt), gpu = ekfac_factors(*m.gpu, set, {}, opt);
  ASSERT_EQ(cpu.lambda.size(), gpu.lambda.size());
  for (size_t k = 0; k < cpu.lambda.size(); ++k) {
    double sum_cpu = 0, sum_gpu = 0;
    for (double x : cpu.lambda[k]) sum_cpu += x;
    for (double x : gpu.lambda[k]) sum_gpu += x;
    EXPECT_NEAR(sum_gpu, sum_cpu, 1e-3 * sum_cpu) << "layer " << k << " (" << cpu.basis.layers[k].name << "): sum of Λ";
  }
  const auto self_cpu = ekfac_self_influence(*m.cpu, set, cpu, 1e-2, 0.1, opt);
  EXPECT_TRUE(close_to_cpu(self_cpu, ekfac_self_influence(*m.gpu, set, cpu, 1e-2, 0.1, opt), relative_atol(self_cpu)))
      << "self-influence";
  const auto grads = per_example_gradients(*m.cpu, set, 0, 3, opt);
  const int64_t p = cpu.basis.num_params;
  std::vector<std::vector<double>> vs;
  for (int64_t i = 0; i < 3; ++i) vs.emplace_back(grads.begin() + i * p, grads.begin() + (i + 1) * p);
  const auto block_cpu = ekfac_apply_block(cpu, vs, 1e-2, 0.1, Device::CPU);
  const auto block_gpu = ekfac_apply_block(cpu, vs, 1e-2, 0.1, Device::CUDA);
  for (size_t j = 0; j < vs.size(); ++j) {
    double largest = 0;
    for (double x : block_cpu[j]) largest = std::max(largest, std::abs(x));
    EXPECT_TRUE(close_to_cpu(block_cpu[j], block_gpu[j], std::vector<double>(block_cpu[j].size(), kScaleAtol * largest)))
        << "preconditioned query " << j;
  }
}

TEST(CudaPerExampleEngine, EkfacFactorsSelfInfluenceAndPreconditionedQueriesMatchTheCpu) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  ModelPair cnn([] {
    Rng rng(71);
    return std::unique_ptr<Module>(make_mnist_cnn(rng));
  });
  expect_ekfac_matches(cnn, random_images(7, 1, 28, 28, 72));
  ModelPair resnet([] { return small_resnet(73); });
  expect_ekfac_matches(resnet, resnet_images(7, 8, 74));
}

// The engine's own contract on the GPU, one request asking for everything at once: the queries'
// and the gradients' rows wider than θ (the gaps must be neither read nor written), scale 0.5,
// dots, norms and the sum of squares added to what the caller holds, and the kept-queries path
// giving what the uploaded one gives.
TEST(CudaPerExampleEngine, OneRequestAddsToTheCallersArraysThroughStridedRows) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  ModelPair m([] {
    Rng rng(67);
    return std::unique_ptr<Module>(make_mnist_cnn(rng));
  });
  const auto set = random_images(5, 1, 28, 28, 68);
  std::vector<int64_t> idx(static_cast<size_t>(set.n));
  std::iota(idx.begin(), idx.end(), 0);
  PerExampleEngine cpu_engine(*m.cpu), gpu_engine(*m.gpu);
  const ParamLayout layout = ParamLayout::of(*m.cpu);
  const int64_t n = set.n, p = layout.total, q = 2, ld_queries = p + 3, ld_grads = p + 5;
  ASSERT_EQ(gpu_engine.num_params(), p);

  auto queries = random_queries(q * ld_queries, 69);
  for (int64_t j = 0; j < q; ++j)
    for (int64_t k = p; k < ld_queries; ++k) queries[j * ld_queries + k] = std::numeric_limits<float>::quiet_NaN();
  static constexpr float kGap = -7.0f;  // what the gaps between gradient rows hold before and after

  struct Results {
    std::vector<double> dots, norms, sq_sum;
    std::vector<float> grads;
    Results(int64_t n, int64_t q, int64_t p, int64_t ld_grads)
        : dots(static_cast<size_t>(n * q), 0.0), norms(static_cast<size_t>(n), 0.0),
          sq_sum(static_cast<size_t>(p), 0.0), grads(static_cast<size_t>(n * ld_grads), kGap) {}
  };
  auto pass = [&](PerExampleEngine& engine, Device device) {
    Labels labels;
    Tensor logits = engine.forward(batch_images(set, idx, device, &labels));
    engine.backward(logits, labels);
  };
  auto accumulate = [&](const PerExampleEngine& engine, Results& r) {
    PerExampleRequest req;
    req.queries = queries.data(), req.q = q, req.ld_queries = ld_queries, req.dots = r.dots.data();
    req.sq_norms = r.norms.data(), req.sq_sum = r.sq_sum.data();
    req.grads = r.grads.data(), req.ld_grads = ld_grads;
    req.scale = 0.5f;
    engine.accumulate(req);
  };

  pass(cpu_engine, Device::CPU);
  Results cpu(n, q, p, ld_grads);
  accumulate(cpu_engine, cpu);
  pass(gpu_engine, Device::CUDA);
  Results gpu(n, q, p, ld_grads);
  accumulate(gpu_engine, gpu);  // the queries go up with the request

  const auto grad_atol = per_tensor_atol(layout, cpu.grads, n, ld_grads);
  // The gradients are compared with the same atol every time (their rows are written, not added
  // to); the sums' tolerances come from the values they are compared with.
  auto expect_match = [&](const Results& want, const Results& got, const std::vector<double>& dots_atol,
                          const std::string& when) {
    SCOPED_TRACE(when);
    EXPECT_TRUE(close_to_cpu(want.dots, got.dots, dots_atol)) << "inner products";
    EXPECT_TRUE(close_to_cpu(want.norms, got.norms, relative_atol(want.norms))) << "squared norms";
    EXPECT_TRUE(close_to_cpu(want.sq_sum, got.sq_sum, per_tensor_atol(layout, want.sq_sum, 1, p))) << "sum of squares";
    EXPECT_TRUE(close_to_cpu(want.grads, got.grads, grad_atol)) << "gradients";
    int64_t gaps_written = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = p; k < ld_grads; ++k) gaps_written += got.grads[static_cast<size_t>(i * ld_grads + k)] != kGap;
    EXPECT_EQ(gaps_written, 0) << "values written between gradient rows";
  };
  const auto dots_atol = dot_atol(cpu.grads, n, p, ld_grads, queries, q, ld_queries);
  expect_match(cpu, gpu, dots_atol, "one request, the queries uploaded with it");

  // Again into the same arrays, from the kept copy of the queries: the sums double.
  gpu_engine.keep_queries(queries.data(), q, ld_queries);
  accumulate(gpu_engine, gpu);
  Results twice = cpu;
  for (auto& v : twice.dots) v *= 2;
  for (auto& v : twice.norms) v *= 2;
  for (auto& v : twice.sq_sum) v *= 2;
  std::vector<double> twice_dots_atol = dots_atol;
  for (auto& a : twice_dots_atol) a *= 2;
  expect_match(twice, gpu, twice_dots_atol, "a second request into the same arrays, the queries kept");
}

}  // namespace
}  // namespace lethe::repair
