#include "nn/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>

#include "nn/models.h"
#include "nn/safetensors.h"
#include "nn/spec.h"
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

// The stored values of every slot, as F32, after checking that the file holds exactly the
// model's tensors with their dtypes and shapes (an Error naming the first that does not).
std::vector<std::vector<float>> matching_sources(const SafetensorsFile& file, const std::vector<Slot>& slots,
                                                 const std::string& path, std::map<std::string, int>* converted) {
  std::set<std::string> expected;
  for (auto& p : slots) expected.insert(p.name);
  for (const auto& a : file.arrays)
    if (!expected.count(a.name) && a.name.rfind("__", 0) != 0)
      fail("checkpoint '{}': unexpected tensor '{}' for this model", path, a.name);
  std::vector<std::vector<float>> sources;
  for (auto& p : slots) {
    const NamedArray* a = file.find(p.name);
    if (!a) fail("checkpoint '{}': missing tensor '{}'", path, p.name);
    const bool dtype_ok = is_float_dtype(a->dtype) || (p.integer && a->dtype == DType::I64);
    if (!dtype_ok)
      fail("checkpoint '{}': tensor '{}' has dtype {}, expected {}", path, p.name, dtype_name(a->dtype),
           p.integer ? "I64 or a floating-point dtype" : "F32, F16, BF16 or F64");
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
      sources.push_back(a->to_f32());
      if (a->dtype != DType::F32 && converted) ++(*converted)[std::string(dtype_name(a->dtype))];
    }
  }
  return sources;
}

// A NaN or Inf (written so, or a half that overflowed on saving) would only show as a model that
// predicts one class for everything: it is named instead.
void refuse_non_finite(const SafetensorsFile& file, const std::vector<Slot>& slots,
                       const std::vector<std::vector<float>>& sources, const std::string& path) {
  for (size_t i = 0; i < slots.size(); ++i) {
    const auto& v = sources[i];
    const auto bad = std::find_if(v.begin(), v.end(), [](float x) { return !std::isfinite(x); });
    if (bad != v.end())
      fail("checkpoint '{}': tensor '{}' is not finite ({} at element {} of {}, stored as {})", path, slots[i].name,
           *bad, bad - v.begin(), v.size(), dtype_name(file.find(slots[i].name)->dtype));
  }
}

// Every entry is checked before any is copied, so a bad file leaves the model untouched.
// `on_mismatch` (optional) rewrites the error of a file that does not hold the model's tensors.
void copy_into(const SafetensorsFile& file, Module& model, const std::string& path,
               std::map<std::string, int>* converted = nullptr,
               const std::function<void(const Error&)>& on_mismatch = nullptr) {
  auto slots = model_slots(model);
  std::vector<std::vector<float>> sources;
  try {
    sources = matching_sources(file, slots, path, converted);
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    if (!on_mismatch) throw;
    on_mismatch(e);
    throw;
  }
  refuse_non_finite(file, slots, sources, path);
  for (size_t i = 0; i < slots.size(); ++i)
    slots[i].tensor.copy_(Tensor::from_vector(slots[i].tensor.shape(), sources[i]));
}

constexpr const char* kSpecKey = "lethe.model.spec";

}  // namespace

std::string LoadedModel::conversion_note() const {
  std::string note;
  for (const auto& [dtype, count] : converted)
    note += fmt::format("{}{} {} tensor{}", note.empty() ? "" : ", ", count, dtype, count == 1 ? "" : "s");
  return note.empty() ? note : "converted " + note + " to F32";
}

void save_checkpoint(const std::string& path, Module& model, const std::string& model_name,
                     const std::map<std::string, std::string>& metadata, DType dtype) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    fail("save_checkpoint: cannot store parameters as {}", dtype_name(dtype));
  SafetensorsFile file;
  file.metadata = metadata;
  file.metadata["lethe.model"] = model_display_name(model_name);
  if (is_model_spec_reference(model_name))
    file.metadata[kSpecKey] = canonical_spec(model_name.front() == '{' ? parse_net_spec(model_name, kSpecKey)
                                                                       : load_net_spec(model_name));
  else
    file.metadata.erase(kSpecKey);
  file.metadata["format"] = "pt";
  for (auto& p : model_slots(model)) {
    const auto values = p.tensor.to_vector();
    if (p.integer) {
      std::vector<int64_t> counts(values.begin(), values.end());
      file.arrays.push_back(NamedArray::from_values<int64_t>(p.name, p.tensor.shape(), std::span<const int64_t>(counts)));
    } else {
      file.arrays.push_back(NamedArray::from_f32(p.name, p.tensor.shape(), std::span<const float>(values), dtype));
    }
  }
  save_safetensors(path, file);
}

LoadedModel load_checkpoint(const std::string& path, const std::string& expected_model) {
  return load_checkpoint_from(load_safetensors(path), path, expected_model);
}

LoadedModel load_checkpoint_from(SafetensorsFile file, const std::string& path, const std::string& expected_model) {
  LoadedModel out;
  const auto spec = file.metadata.find(kSpecKey);
  const auto name = file.metadata.find("lethe.model");
  const std::string recorded = spec != file.metadata.end() ? spec->second
                               : name != file.metadata.end() ? name->second
                                                             : std::string();
  if (!expected_model.empty() && !recorded.empty()) {
    bool same = false;
    try {
      same = same_architecture(expected_model, recorded);
    } catch (const UsageError&) {
      same = false;
    }
    if (!same)
      throw UsageError(fmt::format("checkpoint '{}' records a '{}' model (lethe.model) but --model says '{}': drop "
                                   "--model, or give the architecture the file was saved with",
                                   path, name != file.metadata.end() ? name->second : "?", expected_model));
  }
  out.architecture = !recorded.empty() ? recorded : !expected_model.empty() ? expected_model : "mnist-cnn";
  Rng rng(0);
  try {
    out.model_name = model_display_name(out.architecture);
    out.model = make_model(out.architecture, rng);
  } catch (const UsageError&) {
    fail("checkpoint '{}' names an unknown model '{}'", path, out.architecture);
  }
  // A file that records no model and does not match is most likely another architecture.
  copy_into(file, *out.model, path, &out.converted, [&](const Error& e) {
    if (recorded.empty())
      fail("{} (the file records no model; read as {}{})", e.what(), out.model_name,
           expected_model.empty() ? ": name its architecture with --model" : "");
  });
  out.metadata = std::move(file.metadata);
  return out;
}

void load_parameters(const std::string& path, Module& model) { copy_into(load_safetensors(path), model, path); }

}  // namespace lethe
