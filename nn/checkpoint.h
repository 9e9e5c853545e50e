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

void save_checkpoint(const std::string& path, Module& model, const std::string& model_name,
                     const std::map<std::string, std::string>& metadata = {});

struct LoadedModel {
  std::string model_name;
  std::unique_ptr<Module> model;
  std::map<std::string, std::string> metadata;
};

// Builds the model named in the file and copies the stored tensors into it. `expected_model`,
// when not empty, must be that name; a file that names no model (a PyTorch export) is taken to
// hold `expected_model`, or the MNIST CNN when the caller expects nothing in particular.
LoadedModel load_checkpoint(const std::string& path, const std::string& expected_model = "");

// The same on a file already parsed (a fuzzing target); `path` names it in errors.
LoadedModel load_checkpoint_from(SafetensorsFile file, const std::string& path, const std::string& expected_model = "");

// Copies the parameters and buffers stored in `path` into an existing model (names and shapes
// must match).
void load_parameters(const std::string& path, Module& model);

}  // namespace lethe
