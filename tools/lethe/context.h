#pragma once
// What identify, treat and repair share: a trained checkpoint, the data it was trained on (its
// recorded data spec, overridable by flags), its test evaluation and the failure split.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datasets/prepare.h"
#include "learning/recipe.h"
#include "learning/train.h"
#include "nn/checkpoint.h"
#include "evaluation/metrics.h"
#include "tools/lethe/cli.h"

namespace lethe::cli {

struct RepairContext {
  Device device = Device::CPU;
  LoadedModel loaded;
  data::DataSpec spec;
  data::PreparedData data;
  EvalResult test_eval;           // the loaded model on T
  repair::FailureSplit split;     // Fq / Fh / R as indices into T
  data::ImageSet fq, fh, remaining;
  std::optional<data::Augmentation> augment;  // as the checkpoint was trained (finetune, retrain)
  // How `lethe train` made the checkpoint (sgd-influence replays it); empty when it records no run.
  std::optional<TrainingRecipe> recipe;
  bool has_noise_mask() const;
};

// The data flags after the checkpoint's recorded spec fills in the ones not given.
data::DataSpec resolve_spec(const CLI::App& cmd, const data::DataSpec& flags, const GlobalOptions& global,
                            const std::map<std::string, std::string>& metadata);

// Loads everything; `failures_file` (optional) lists test indices to use as Fq instead of the
// seeded half of the misclassified ones (Fh is then the other misclassified examples). Without
// `evaluate_test` the model is not run on T and test_eval, split, fq, fh and remaining stay
// empty: for a command that needs neither the failures nor T's accuracy (ResNet-9 on the CPU
// spends 20 s evaluating CIFAR-10's 10,000 test images).
RepairContext load_context(const CLI::App& cmd, const GlobalOptions& global, const std::string& model_file,
                           const data::DataSpec& flags, const std::string& failures_file, Progress& progress,
                           const std::string& model = "", bool evaluate_test = true);

// The loaded checkpoint's metadata with the data spec and normalisation actually used, for the
// checkpoints treat and repair write.
std::map<std::string, std::string> output_metadata(const RepairContext& c);

// The set eval and predict score: T, or D as the flags (filling in the checkpoint's recorded
// spec) define it, normalised as the model was trained (recorded, given by --mean/--std, or
// computed from D); `split` is test or train (else a UsageError).
struct EvalSet {
  data::DataSpec spec;
  data::ImageSet set;
  std::vector<float> mean, stddev;
};
EvalSet eval_set(const CLI::App& cmd, const GlobalOptions& global, const data::DataSpec& flags, const LoadedModel& loaded,
                 const std::string& split, Device device, const std::string& model_file);

// Reads a list of non-negative integer indices (one per line; '#' comments) below `limit`.
std::vector<int64_t> read_index_file(const std::string& path, int64_t limit);
// The same on text already in memory (a fuzzing target); `name` names it in errors.
std::vector<int64_t> parse_index_list(std::string_view text, const std::string& name, int64_t limit);

// Accuracy on the failure split's parts (and on all of T).
struct SplitAccuracy {
  double fq = 0, fh = 0, remaining = 0, test = 0;
};
SplitAccuracy split_accuracy(Module& model, const RepairContext& c);
// {"accuracy_fq", "accuracy_fh", "accuracy_r", "accuracy_test"}, as every JSON output writes them.
nlohmann::json accuracy_json(const SplitAccuracy& a);

// Peak memory as the JSON reports it: the process's resident set, and on the GPU the caching
// allocator's high-water marks (kernels/device.h says what they leave out).
void add_memory(nlohmann::json& j, Device device);
// "1.23 GiB"
std::string gib(uint64_t bytes);

// The cause-set rule shared by treat and repair: --top-k, --top-fraction or --positive.
struct CauseRule {
  int64_t top_k = -1;
  double top_fraction = -1;
  bool positive = false;
  bool top_k_by_default = false;  // no rule given: top_k is the command's default
  std::string describe() const;
};
// Checks the values given (a --top-k or --top-fraction out of range is refused as given, never
// read as "no rule"); with no rule given, takes --top-k `default_top_k`, or without a default
// (-1) asks for one. Before any file is read.
void resolve_cause_rule(const CLI::App& cmd, CauseRule& rule, int64_t default_top_k = -1);
// UsageError when the rule asks for more causes than D's `n_train` examples, saying when the
// count was the default.
void check_cause_rule_fits(const CauseRule& rule, int64_t n_train);
void add_cause_rule_options(CLI::App* cmd, CauseRule& rule, const std::string& default_text);
std::vector<int64_t> select_causes(const CauseRule& rule, const std::vector<double>& scores);

// Adds --model-file, --model, the data flags and --failures to a command.
void add_context_options(CLI::App* cmd, std::string& model_file, data::DataSpec& spec, std::string& failures_file,
                         std::string& model);

}  // namespace lethe::cli
