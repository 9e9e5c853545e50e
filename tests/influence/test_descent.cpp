// The anchored descent's stopping rule kept on the model's device (influence/descent.h,
// nn/descent_log.h): looking at the record every step or every few steps gives the same result
// to the bit, and every kind of failure is named with the step it happened at.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "datasets/idx_fixture.h"
#include "kernels/device.h"
#include "influence/logistic_fixture.h"
#include "nn/descent_log.h"
#include "influence/descent.h"
#include "influence/params.h"

namespace lethe::repair {
namespace {

using data::fixture::expect_error_mentioning;
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

// A criterion that returns scripted values, one a call: calls[0] is the start (at θ̂), calls[s]
// the value after step s; past the script's end it keeps rising.
struct Scripted {
  std::vector<float> values;
  Device device = Device::CPU;
  int calls = 0;
  Tensor operator()() {
    const float v = calls < static_cast<int>(values.size()) ? values[calls] : 100.0f + static_cast<float>(calls);
    ++calls;
    return Tensor::from_vector({1}, std::span<const float>(&v, 1), device);
  }
};

struct DescentRun {
  DescentResult result;
  std::vector<float> final_theta;
};

// A real descent (logistic regression, Adam on the clusters' loss) whose stopping criterion is
// the script: the rule's decisions are known, the parameters are not trivial.
DescentRun descend(int check_every, std::vector<float> script, int max_steps = 30, int patience = 3,
            Device device = Device::CPU, std::function<void(Module&, int)> after_backward = nullptr) {
  auto model = logistic(5);
  model->to(device);
  const data::ImageSet set = clusters(24, 6, 0.8);
  auto criterion = std::make_shared<Scripted>();
  criterion->values = std::move(script);
  criterion->device = device;
  AnchoredDescent d;
  d.who = "test";
  d.set_name = "S";
  d.batch = 8;
  d.lr = 0.05;
  d.max_steps = max_steps;
  d.patience = patience;
  d.check_every = check_every;
  d.criterion = [criterion] { return (*criterion)(); };
  Module& m = *model;
  if (after_backward) d.add_anchor_gradient = [&m, after_backward](int step) { after_backward(m, step); };
  Rng rng(11);
  DescentRun run;
  run.result = anchored_descent(*model, set, d, rng);
  run.final_theta = flatten_params(*model);
  return run;
}

// Improves at steps 1, 2 and 4, then not for three steps: stops at 7 with the best at 4. The
// 1.0 at step 9 would be the best if the rule looked past its stopping point.
const std::vector<float> kScript = {5.0f, 4.0f, 3.0f, 3.5f, 2.5f, 2.6f, 2.7f, 2.8f, 2.9f, 1.0f};

TEST(AnchoredDescent, LookingLessOftenGivesTheSameResultToTheBit) {
  const DescentRun every = descend(1, kScript);
  EXPECT_EQ(every.result.steps, 7);
  EXPECT_EQ(every.result.best_step, 4);
  EXPECT_EQ(every.result.start, 5.0);
  EXPECT_EQ(every.result.best, 2.5);
  EXPECT_EQ(every.result.host_reads, 7);
  EXPECT_NE(every.result.best_theta, every.final_theta);  // steps 5–7 moved on from the best
  for (int k : {2, 3, 8, 100}) {
    SCOPED_TRACE(k);
    const DescentRun sparse = descend(k, kScript);
    EXPECT_EQ(sparse.result.steps, 7);
    EXPECT_EQ(sparse.result.best_step, 4);
    EXPECT_EQ(sparse.result.best, 2.5);
    EXPECT_EQ(sparse.result.best_theta, every.result.best_theta);
    // The steps the device ran past step 7 before the host looked are undone.
    EXPECT_EQ(sparse.final_theta, every.final_theta);
    EXPECT_LT(sparse.result.host_reads, every.result.host_reads);
  }
  // Looking every 100 steps of a 30-step budget: one look, at the last step.
  EXPECT_EQ(descend(100, kScript).result.host_reads, 1);
}

TEST(AnchoredDescent, TheBestIsTheStartWhenNothingImproves) {
  for (int k : {1, 4}) {
    const DescentRun run = descend(k, {1.0f, 2.0f, 3.0f, 4.0f});
    EXPECT_EQ(run.result.steps, 3);
    EXPECT_EQ(run.result.best_step, 0);
    EXPECT_EQ(run.result.best_theta, flatten_params(*logistic(5)));
  }
}

TEST(AnchoredDescent, WithoutACriterionTheLastStepIsTheResult) {
  auto model = logistic(5);
  const data::ImageSet set = clusters(24, 6, 0.8);
  AnchoredDescent d;
  d.batch = 8;
  d.max_steps = 9;
  d.check_every = 4;
  Rng rng(11);
  const DescentResult r = anchored_descent(*model, set, d, rng);
  EXPECT_EQ(r.steps, 9);
  EXPECT_EQ(r.best_step, 9);
  EXPECT_EQ(r.best_theta, flatten_params(*model));
  EXPECT_NE(r.best_theta, flatten_params(*logistic(5)));
  EXPECT_EQ(r.host_reads, 3);  // after steps 4, 8 and the last
}

TEST(AnchoredDescent, ANonFiniteLossIsNamedWithItsStep) {
  for (int k : {1, 8}) {
    auto model = logistic(5);
    data::ImageSet set = clusters(24, 6, 0.8);
    set.pixels[0] = kNan;  // every batch of the whole set holds it
    AnchoredDescent d;
    d.who = "test";
    d.set_name = "S";
    d.hint = " (a hint)";
    d.batch = 24;
    d.max_steps = 20;
    d.check_every = k;
    Rng rng(11);
    expect_error_mentioning([&] { anchored_descent(*model, set, d, rng); },
                            {"test: the loss on S became nan at step 1 (a hint)"});
  }
}

TEST(AnchoredDescent, ANonFiniteGradientIsNamedWithItsParameterAndStep) {
  for (int k : {1, 5}) {
    SCOPED_TRACE(k);
    const auto poison = [](Module& m, int step) {
      if (step != 3) return;
      auto named = m.named_parameters();
      Tensor g = named.back().tensor.grad();  // "1.bias"
      g.fill_(std::numeric_limits<float>::infinity());
    };
    expect_error_mentioning([&] { descend(k, kScript, 30, 3, Device::CPU, poison); },
                            {"test: the gradient of '1.bias' is not finite (NaN or Inf) at step 3"});
  }
}

// kScript stops at step 7; a gradient poisoned at step 8 belongs to a step the host never sees
// when it looks every step, and that a look every 8 steps runs and then undoes. Neither may
// record it: the same steps and parameters, and no error, however often the host looks.
TEST(AnchoredDescent, AFailureAfterTheStopIsNotRecorded) {
  const auto poison = [](Module& m, int step) {
    if (step != 8) return;
    m.named_parameters().back().tensor.grad().fill_(std::numeric_limits<float>::infinity());
  };
  const DescentRun every = descend(1, kScript, 30, 3, Device::CPU, poison);
  EXPECT_EQ(every.result.steps, 7);
  for (int k : {8, 30}) {
    SCOPED_TRACE(k);
    DescentRun sparse;
    ASSERT_NO_THROW(sparse = descend(k, kScript, 30, 3, Device::CPU, poison));
    EXPECT_EQ(sparse.result.steps, 7);
    EXPECT_EQ(sparse.result.best_step, 4);
    EXPECT_EQ(sparse.result.best_theta, every.result.best_theta);
    EXPECT_EQ(sparse.final_theta, every.final_theta);
  }
}

TEST(AnchoredDescent, ANonFiniteCriterionIsNamedWithItsStep) {
  for (int k : {1, 8}) {
    expect_error_mentioning([&] { descend(k, {5.0f, 4.0f, kNan, 3.0f}); },
                            {"test: the stopping criterion became nan at step 2"});
  }
}

// ---- the GPU (skipped without one) ----

TEST(CudaDescent, LookingEveryEightStepsGivesTheOneStepResultToTheBit) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  const DescentRun every = descend(1, kScript, 30, 3, Device::CUDA);
  const DescentRun sparse = descend(8, kScript, 30, 3, Device::CUDA);
  EXPECT_EQ(every.result.steps, 7);
  EXPECT_EQ(every.result.best_step, 4);
  EXPECT_EQ(sparse.result.steps, 7);
  EXPECT_EQ(sparse.result.best_step, 4);
  EXPECT_EQ(sparse.result.best_theta, every.result.best_theta);
  EXPECT_EQ(sparse.final_theta, every.final_theta);
  EXPECT_EQ(sparse.result.host_reads, 1);
}

// The GPU's default look every 8 steps with a gradient poisoned after the stop (see
// AFailureAfterTheStopIsNotRecorded): no error, the one-step result.
TEST(CudaDescent, AFailureAfterTheStopIsNotRecorded) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  const auto poison = [](Module& m, int step) {
    if (step != 8) return;
    m.named_parameters().back().tensor.grad().fill_(std::numeric_limits<float>::infinity());
  };
  const DescentRun every = descend(1, kScript, 30, 3, Device::CUDA, poison);
  DescentRun sparse;
  ASSERT_NO_THROW(sparse = descend(8, kScript, 30, 3, Device::CUDA, poison));
  EXPECT_EQ(sparse.result.steps, 7);
  EXPECT_EQ(sparse.result.best_theta, every.result.best_theta);
  EXPECT_EQ(sparse.final_theta, every.final_theta);
}

