// Model specs: the shipped specs of the built-in models build the built-ins bit for bit, the
// parser names what is wrong, and checkpoints of spec networks (and of half-precision or
// metadata-free files) load.
#include "nn/spec.h"

#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "datasets/idx_fixture.h"
#include "nn/checkpoint.h"
#include "nn/half.h"
#include "nn/models.h"
#include "nn/ops.h"
#include "nn/safetensors.h"
#include "util/rng.h"

namespace lethe {
namespace {

using data::fixture::expect_error_mentioning;
using data::fixture::TempDir;

std::string model_file(const std::string& name) { return std::string(LETHE_SOURCE_DIR) + "/models/" + name + ".json"; }

Tensor random_input(const ModelSpec& g, int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(static_cast<size_t>(n * g.channels * g.height * g.width));
  for (auto& v : x) v = static_cast<float>(rng.uniform(-1.0, 1.0));
  return Tensor::from_vector({n, g.channels, g.height, g.width}, x);
}

void expect_same_parameters(Module& a, Module& b) {
  const auto pa = a.named_parameters(), pb = b.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    ASSERT_EQ(pa[i].name, pb[i].name);
    ASSERT_EQ(pa[i].tensor.shape(), pb[i].tensor.shape()) << pa[i].name;
    const auto va = pa[i].tensor.to_vector(), vb = pb[i].tensor.to_vector();
    ASSERT_EQ(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)), 0) << pa[i].name;
  }
  const auto ba = a.named_buffers(), bb = b.named_buffers();
  ASSERT_EQ(ba.size(), bb.size());
  for (size_t i = 0; i < ba.size(); ++i) ASSERT_EQ(ba[i].name, bb[i].name);
}

void expect_bitwise_equal(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector(), vb = b.to_vector();
  ASSERT_EQ(a.shape(), b.shape());
  ASSERT_EQ(std::memcmp(va.data(), vb.data(), va.size() * sizeof(float)), 0);
}

class BuiltinSpec : public ::testing::TestWithParam<std::string> {};

// Same draws for a seed, same names in the same order, same outputs in both modes, same resets.
TEST_P(BuiltinSpec, BuildsTheBuiltinBitForBit) {
  const std::string name = GetParam();
  const std::string file = model_file(name);
  EXPECT_EQ(model_display_name(file), name);
  const ModelSpec gb = model_spec(name), gs = model_spec(file);
  EXPECT_EQ(gb.channels, gs.channels);
  EXPECT_EQ(gb.height, gs.height);
  EXPECT_EQ(gb.classes, gs.classes);
  Rng r1(1234), r2(1234);
  auto builtin = make_model(name, r1);
  auto spec = make_model(file, r2);
  expect_same_parameters(*builtin, *spec);
  EXPECT_EQ(r1.next_u64(), r2.next_u64());  // the same number of draws
  if (name == "resnet18") return;  // the full-width forward is slow on a CPU; resnet18-w8 runs it
  const Tensor x = random_input(gb, 3, 5);
  expect_bitwise_equal(builtin->forward(x), spec->forward(x));  // training mode: batch statistics
  builtin->eval();
  spec->eval();
  expect_bitwise_equal(builtin->forward(x), spec->forward(x));  // running statistics, updated alike
  Rng r3(99), r4(99);
  builtin->reset_parameters(r3);
  spec->reset_parameters(r4);
  expect_same_parameters(*builtin, *spec);
}

INSTANTIATE_TEST_SUITE_P(Models, BuiltinSpec, ::testing::Values("mnist-cnn", "cifar-cnn", "resnet18-w8", "resnet18"));

TEST(Spec, CanonicalTextRoundTrips) {
  const NetSpec s = load_net_spec(model_file("resnet18-w8"));
  const std::string text = canonical_spec(s);
  EXPECT_EQ(canonical_spec(parse_net_spec(text, "canonical")), text);
  EXPECT_TRUE(same_architecture(text, model_file("resnet18-w8")));
  EXPECT_FALSE(same_architecture(text, model_file("resnet18")));
  EXPECT_TRUE(same_architecture("mnist-cnn", model_file("mnist-cnn")));
}

