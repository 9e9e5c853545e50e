// Models from elsewhere through the lethe binary: a checkpoint with nothing but a BF16 state_dict
// (as PyTorch saves one) evaluated and predicted with --model and --mean/--std, the refusals of
// a disagreeing --model or normalisation, and a network from a spec file trained, identified
// and repaired end to end.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "datasets/prepare.h"
#include "datasets/transforms.h"
#include "kernels/cpu/blas.h"
#include "learning/batches.h"
#include "nn/autograd.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tools/cli_harness.h"

namespace lethe::cli_test {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string spec_file(const std::string& name) { return std::string(LETHE_SOURCE_DIR) + "/models/" + name + ".json"; }

class Byom : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    write_synthetic_mnist(data());
    const auto r = run_lethe({"--quiet", "--threads", "1", "train", "--data", data(), "--subset", "200", "--epochs", "1",
                              "--batch", "32", "--out", trained()});
    ASSERT_EQ(r.exit_code, 0) << describe(r);
    // What PyTorch writes for model.bfloat16().state_dict(): the tensors, no metadata.
    SafetensorsFile file = load_safetensors(trained());
    SafetensorsFile torch;
    for (const auto& a : file.arrays) torch.arrays.push_back(NamedArray::from_f32(a.name, a.shape, a.to_f32(), DType::BF16));
    save_safetensors(foreign(), torch);
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string data() { return dir_->file("mnist"); }
  static std::string trained() { return dir_->file("trained.safetensors"); }
  static std::string foreign() { return dir_->file("foreign.safetensors"); }
  static inline TempDir* dir_ = nullptr;
  TempDir work_;
};

// The logits lethe computes in-process for the foreign file, normalised as given, the way the CLI
// computes them below: in batches of predict's default size (500), on one thread. A GEMM's float
// rounding may depend on its row count and its threads, as OpenBLAS's Haswell kernels' does.
std::vector<float> reference_logits(const std::string& path, const std::string& data_dir, float mean, float stddev) {
  const int threads = cpu::num_threads();
  cpu::set_num_threads(1);
  struct Restore {
    int threads;
    ~Restore() { cpu::set_num_threads(threads); }
  } restore{threads};
  LoadedModel loaded = load_checkpoint(path, "mnist-cnn");
  data::DataSpec spec;
  spec.dir = data_dir;
  data::ImageSet test = data::read_split(spec, data::Split::Test);
  data::normalise(test, {mean}, {stddev});
  NoGradGuard no_grad;
  loaded.model->eval();
  std::vector<float> out;
  for_each_image_batch(test, 500, Device::CPU, [&](const std::vector<int64_t>&, Tensor& x, Labels&) {
    const auto z = loaded.model->forward(x).to_vector();
    out.insert(out.end(), z.begin(), z.end());
  });
  return out;
}

TEST_F(Byom, ForeignBf16StateDictEvaluatesAndPredictsWithTheGivenNormalisation) {
  const auto e = run_lethe({"--threads", "1", "eval", "--model-file", foreign(), "--model", "mnist-cnn", "--data", data(),
                            "--mean", "0.25", "--std", "0.5", "--json"});
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_NE(e.err.find("lethe: converted 8 BF16 tensors to F32"), std::string::npos) << e.err;
  const Json j = Json::parse(e.out);
  EXPECT_EQ(j["model"], "mnist-cnn");
  EXPECT_EQ(j["normalisation"]["mean"], Json::array({0.25}));
  EXPECT_EQ(j["normalisation"]["std"], Json::array({0.5}));
  EXPECT_EQ(j["normalisation"]["source"], "given");

  const std::string arrays = work_.file("p.safetensors"), csv = work_.file("p.csv");
  for (const auto& out : {arrays, csv}) {
    const auto p = run_lethe({"--quiet", "--threads", "1", "predict", "--model-file", foreign(), "--model", "mnist-cnn",
                              "--data", data(), "--mean", "0.25", "--std", "0.5", "--out", out, "--json"});
    ASSERT_EQ(p.exit_code, 0) << describe(p);
    EXPECT_DOUBLE_EQ(Json::parse(p.out)["accuracy"].get<double>(), j["accuracy"].get<double>());
  }
  const SafetensorsFile f = load_safetensors(arrays);
  const auto logits = f.find("logits")->to_f32();
  EXPECT_EQ(f.find("logits")->shape, (std::vector<int64_t>{kTestCount, 10}));
  EXPECT_EQ(logits, reference_logits(foreign(), data(), 0.25f, 0.5f));
  EXPECT_EQ(f.metadata.at("lethe.data.mean"), "0.25");
  // Probabilities sum to one; predictions are the largest logit; the CSV has a row per example.
  const auto probs = f.find("probabilities")->to_f32();
  const auto pred = f.find("prediction")->values<int64_t>();
  for (int64_t i = 0; i < kTestCount; ++i) {
    double total = 0;
    int64_t best = 0;
    for (int64_t c = 0; c < 10; ++c) {
      total += probs[static_cast<size_t>(i * 10 + c)];
      if (logits[static_cast<size_t>(i * 10 + c)] > logits[static_cast<size_t>(i * 10 + best)]) best = c;
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
    EXPECT_EQ(pred[static_cast<size_t>(i)], best);
  }
  std::ifstream in(csv);
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header.rfind("index,label,prediction,loss,logit_0,", 0), 0u) << header;
  size_t rows = 0;
  for (std::string line; std::getline(in, line);) ++rows;
  EXPECT_EQ(rows, static_cast<size_t>(kTestCount));
}