// The record's kernels against the CPU's on the same inputs: 60 arrays (two launches' worth of
// the CUDA table), a NaN in array 50 and an infinity in array 55, the rule over a script, and
// snapshots taken only when the slot says so.
TEST(CudaDescent, TheRecordMatchesTheCpus) {
  if (!device::cuda_available()) GTEST_SKIP() << device::cuda_unavailable_reason();
  Rng rng(3);
  std::vector<std::vector<float>> values(60);
  for (size_t t = 0; t < values.size(); ++t) {
    values[t].resize(1 + t * 37);
    for (auto& v : values[t]) v = static_cast<float>(rng.uniform(-1, 1));
  }
  values[50][values[50].size() / 2] = kNan;
  values[55].back() = std::numeric_limits<float>::infinity();
  const auto tensors_on = [&](Device device) {
    std::vector<Tensor> out;
    for (const auto& v : values) out.push_back(Tensor::from_vector({static_cast<int64_t>(v.size())}, v, device));
    return out;
  };
  const auto run = [&](Device device) {
    std::vector<Tensor> src = tensors_on(device), dst;
    for (const auto& t : src) dst.push_back(Tensor::zeros(t.shape(), device));
    std::vector<Tensor> clean(src.begin(), src.begin() + 50);
    DescentLog log(device, 5.0f);
    std::vector<DescentLog::Record> records;
    int step = 0;
    for (float v : {4.0f, 4.5f, 3.0f, 3.2f}) {
      ++step;
      log.check_finite(clean, step);
      const Tensor c = Tensor::from_vector({1}, std::span<const float>(&v, 1), device);
      log.track(c, step, 2);
      log.copy_if(DescentRecord::kImproved, src, dst);
      records.push_back(log.read());
    }
    log.check_finite(src, 9);  // the failure: array 50 is the first bad one
    log.check_finite(src, 10); // recorded once
    records.push_back(log.read());
    std::vector<std::vector<float>> snapshots;
    for (const auto& t : dst) snapshots.push_back(t.to_vector());
    return std::make_pair(records, snapshots);
  };
  const auto cpu = run(Device::CPU), gpu = run(Device::CUDA);
  ASSERT_EQ(cpu.first.size(), gpu.first.size());
  for (size_t s = 0; s < cpu.first.size(); ++s)
    for (int slot = 0; slot < DescentRecord::kSlots; ++slot)
      if (!(std::isnan(cpu.first[s][slot]) && std::isnan(gpu.first[s][slot]))) {
        EXPECT_EQ(cpu.first[s][slot], gpu.first[s][slot]) << "record " << s << " slot " << slot;
      }
  EXPECT_EQ(cpu.first.back()[DescentRecord::kBadStep], 9.0f);
  EXPECT_EQ(cpu.first.back()[DescentRecord::kBadArray], 50.0f);
  EXPECT_EQ(cpu.first[3][DescentRecord::kBestStep], 3.0f);
  EXPECT_EQ(cpu.first[3][DescentRecord::kStopStep], 0.0f);  // one step without improving, of two
  for (size_t t = 0; t < cpu.second.size(); ++t) {
    ASSERT_EQ(cpu.second[t].size(), gpu.second[t].size());
    for (size_t i = 0; i < cpu.second[t].size(); ++i)
      if (!(std::isnan(cpu.second[t][i]) && std::isnan(gpu.second[t][i]))) {
        ASSERT_EQ(cpu.second[t][i], gpu.second[t][i]) << "array " << t << " element " << i;
      }
  }
}

}  // namespace
}  // namespace lethe::repair