TEST(Spec, CustomNetworkRunsForwardAndBackward) {
  const std::string file = model_file("mnist-bn3");
  Rng rng(3);
  auto net = make_model(file, rng);
  const auto params = net->named_parameters();
  ASSERT_EQ(params.size(), 11u);  // 3 x (conv weight, bn weight, bn bias) + head weight and bias
  EXPECT_EQ(params.front().name, "features.0.weight");
  EXPECT_EQ(params.back().name, "head.bias");
  const Tensor x = random_input(model_spec(file), 4, 1);
  Tensor loss = mean(cross_entropy(net->forward(x), Labels({0, 1, 2, 3})));
  loss.backward();
  for (auto& p : params) EXPECT_TRUE(p.tensor.grad().defined()) << p.name;
}

TEST(Spec, AveragePoolingAveragesEachWindow) {
  const std::string text = R"({"name": "pool", "input": [2, 4, 4], "classes": 8, "layers": [
      {"type": "avgpool2d", "kernel": 2}, {"type": "flatten"}]})";
  Rng rng(0);
  auto net = build_net(parse_net_spec(text, "pool"), rng);
  std::vector<float> x(32);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
  const auto y = net->forward(Tensor::from_vector({1, 2, 4, 4}, x)).to_vector();
  const std::vector<float> want = {2.5f, 4.5f, 10.5f, 12.5f, 18.5f, 20.5f, 26.5f, 28.5f};
  EXPECT_EQ(y, want);
}

std::string with_layers(const std::string& layers, const std::string& input = "[1, 8, 8]", int classes = 10) {
  return R"({"name": "t", "input": )" + input + R"(, "classes": )" + std::to_string(classes) + R"(, "layers": [)" +
         layers + "]}";
}

TEST(Spec, UnsupportedLayerNamesItselfAndTheSupportedList) {
  expect_error_mentioning([] { parse_net_spec(with_layers(R"({"type": "flatten"}, {"type": "lstm"})"), "bad.json"); },
                          {"bad.json", "layer 2", "unsupported layer type 'lstm'", "conv2d", "residual", "dropout"});
}

TEST(Spec, ShapesThatDoNotChainNameTheLayer) {
  expect_error_mentioning(
      [] {
        parse_net_spec(with_layers(R"({"type": "conv2d", "name": "c", "in": 1, "out": 4, "kernel": 3},
                                      {"type": "flatten"}, {"type": "linear", "name": "fc", "in": 100, "out": 10})"),
                       "s.json");
      },
      {"s.json", "layer 3 (linear 'fc')", "expects 100 input features but receives 144"});
  expect_error_mentioning(
      [] { parse_net_spec(with_layers(R"({"type": "conv2d", "name": "c", "in": 3, "out": 4, "kernel": 3})"), "s.json"); },
      {"layer 1 (conv2d 'c')", "expects 3 input channels"});
  expect_error_mentioning(
      [] {
        parse_net_spec(with_layers(R"({"type": "residual", "name": "b", "body": [
                                        {"type": "conv2d", "name": "c", "in": 1, "out": 2, "kernel": 1}]},
                                      {"type": "flatten"})"),
                       "s.json");
      },
      {"layer 1 (residual 'b')", "body gives [2, 8, 8] but the shortcut gives [1, 8, 8]"});
  expect_error_mentioning([] { parse_net_spec(with_layers(R"({"type": "flatten"})"), "s.json"); },
                          {"last layer gives [64]", "[10]"});
  expect_error_mentioning([] { parse_net_spec(with_layers(R"({"type": "maxpool2d", "kernel": 9})"), "s.json"); },
                          {"layer 1 (maxpool2d)", "kernel 9 does not fit"});
}

TEST(Spec, MalformedSpecsAreRefusedWithTheirDefect) {
  expect_error_mentioning([] { parse_net_spec("{not json", "s.json"); }, {"s.json", "not valid JSON"});
  expect_error_mentioning([] { parse_net_spec(with_layers(R"({"type": "linear", "in": 64, "out": 10})"), "s.json"); },
                          {"layer 1", "needs \"name\""});
  expect_error_mentioning(
      [] { parse_net_spec(with_layers(R"({"type": "relu", "kernel": 2}, {"type": "flatten"})", "[1, 1, 10]"), "s.json"); },
      {"layer 1", "relu has no field \"kernel\""});
  expect_error_mentioning(
      [] {
        parse_net_spec(with_layers(R"({"type": "flatten"}, {"type": "linear", "name": "a", "in": 64, "out": 64},
                                      {"type": "linear", "name": "a", "in": 64, "out": 10})"),
                       "s.json");
      },
      {"two layers are named 'a'"});
  expect_error_mentioning([] { parse_net_spec(R"({"name": "t", "input": [1, 8], "classes": 2, "layers": []})", "s.json"); },
                          {"input"});
  expect_error_mentioning(
      [] { parse_net_spec(with_layers(R"({"type": "flatten"}, {"type": "linear", "name": "a", "in": 64, "out": -3})"), "s.json"); },
      {"layer 2", "\"out\" = -3"});
}

