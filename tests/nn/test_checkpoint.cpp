// Checkpoints: what save_checkpoint writes, load_checkpoint gives back exactly; a file written
// by PyTorch (nn.Sequential state_dict names, no lethe metadata) loads as the MNIST CNN; and a
// file that does not fit the model is refused with an Error naming the file and the tensor.
#include "nn/checkpoint.h"

#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "datasets/idx_fixture.h"
#include "nn/models.h"
#include "nn/safetensors.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe {
namespace {

using data::fixture::expect_error_mentioning;
using data::fixture::TempDir;
using data::fixture::write_bytes;

// The MNIST CNN's state_dict as torch.nn.Sequential names it: Conv2d at 0 and 3, Linear at 7 and 9.
struct Entry {
  std::string name;
  std::vector<int64_t> shape;
};
const std::vector<Entry>& torch_layout() {
  static const std::vector<Entry> layout = {
      {"0.weight", {32, 1, 5, 5}}, {"0.bias", {32}},   {"3.weight", {32, 32, 5, 5}}, {"3.bias", {32}},
      {"7.weight", {50, 1568}},    {"7.bias", {50}},   {"9.weight", {10, 50}},       {"9.bias", {10}},
  };
  return layout;
}

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Distinct, recognisable values per tensor: value j of tensor t is (t+1) * 1e-3 * ((j % 97) - 48).
std::vector<float> torch_values(size_t tensor_index, int64_t count) {
  std::vector<float> v(static_cast<size_t>(count));
  for (int64_t j = 0; j < count; ++j)
    v[static_cast<size_t>(j)] = static_cast<float>(tensor_index + 1) * 1e-3f * static_cast<float>((j % 97) - 48);
  return v;
}

// A safetensors file written by hand, byte by byte as the format defines it (not through our
// writer, so no "lethe.crc32" and no "lethe.model"): what safetensors.torch.save_file produces
// for the PyTorch model, with `edit` applied to the tensor list first.
struct RawTensor {
  std::string name;
  std::string dtype;  // "F32", "F64", ...
  std::vector<int64_t> shape;
  std::string bytes;
};
std::vector<RawTensor> torch_tensors() {
  std::vector<RawTensor> out;
  for (size_t t = 0; t < torch_layout().size(); ++t) {
    const auto& e = torch_layout()[t];
    const auto values = torch_values(t, numel(e.shape));
    std::string bytes(values.size() * sizeof(float), '\0');
    std::memcpy(bytes.data(), values.data(), bytes.size());
    out.push_back({e.name, "F32", e.shape, bytes});
  }
  return out;
}
std::string raw_safetensors(const std::vector<RawTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text += ' ';  // the reference writer pads the header with spaces
  std::string out(8, '\0');
  const uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xff);
  return out + text + data;
}

std::map<std::string, std::vector<float>> parameter_values(Module& model) {
  std::map<std::string, std::vector<float>> out;
  for (auto& p : model.named_parameters()) out[p.name] = p.tensor.to_vector();
  return out;
}

TEST(Checkpoint, RoundTripKeepsValuesAndMetadata) {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  // A seed other than load_checkpoint's own init seed (0): equal values prove the copy happened.
  Rng rng(1234);
  auto model = make_mnist_cnn(rng);
  const auto saved = parameter_values(*model);
  Rng zero(0);
  ASSERT_NE(parameter_values(*make_mnist_cnn(zero)), saved) << "test setup: the seeds give the same model";

  save_checkpoint(path, *model, "mnist-cnn", {{"lethe.data.subset", "3000"}, {"note", "a b, c=d"}});
  const LoadedModel loaded = load_checkpoint(path);
  EXPECT_EQ(loaded.model_name, "mnist-cnn");
  EXPECT_EQ(parameter_values(*loaded.model), saved);  // bit-exact: float32 in, float32 out
  EXPECT_EQ(loaded.metadata.at("lethe.data.subset"), "3000");
  EXPECT_EQ(loaded.metadata.at("note"), "a b, c=d");
  EXPECT_EQ(loaded.metadata.at("lethe.model"), "mnist-cnn");

  // load_parameters fills an existing model the same way.
  Rng other(99);
  auto target = make_mnist_cnn(other);
  load_parameters(path, *target);
  EXPECT_EQ(parameter_values(*target), saved);
}

TEST(Checkpoint, ModelHasThePyTorchSequentialNames) {
  Rng rng(0);
  auto model = make_mnist_cnn(rng);
  std::vector<Entry> names;
  for (auto& p : model->named_parameters()) names.push_back({p.name, p.tensor.shape()});
  ASSERT_EQ(names.size(), torch_layout().size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(names[i].name, torch_layout()[i].name);
    EXPECT_EQ(names[i].shape, torch_layout()[i].shape) << names[i].name;
  }
}

