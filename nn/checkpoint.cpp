#include "nn/checkpoint.h"

#include <set>

#include "nn/models.h"
#include "nn/safetensors.h"
#include "util/error.h"

namespace lethe {
namespace {

// One tensor the checkpoint must provide: a parameter, or a buffer (integer buffers may be
// stored as I64, as PyTorch writes num_batches_tracked, or as F32).
struct Slot {
  std::string name;
  Tensor tensor;
  bool integer = false;
};

std::vector<Slot> model_slots(Module& model) {
  std::vector<Slot> slots;
  for (auto& p : model.named_parameters()) slots.push_back({p.name, p.tensor, false});
  for (auto& b : model.named_buffers()) slots.push_back({b.name, b.tensor, b.integer});
  return slots;
}

void copy_into(const SafetensorsFile& file, Module& model, const std::string& path) {
  auto slots = model_slots(model);
  std::set<std::string> expected;
  for (auto& p : slots) expected.insert(p.name);
  for (const auto& a : file.arrays)
    if (!expected.count(a.name) && a.name.rfind("__", 0) != 0)
      fail("checkpoint '{}': unexpected tensor '{}' for this model", path, a.name);
  // Validate every entry before copying any, so a bad file leaves the model untouched.
  std::vector<std::vector<float>> sources;
  for (auto& p : slots) {
    const NamedArray* a = file.find(p.name);
    if (!a) fail("checkpoint '{}': missing tensor '{}'", path, p.name);
    const bool dtype_ok = a->dtype == DType::F32 || (p.integer && a->dtype == DType::I64);
    if (!dtype_ok)
      fail("checkpoint '{}': tensor '{}' has dtype {}, expected {}", path, p.name, dtype_name(a->dtype),
           p.integer ? "I64 or F32" : "F32");
    if (a->shape != p.tensor.shape())
      fail("checkpoint '{}': tensor '{}' has shape {}, the model needs {}", path, p.name, shape_str(a->shape),
           shape_str(p.tensor.shape()));
    if (a->dtype == DType::I64) {
      std::vector<float> v;
      for (int64_t x : a->values<int64_t>()) {
        if (x < 0 || x > (int64_t{1} << 24)) fail("checkpoint '{}': count '{}' = {} out of range", path, p.name, x);
        v.push_back(static_cast<float>(x));
      }
      sources.push_back(std::move(v));
    } else {
      const auto v = a->values<float>();
      sources.emplace_back(v.begin(), v.end());
    }
  }
  for (size_t i = 0; i < slots.size(); ++i)
    slots[i].tensor.copy_(Tensor::from_vector(slots[i].tensor.shape(), sources[i]));
}

}  // namespace

void save_checkpoint(const std::string& path, Module& model, const std::string& model_name,
                     const std::map<std::string, std::string>& metadata) {
  SafetensorsFile file;
  file.metadata = metadata;
  file.metadata["lethe.model"] = model_name;
  file.metadata["format"] = "pt";
  for (auto& p : model_slots(model)) {
    const auto values = p.tensor.to_vector();
    if (p.integer) {
      std::vector<int64_t> counts(values.begin(), values.end());
      file.arrays.push_back(NamedArray::from_values<int64_t>(p.name, p.tensor.shape(), std::span<const int64_t>(counts)));
    } else {
      file.arrays.push_back(NamedArray::from_values<float>(p.name, p.tensor.shape(), std::span<const float>(values)));
    }
  }
  save_safetensors(path, file);
}

LoadedModel load_checkpoint(const std::string& path, const std::string& expected_model) {
  return load_checkpoint_from(load_safetensors(path), path, expected_model);
}

LoadedModel load_checkpoint_from(SafetensorsFile file, const std::string& path, const std::string& expected_model) {
  LoadedModel out;
  auto it = file.metadata.find("lethe.model");
  out.model_name = it != file.metadata.end() ? it->second : !expected_model.empty() ? expected_model : "mnist-cnn";
  if (!expected_model.empty() && out.model_name != expected_model)
    fail("checkpoint '{}' holds a '{}' model, expected '{}'", path, out.model_name, expected_model);
  Rng rng(0);
  try {
    out.model = make_model(out.model_name, rng);
  } catch (const UsageError&) {
    fail("checkpoint '{}' names an unknown model '{}'", path, out.model_name);
  }
  copy_into(file, *out.model, path);
  out.metadata = std::move(file.metadata);
  return out;
}

void load_parameters(const std::string& path, Module& model) { copy_into(load_safetensors(path), model, path); }

}  // namespace lethe
