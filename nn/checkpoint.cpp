#include "nn/checkpoint.h"

#include <set>

#include "nn/models.h"
#include "nn/safetensors.h"
#include "util/error.h"

namespace lethe {
namespace {

void copy_into(const SafetensorsFile& file, Module& model, const std::string& path) {
  auto params = model.named_parameters();
  std::set<std::string> expected;
  for (auto& p : params) expected.insert(p.name);
  for (const auto& a : file.arrays)
    if (!expected.count(a.name) && a.name.rfind("__", 0) != 0)
      fail("checkpoint '{}': unexpected tensor '{}' for this model", path, a.name);
  // Validate every entry before copying any, so a bad file leaves the model untouched.
  std::vector<const NamedArray*> sources;
  for (auto& p : params) {
    const NamedArray* a = file.find(p.name);
    if (!a) fail("checkpoint '{}': missing tensor '{}'", path, p.name);
    if (a->dtype != DType::F32)
      fail("checkpoint '{}': tensor '{}' has dtype {}, expected F32", path, p.name, dtype_name(a->dtype));
    if (a->shape != p.tensor.shape())
      fail("checkpoint '{}': tensor '{}' has shape {}, the model needs {}", path, p.name, shape_str(a->shape),
           shape_str(p.tensor.shape()));
    sources.push_back(a);
  }
  for (size_t i = 0; i < params.size(); ++i)
    params[i].tensor.copy_(Tensor::from_vector(params[i].tensor.shape(), sources[i]->values<float>()));
}

}  // namespace

void save_checkpoint(const std::string& path, Module& model, const std::string& model_name,
                     const std::map<std::string, std::string>& metadata) {
  SafetensorsFile file;
  file.metadata = metadata;
  file.metadata["lethe.model"] = model_name;
  file.metadata["format"] = "pt";
  for (auto& p : model.named_parameters()) {
    const auto values = p.tensor.to_vector();
    file.arrays.push_back(NamedArray::from_values<float>(p.name, p.tensor.shape(), std::span<const float>(values)));
  }
  save_safetensors(path, file);
}

LoadedModel load_checkpoint(const std::string& path, const std::string& expected_model) {
  return load_checkpoint_from(load_safetensors(path), path, expected_model);
}

LoadedModel load_checkpoint_from(SafetensorsFile file, const std::string& path, const std::string& expected_model) {
  LoadedModel out;
  auto it = file.metadata.find("lethe.model");
  out.model_name = it == file.metadata.end() ? expected_model : it->second;
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