TEST(Checkpoint, LoadsAPyTorchExport) {
  TempDir dir;
  const std::string path = dir.file("torch.safetensors");
  write_bytes(path, raw_safetensors(torch_tensors()));
  const LoadedModel loaded = load_checkpoint(path);
  EXPECT_EQ(loaded.model_name, "mnist-cnn");
  EXPECT_EQ(loaded.metadata.count("lethe.model"), 0u);
  auto values = parameter_values(*loaded.model);
  ASSERT_EQ(values.size(), torch_layout().size());
  for (size_t t = 0; t < torch_layout().size(); ++t) {
    const auto& e = torch_layout()[t];
    EXPECT_EQ(values[e.name], torch_values(t, numel(e.shape))) << e.name;
  }
}

// Each defect: the PyTorch export with one thing wrong, refused naming the file and the tensor.
class BrokenCheckpoint : public ::testing::Test {
 protected:
  void expect_refused(const std::vector<RawTensor>& tensors, std::initializer_list<std::string_view> extra) {
    write_bytes(path_, raw_safetensors(tensors));
    std::vector<std::string_view> needles = {path_};
    needles.insert(needles.end(), extra.begin(), extra.end());
    try {
      (void)load_checkpoint(path_);
      ADD_FAILURE() << "load_checkpoint accepted a broken file";
    } catch (const Error& e) {
      const std::string what = e.what();
      for (auto needle : needles)
        EXPECT_NE(what.find(needle), std::string::npos) << "error '" << what << "' does not mention '" << needle << "'";
      EXPECT_EQ(what.find('\n'), std::string::npos) << "error is not one line: " << what;
    }
    // load_parameters checks the same way.
    Rng rng(7);
    auto target = make_mnist_cnn(rng);
    EXPECT_THROW(load_parameters(path_, *target), Error);
  }

  TempDir dir_;
  std::string path_ = dir_.file("broken.safetensors");
};

TEST_F(BrokenCheckpoint, MissingTensor) {
  auto tensors = torch_tensors();
  tensors.pop_back();  // 9.bias
  expect_refused(tensors, {"9.bias", "missing"});
}

TEST_F(BrokenCheckpoint, ExtraTensor) {
  auto tensors = torch_tensors();
  tensors.push_back({"11.weight", "F32", {2}, std::string(8, '\0')});
  expect_refused(tensors, {"11.weight"});
}

TEST_F(BrokenCheckpoint, WrongDtype) {
  auto tensors = torch_tensors();
  RawTensor& bias = tensors[5];  // 7.bias, 50 values
  ASSERT_EQ(bias.name, "7.bias");
  bias.dtype = "I32";  // F64, F16 and BF16 convert; integers do not
  bias.bytes = std::string(50 * sizeof(int32_t), '\0');
  expect_refused(tensors, {"7.bias", "I32"});
}

TEST_F(BrokenCheckpoint, WrongShape) {
  auto tensors = torch_tensors();
  RawTensor& weight = tensors[4];  // 7.weight stored transposed: same byte count, wrong shape
  ASSERT_EQ(weight.name, "7.weight");
  weight.shape = {1568, 50};
  expect_refused(tensors, {"7.weight", "1568"});
}

TEST_F(BrokenCheckpoint, RenamedTensor) {
  auto tensors = torch_tensors();
  tensors[0].name = "conv1.weight";
  expect_refused(tensors, {"conv1.weight"});
}

// A weight that is NaN or Inf (F32 written so, or a half whose value overflowed) is refused at
// load, naming the tensor; loaded, it would only show as a model that predicts one class.
TEST_F(BrokenCheckpoint, NonFiniteWeight) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    auto tensors = torch_tensors();
    RawTensor& bias = tensors[5];  // 7.bias, 50 values
    ASSERT_EQ(bias.name, "7.bias");
    std::memcpy(bias.bytes.data() + 17 * sizeof(float), &bad, sizeof(float));
    expect_refused(tensors, {"7.bias", "not finite"});
  }
  // F16's largest finite value is 65504; 0x7C00 is its +Inf.
  auto tensors = torch_tensors();
  RawTensor& bias = tensors[5];
  bias.dtype = "F16";
  bias.bytes = std::string(50 * 2, '\0');
  bias.bytes[2 * 3 + 1] = static_cast<char>(0x7C);
  expect_refused(tensors, {"7.bias", "not finite"});
}

TEST_F(BrokenCheckpoint, UnknownModelName) {
  SafetensorsFile f = load_safetensors([&] {
    write_bytes(path_, raw_safetensors(torch_tensors()));
    return path_;
  }());
  f.metadata["lethe.model"] = "resnet50";
  save_safetensors(path_, f);
  // No expectation: the model named in the file is built, and lethe knows no such model.
  expect_error_mentioning([&] { (void)load_checkpoint(path_, ""); }, {path_, "resnet50"});
  // The caller's expectation is checked too: a file naming a model is not loaded as another.
  expect_error_mentioning([&] { (void)load_checkpoint(path_, "mnist-cnn"); }, {path_, "resnet50", "mnist-cnn"});
}

TEST_F(BrokenCheckpoint, TruncatedFile) {
  const std::string bytes = raw_safetensors(torch_tensors());
  write_bytes(path_, bytes.substr(0, bytes.size() - 4));
  expect_error_mentioning([&] { (void)load_checkpoint(path_); }, {path_});
}

}  // namespace
}  // namespace lethe