TEST_F(Byom, ForeignStateDictIdentifiesAndRepairs) {
  // The same file without lethe's metadata through Step I and Algorithm 1: the architecture and
  // the normalisation come from the flags, and the outputs record both.
  const std::vector<std::string> common = {"--model-file", foreign(), "--model", "mnist-cnn", "--data", data(),
                                           "--subset", "200", "--mean", "0.25", "--std", "0.5"};
  auto with = [&](std::vector<std::string> head, const std::vector<std::string>& tail) {
    head.insert(head.end(), common.begin(), common.end());
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
  };
  const auto id = run_lethe(with({"--quiet", "--threads", "1", "identify"},
                                 {"--method", "tracin", "--out", work_.file("scores.csv"), "--json"}));
  ASSERT_EQ(id.exit_code, 0) << describe(id);
  const Json ij = Json::parse(id.out);
  EXPECT_EQ(ij["model"], "mnist-cnn");
  EXPECT_EQ(ij["n_train"], 200);
  EXPECT_TRUE(fs::exists(work_.file("scores.csv")));
  const auto rep = run_lethe(with({"--quiet", "--threads", "1", "repair"},
                                  {"--method", "loss", "--finetune-stop", "fixed", "--epochs", "1", "--top-k", "10", "--out-dir", work_.file("r"),
                                   "--json"}));
  ASSERT_EQ(rep.exit_code, 0) << describe(rep);
  const SafetensorsFile repaired = load_safetensors(work_.file("r") + "/repaired.safetensors");
  EXPECT_EQ(repaired.metadata.at("lethe.model"), "mnist-cnn");
  EXPECT_EQ(repaired.metadata.at("lethe.data.mean"), "0.25");
}

TEST_F(Byom, DisagreeingModelOrNormalisationIsRefusedWithOneLine) {
  expect_error(run_lethe({"--quiet", "eval", "--model-file", trained(), "--model", "cifar-cnn", "--data", data()}), 2,
               {"records a 'mnist-cnn' model", "--model says 'cifar-cnn'"});
  expect_error(run_lethe({"--quiet", "identify", "--model-file", trained(), "--model", spec_file("mnist-bn3"), "--data",
                          data(), "--out", work_.file("s.csv")}),
               2, {"records a 'mnist-cnn' model"});
  expect_error(run_lethe({"--quiet", "eval", "--model-file", trained(), "--data", data(), "--mean", "0.5"}), 2,
               {"--mean/--std", "disagree", "lethe.data.mean"});
  expect_error(run_lethe({"--quiet", "eval", "--model-file", foreign(), "--model", "mnist-cnn", "--data", data(), "--mean",
                          "0.1,0.2"}),
               2, {"--mean", "2 values"});
  expect_error(run_lethe({"--quiet", "eval", "--model-file", foreign(), "--model", "mnist-cnn", "--data", data(), "--mean",
                          "0.1", "--std", "0"}),
               2, {"--std", "positive"});
  // Without --model the foreign file is read as the default mnist-cnn, which fits it here; a
  // spec that does not fit names the tensor.
  expect_error(run_lethe({"--quiet", "eval", "--model-file", foreign(), "--model", spec_file("mnist-bn3"), "--data", data()}),
               1, {"unexpected tensor '0.weight'", "records no model"});
  expect_error(run_lethe({"--quiet", "train", "--data", data(), "--save-dtype", "f8", "--out", work_.file("x.safetensors")}),
               2, {"--save-dtype", "f8"});
  expect_error(run_lethe({"--quiet", "predict", "--model-file", trained(), "--data", data(), "--out", work_.file("p.txt")}),
               2, {"--out", ".csv"});
}

