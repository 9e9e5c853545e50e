#pragma once
// Shared pieces of the `lethe` subcommands: global options, the data flags that define D and T,
// device selection and output helpers.
#include <CLI/CLI.hpp>

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "datasets/prepare.h"
#include "learning/recipe.h"
#include "nn/checkpoint.h"
#include "nn/tensor.h"
#include "report/provenance.h"
#include "util/progress.h"

namespace lethe::cli {

struct GlobalOptions {
  std::string device = "auto";
  int threads = 0;
  uint64_t seed = 0;
  bool quiet = false;
  bool tf32 = false;
};

// cpu | cuda | auto -> a device; `cuda` without a usable GPU is an Error saying why.
Device resolve_device(const std::string& name);

// Applies --threads and resolves --device; every command calls it first.
Device setup(const GlobalOptions& global);

// --dataset, --data, --subset, --noise and the noise's settings.
void add_data_options(CLI::App* cmd, data::DataSpec& spec);

// --model for commands that read a checkpoint: the architecture of a file that records none.
void add_model_option(CLI::App* cmd, std::string& model);

// Loads a checkpoint (nn/checkpoint.h, `model` as --model gave it) and names any dtype
// conversion on stderr ("lethe: converted 12 BF16 tensors to F32") unless --quiet.
LoadedModel open_checkpoint(const std::string& path, const std::string& model, const GlobalOptions& global);

// --save-dtype f32|f16|bf16 for commands that write checkpoints; parse_save_dtype reads it.
void add_save_dtype_option(CLI::App* cmd, std::string& dtype);
DType parse_save_dtype(const std::string& text);

// --optimizer adam|sgd and --momentum, for commands that train models from scratch; the
// command reads them into an OptimizerChoice (learning/recipe.h) and validates it.
void add_optimizer_options(CLI::App* cmd, std::string& optimizer, double& momentum);

// --fisher empirical|sampled and --mc-samples, for commands that run Step I methods; the
// command reads --fisher with repair::parse_fisher_kind.
void add_fisher_options(CLI::App* cmd, std::string& fisher, int& mc_samples);

// The normalisation used, as JSON outputs record it: {"mean": [...], "std": [...], "source": ...}.
nlohmann::json normalisation_json(const data::DataSpec& spec, const std::vector<float>& mean,
                                  const std::vector<float>& stddev);

// An Error when --out-dir `dir` exists and is not a folder (checked before any work).
void check_out_dir(const std::string& dir);

// The provenance block of every JSON output (report/provenance.h): the device, TF32 (on only
// where --tf32 was given and the run is on a GPU), threads, and the commit and version built.
report::RunInfo run_info(const GlobalOptions& global, Device device, const std::string& data_dir = "");
// The commit this binary was built from ("unknown" outside a git checkout).
std::string git_commit();

// prepare_data with the attack adversarial noise needs (a victim trained on `device`); the one way
// every command builds D and T.
data::PreparedData load_data(const data::DataSpec& spec, Device device, Progress& progress);


// UsageError when `model` does not take `dataset`'s images (geometry or class count), naming
// both and their shapes; unknown names are UsageErrors too. `checkpoint` names the file the
// model came from, when it did not come from --model.
void check_model_fits(const std::string& model, const std::string& dataset, const std::string& checkpoint = "");

// default_model (the model a command trains when none is named): learning/recipe.h.

// --augment / --no-augment; neither given means the dataset's default (on for cifar10).
struct AugmentFlags {
  bool on = false, off = false;
  bool resolve(const std::string& dataset) const;
};
void add_augment_options(CLI::App* cmd, AugmentFlags& flags);

// The data spec and D's normalisation, as a checkpoint's metadata records them.
std::map<std::string, std::string> data_metadata(const data::DataSpec& spec, const std::vector<float>& mean,
                                                 const std::vector<float>& stddev);
// Reads back what data_metadata wrote; false when the checkpoint carries none (e.g. from PyTorch).
// A checkpoint written before the std was recorded normalised by the mean alone: stddev all 1.
bool spec_from_metadata(const std::map<std::string, std::string>& meta, data::DataSpec& spec, std::vector<float>& mean,
                        std::vector<float>* stddev = nullptr);

// Registration of each subcommand: adds it to `app` with its callback.
void add_fetch_data_command(CLI::App& app, GlobalOptions& global);
void add_make_data_command(CLI::App& app, GlobalOptions& global);
void add_train_command(CLI::App& app, GlobalOptions& global);
void add_eval_command(CLI::App& app, GlobalOptions& global);
void add_identify_command(CLI::App& app, GlobalOptions& global);
void add_treat_command(CLI::App& app, GlobalOptions& global);
void add_repair_command(CLI::App& app, GlobalOptions& global);
void add_experiment_command(CLI::App& app, GlobalOptions& global);
void add_benchmark_command(CLI::App& app, GlobalOptions& global);
void add_info_command(CLI::App& app, GlobalOptions& global);
void add_predict_command(CLI::App& app, GlobalOptions& global);
void add_attribute_command(CLI::App& app, GlobalOptions& global);

// Writes `text` to stdout (results), never progress.
void print_result(const std::string& text);

}  // namespace lethe::cli
