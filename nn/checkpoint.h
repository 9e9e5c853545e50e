#pragma once
// Model checkpoints as safetensors: parameters and buffers (BatchNorm's running statistics;
// num_batches_tracked as I64) under their PyTorch state_dict names, and in
// the metadata the model's name ("lethe.model") and whatever the caller adds (the data spec,
// the training settings). Loading checks that every name, dtype and shape matches the model.
#include <map>
#include <memory>
#include <string>

#include "nn/module.h"
#include "nn/safetensors.h"

namespace lethe {

// `model_name` is a model reference (nn/models.h): a built-in name, or a spec file or text, in
// which case "lethe.model" records the spec's name and "lethe.model.spec" its canonical text, so
// the file rebuilds without the spec file. Floating-point tensors are stored as `dtype` (F32,
// F16 or BF16; narrowing rounds to nearest-even); counts stay I64.
void save_checkpoint(const std::string& path, Module& model, const std::string& model_name,
                     const std::map<std::string, std::string>& metadata = {}, DType dtype = DType::F32);

struct LoadedModel {
  std::string model_name;    // for messages: the built-in name or the spec's name
  std::string architecture;  // the reference that rebuilds it: a name, or the spec's JSON text
  std::unique_ptr<Module> model;
  std::map<std::string, std::string> metadata;
  // Tensors stored in another floating-point dtype and widened or rounded to F32 on load, by
  // dtype name ("BF16" -> 12).
  std::map<std::string, int> converted;
  // One line naming the conversions ("converted 12 BF16 tensors to F32"), empty when none.
  std::string conversion_note() const;
};

// Builds the model the file records ("lethe.model.spec", else "lethe.model") and copies the
// stored tensors into it. `expected_model` (a model reference), when not empty, must denote the
// same architecture as the file records, else a UsageError; a file that records no model (a
// PyTorch export) is taken to hold `expected_model`, or the MNIST CNN when the caller expects
// nothing in particular. F16, BF16 and F64 tensors are converted to F32. A tensor holding NaN or
// Inf is refused (an Error naming it), as is any name, dtype or shape that does not match.
LoadedModel load_checkpoint(const std::string& path, const std::string& expected_model = "");

// The same on a file already parsed (a fuzzing target); `path` names it in errors.
LoadedModel load_checkpoint_from(SafetensorsFile file, const std::string& path, const std::string& expected_model = "");

// Copies the parameters and buffers stored in `path` into an existing model (names and shapes
// must match, values finite).
void load_parameters(const std::string& path, Module& model);

}  // namespace lethe