TEST_F(Byom, SaveDtypeWritesHalfPrecisionCheckpoints) {
  const std::string out = work_.file("bf16.safetensors");
  const auto r = run_lethe({"--quiet", "--threads", "1", "train", "--data", data(), "--subset", "100", "--epochs", "1",
                            "--save-dtype", "bf16", "--out", out});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const SafetensorsFile f = load_safetensors(out);
  EXPECT_EQ(f.find("0.weight")->dtype, DType::BF16);
  const auto e = run_lethe({"--threads", "1", "eval", "--model-file", out, "--data", data(), "--json"});
  ASSERT_EQ(e.exit_code, 0) << describe(e);
  EXPECT_NE(e.err.find("converted 8 BF16 tensors to F32"), std::string::npos) << e.err;
}

// A network lethe does not build in (three conv + BatchNorm blocks and a linear head), from its
// spec file, through train, identify and repair on MNIST: the real one's training split with
// LETHE_MNIST_DIR set (its test split cut to the synthetic folder's size, to stay test-sized),
// else the synthetic folder alone.
TEST(ByomSpec, CustomNetworkTrainsIdentifiesAndRepairsOnMnist) {
  TempDir work;
  const std::string folder = work.file("mnist");
  write_synthetic_mnist(folder);
  if (const char* real = std::getenv("LETHE_MNIST_DIR"); real && *real) {
    fs::copy_file(train_images_path(real), train_images_path(folder), fs::copy_options::overwrite_existing);
    fs::copy_file(train_labels_path(real), train_labels_path(folder), fs::copy_options::overwrite_existing);
  }
  const char* mnist = folder.c_str();
  const std::string model = work.file("bn3.safetensors"), failures = work.file("fq.txt");
  const auto t = run_lethe({"--quiet", "--threads", "2", "train", "--data", mnist, "--model", spec_file("mnist-bn3"),
                            "--subset", "300", "--noise", "label", "--epochs", "2", "--out", model, "--json"});
  ASSERT_EQ(t.exit_code, 0) << describe(t);
  EXPECT_EQ(Json::parse(t.out)["model"], "mnist-bn3");
  EXPECT_EQ(load_safetensors(model).metadata.count("lethe.model.spec"), 1u);
  // A few misclassified test images as the failures to explain (keeps the run test-sized).
  const auto p = run_lethe({"--quiet", "--threads", "2", "predict", "--model-file", model, "--data", mnist,
                            "--out", work.file("p.safetensors")});
  ASSERT_EQ(p.exit_code, 0) << describe(p);
  const SafetensorsFile preds = load_safetensors(work.file("p.safetensors"));
  const auto pred = preds.find("prediction")->values<int64_t>();
  const auto label = preds.find("label")->values<int64_t>();
  std::ofstream fq(failures);
  for (size_t i = 0, n = 0; i < pred.size() && n < 8; ++i)
    if (pred[i] != label[i]) fq << i << "\n", ++n;
  fq.close();
  const auto id = run_lethe({"--quiet", "--threads", "2", "identify", "--model-file", model, "--data", mnist, "--failures", failures,
                             "--max-steps", "10", "--out", work.file("scores.csv"), "--json"});
  ASSERT_EQ(id.exit_code, 0) << describe(id);
  const Json ij = Json::parse(id.out);
  EXPECT_EQ(ij["model"], "mnist-bn3");
  EXPECT_EQ(ij["n_train"], 300);
  const auto rep = run_lethe({"--quiet", "--threads", "2", "repair", "--model-file", model, "--data", mnist, "--failures", failures,
                              "--method", "kfac-ewc", "--finetune-stop", "fixed", "--epochs", "1", "--top-k", "20", "--out-dir", work.file("repair"), "--json"});
  ASSERT_EQ(rep.exit_code, 0) << describe(rep);
  const LoadedModel repaired = load_checkpoint(work.file("repair") + "/repaired.safetensors");
  EXPECT_EQ(repaired.model_name, "mnist-bn3");
  EXPECT_EQ(repaired.model->named_parameters().front().name, "features.0.weight");
}

}  // namespace
}  // namespace lethe::cli_test
