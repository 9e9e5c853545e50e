#pragma once
// Shared pieces of the `lethe` subcommands: global options, the data flags that define D and T,
// device selection and output helpers.
#include <CLI/CLI.hpp>

#include <map>
#include <string>

#include "datasets/prepare.h"
#include "nn/tensor.h"
#include "util/progress.h"

namespace lethe::cli {

struct GlobalOptions {
  std::string device = "auto";
  int threads = 0;
  uint64_t seed = 0;
  bool quiet = false;
};

// cpu | cuda | auto -> a device; `cuda` without a usable GPU is an Error saying why.
Device resolve_device(const std::string& name);

// Applies --threads and resolves --device; every command calls it first.
Device setup(const GlobalOptions& global);

// --dataset, --data, --subset, --noise and the noise's settings.
void add_data_options(CLI::App* cmd, data::DataSpec& spec);

// Flags of add_data_options that change D (all but --data), for "given on the command line?" checks.
const std::vector<std::string>& data_flags_defining_d();

// prepare_data with the attack adversarial noise needs (a victim trained on `device`); the one way
// every command builds D and T.
data::PreparedData load_data(const data::DataSpec& spec, Device device, Progress& progress);

// The data spec and the training-set mean, as a checkpoint's metadata records them.
std::map<std::string, std::string> data_metadata(const data::DataSpec& spec, const std::vector<float>& mean);
// Reads back what data_metadata wrote; false when the checkpoint carries none (e.g. from PyTorch).
bool spec_from_metadata(const std::map<std::string, std::string>& meta, data::DataSpec& spec, std::vector<float>& mean);

// Registration of each subcommand: adds it to `app` with its callback.
void add_fetch_data_command(CLI::App& app, GlobalOptions& global);
void add_train_command(CLI::App& app, GlobalOptions& global);
void add_eval_command(CLI::App& app, GlobalOptions& global);
void add_identify_command(CLI::App& app, GlobalOptions& global);
void add_treat_command(CLI::App& app, GlobalOptions& global);
void add_repair_command(CLI::App& app, GlobalOptions& global);
void add_experiment_command(CLI::App& app, GlobalOptions& global);

// Writes `text` to stdout (results), never progress.
void print_result(const std::string& text);

}  // namespace lethe::cli