TEST(SpecCheckpoint, RecordsTheSpecAndRebuildsWithoutTheFile) {
  TempDir dir;
  const std::string path = dir.file("bn3.safetensors");
  Rng rng(8);
  auto net = make_model(model_file("mnist-bn3"), rng);
  save_checkpoint(path, *net, model_file("mnist-bn3"));
  LoadedModel loaded = load_checkpoint(path);
  EXPECT_EQ(loaded.model_name, "mnist-bn3");
  EXPECT_TRUE(is_model_spec_reference(loaded.architecture));
  expect_same_parameters(*net, *loaded.model);
  EXPECT_NO_THROW(load_checkpoint(path, model_file("mnist-bn3")));
  expect_error_mentioning([&] { load_checkpoint(path, "mnist-cnn"); }, {"records a 'mnist-bn3' model", "--model"});
}

// Half-precision files load as F32, rounded as the narrowing rounds, and say what they converted.
TEST(SpecCheckpoint, HalfPrecisionTensorsConvertOnLoad) {
  TempDir dir;
  Rng rng(2);
  auto net = make_model("mnist-cnn", rng);
  for (const DType dtype : {DType::BF16, DType::F16}) {
    const std::string path = dir.file("half.safetensors");
    save_checkpoint(path, *net, "mnist-cnn", {}, dtype);
    EXPECT_EQ(load_safetensors(path).find("0.weight")->dtype, dtype);
    LoadedModel loaded = load_checkpoint(path);
    const std::string name(dtype_name(dtype));
    EXPECT_EQ(loaded.converted.at(name), 8);
    EXPECT_EQ(loaded.conversion_note(), "converted 8 " + name + " tensors to F32");
    const auto original = net->named_parameters(), read = loaded.model->named_parameters();
    for (size_t i = 0; i < original.size(); ++i) {
      const auto a = original[i].tensor.to_vector(), b = read[i].tensor.to_vector();
      for (size_t k = 0; k < a.size(); ++k) {
        const float want = dtype == DType::BF16 ? bf16_to_f32(f32_to_bf16(a[k])) : f16_to_f32(f32_to_f16(a[k]));
        ASSERT_EQ(b[k], want);
      }
    }
  }
}

// A state_dict as PyTorch saves it: no metadata; F64 and BF16 tensors mixed with F32.
TEST(SpecCheckpoint, MetadataFreeFileLoadsWithTheModelNamedAndNamesAMisfittingTensor) {
  TempDir dir;
  Rng rng(4);
  auto net = make_model(model_file("mnist-bn3"), rng);
  SafetensorsFile file;
  for (auto& p : net->named_parameters()) {
    const auto v = p.tensor.to_vector();
    file.arrays.push_back(NamedArray::from_f32(p.name, p.tensor.shape(), v, DType::BF16));
  }
  for (auto& b : net->named_buffers()) {
    const auto v = b.tensor.to_vector();
    if (b.integer) {
      const std::vector<int64_t> counts(v.begin(), v.end());
      file.arrays.push_back(NamedArray::from_values<int64_t>(b.name, b.tensor.shape(), counts));
    } else {
      const std::vector<double> wide(v.begin(), v.end());
      file.arrays.push_back(NamedArray::from_values<double>(b.name, b.tensor.shape(), wide));
    }
  }
  const std::string path = dir.file("torch.safetensors");
  save_safetensors(path, file);
  LoadedModel loaded = load_checkpoint(path, model_file("mnist-bn3"));
  EXPECT_EQ(loaded.model_name, "mnist-bn3");
  EXPECT_EQ(loaded.conversion_note(), "converted 11 BF16 tensors, 6 F64 tensors to F32");
  expect_error_mentioning([&] { load_checkpoint(path); }, {"unexpected tensor 'features.0.weight'", "--model"});
  expect_error_mentioning([&] { load_checkpoint(path, model_file("mnist-cnn")); },
                          {"features.0.weight", "records no model"});
}

}  // namespace
}  // namespace lethe
