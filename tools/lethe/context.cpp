#include "tools/lethe/context.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <tuple>

#include "datasets/transforms.h"
#include "evaluation/metrics.h"
#include "kernels/device.h"
#include "util/atomic_file.h"
#include "util/error.h"

#include <fmt/ranges.h>

namespace lethe::cli {

bool RepairContext::has_noise_mask() const { return spec.noise != "none"; }

data::DataSpec resolve_spec(const CLI::App& cmd, const data::DataSpec& flags, const GlobalOptions& global,
                            const std::map<std::string, std::string>& metadata) {
  data::validate_values(flags);  // a NaN compares equal to nothing: refuse it before any comparison
  data::DataSpec spec = flags;
  spec.seed = global.seed;
  data::DataSpec recorded;
  std::vector<float> mean, stddev;
  if (!spec_from_metadata(metadata, recorded, mean, &stddev)) return spec;
  // A recorded normalisation is part of the model; a given one must agree with it.
  if (cmd.count("--mean") || cmd.count("--std")) {
    const auto channels = static_cast<int64_t>(mean.size());
    data::DataSpec given = flags;
    if (given.mean.empty()) given.mean = mean;  // --std alone: compare it with the recorded std
    for (const auto& [flag, values] : {std::pair{"--mean", &given.mean}, std::pair{"--std", &given.stddev}})
      if (!values->empty() && values->size() != 1 && static_cast<int64_t>(values->size()) != channels)
        throw UsageError(fmt::format("{}: {} values for a model normalised over {} channels", flag, values->size(), channels));
    const auto [m, sd] = data::given_normalisation(given, channels);
    auto close = [](const std::vector<float>& a, const std::vector<float>& b) {
      for (size_t i = 0; i < a.size(); ++i)
        if (std::abs(a[i] - b[i]) > 1e-6f * std::max(1.0f, std::abs(b[i]))) return false;
      return true;
    };
    if (!close(m, mean) || !close(sd, stddev))
      throw UsageError(fmt::format("--mean/--std ({} / {}) disagree with the normalisation the checkpoint records "
                                   "(lethe.data.mean {} / lethe.data.std {}); omit them to use the recorded one",
                                   fmt::join(m, ","), fmt::join(sd, ","), fmt::join(mean, ","), fmt::join(stddev, ",")));
  }
  spec.mean = recorded.mean;
  spec.stddev = recorded.stddev;
  if (cmd.count("--dataset") == 0) spec.dataset = recorded.dataset;
  if (cmd.count("--subset") == 0) spec.subset = recorded.subset;
  if (cmd.count("--noise") == 0) spec.noise = recorded.noise;
  if (cmd.count("--noise-fraction") == 0) spec.noise_fraction = recorded.noise_fraction;
  if (cmd.count("--noise-amount") == 0) spec.noise_amount = recorded.noise_amount;
  if (cmd.count("--victim-epochs") == 0) spec.victim_epochs = recorded.victim_epochs;
  if (cmd.count("--noise-design") == 0) spec.design = recorded.design;
  if (cmd.count("--noisy-queries") == 0) spec.query_fraction = recorded.query_fraction;
  // --seed is global; 0 (its default) means "as recorded".
  if (global.seed == 0) spec.seed = recorded.seed;
  return spec;
}

EvalSet eval_set(const CLI::App& cmd, const GlobalOptions& global, const data::DataSpec& flags, const LoadedModel& loaded,
                 const std::string& split, Device device, const std::string& model_file) {
  if (split != "test" && split != "train")
    throw UsageError(fmt::format("--split: unknown split '{}' (known: test, train)", split));
  data::DataSpec recorded;
  std::vector<float> mean, stddev;
  const bool has_meta = spec_from_metadata(loaded.metadata, recorded, mean, &stddev);
  EvalSet out;
  out.spec = resolve_spec(cmd, flags, global, loaded.metadata);
  check_model_fits(loaded.architecture, out.spec.dataset, model_file);
  data::validate_spec(out.spec);
  // T alone needs no D when the normalisation is known: recorded with the same D, or given.
  const int64_t channels = data::dataset_geometry(out.spec.dataset).channels;
  if (split == "test" && has_meta && data::same_data(out.spec, recorded)) {
    out.mean = mean;
    out.stddev = stddev;
  } else if (split == "test" && !out.spec.mean.empty()) {
    std::tie(out.mean, out.stddev) = data::given_normalisation(out.spec, channels);
  } else {
    Progress progress(global.quiet);
    data::PreparedData d = load_data(out.spec, device, progress);
    out.set = split == "test" ? std::move(d.test) : std::move(d.train);
    out.mean = d.mean;
    out.stddev = d.stddev;
    return out;
  }
  out.set = data::read_split(out.spec, data::Split::Test);
  data::normalise(out.set, out.mean, out.stddev);
  return out;
}

std::vector<int64_t> read_index_file(const std::string& path, int64_t limit) {
  return parse_index_list(read_file(path), path, limit);
}

std::vector<int64_t> parse_index_list(std::string_view text, const std::string& path, int64_t limit) {
  std::istringstream in{std::string(text)};
  std::string line;
  std::vector<int64_t> out;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty()) continue;
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(line, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != line.size() || v < 0) fail("{}:{}: '{}' is not a non-negative index", path, lineno, line);
    if (v >= limit) fail("{}:{}: index {} is outside the {} test examples", path, lineno, v, limit);
    out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.empty()) fail("{}: no indices", path);
  return out;
}

// The run `lethe train` recorded in the checkpoint: its seed, epochs (as many as it finished),
// batch, optimiser (Adam in checkpoints from before it was recorded), step size and weight decay
// (0 in checkpoints from before it was recorded).
std::optional<TrainingRecipe> recorded_recipe(const LoadedModel& loaded, const data::DataSpec& spec,
                                              const std::optional<data::Augmentation>& augment) {
  const auto& meta = loaded.metadata;
  const auto get = [&](const char* key) -> std::optional<std::string> {
    const auto it = meta.find(key);
    return it == meta.end() ? std::nullopt : std::optional(it->second);
  };
  const auto epochs = get("lethe.train.epochs_done") ? get("lethe.train.epochs_done") : get("lethe.train.epochs");
  const auto batch = get("lethe.train.batch"), lr = get("lethe.train.lr"), seed = get("lethe.data.seed");
  if (!epochs || !batch || !lr) return std::nullopt;
  const OptimizerChoice optimizer = recorded_optimizer(meta);  // its own errors name the key
  try {
    const uint64_t s = seed ? std::stoull(*seed) : spec.seed;
    TrainOptions t = base_training(s, std::stoi(*epochs), std::stoll(*batch), std::stod(*lr), augment, optimizer);
    if (const auto wd = get("lethe.train.weight_decay")) set_weight_decay(t, std::stof(*wd));
    return TrainingRecipe{loaded.architecture, s, t};
  } catch (const std::exception&) {
    fail("the checkpoint's training record is not readable (lethe.train.epochs {}, batch {}, lr {})", *epochs, *batch,
         *lr);
  }
}

RepairContext load_context(const CLI::App& cmd, const GlobalOptions& global, const std::string& model_file,
                           const data::DataSpec& flags, const std::string& failures_file, Progress& progress,
                           const std::string& model, bool evaluate_test) {
  RepairContext c;
  c.device = setup(global);
  c.loaded = open_checkpoint(model_file, model, global);
  c.spec = resolve_spec(cmd, flags, global, c.loaded.metadata);
  check_model_fits(c.loaded.architecture, c.spec.dataset, model_file);
  c.data = load_data(c.spec, c.device, progress);
  // Treatments that train (finetune, retrain) keep the recipe the model was trained with.
  const auto recorded = c.loaded.metadata.find("lethe.train.augment");
  if (recorded != c.loaded.metadata.end() && recorded->second == "1") c.augment = data::training_augmentation(c.data);
  c.recipe = recorded_recipe(c.loaded, c.spec, c.augment);
  c.loaded.model->to(c.device);
  if (!evaluate_test) {
    progress.line(fmt::format("model {} on {}: D = {} examples (noise: {}); the test set is not evaluated", model_file,
                              device_name(c.device), c.data.train.n, c.spec.noise));
    return c;
  }
  c.test_eval = evaluate(*c.loaded.model, c.data.test);
  c.split = failures_file.empty()
                ? repair::split_failures(c.test_eval.predictions, c.data.test.labels, c.spec.seed)
                : repair::split_given_failures(c.test_eval.predictions, c.data.test.labels,
                                               read_index_file(failures_file, c.data.test.n));
  c.fq = data::take(c.data.test, c.split.fq);
  c.fh = data::take(c.data.test, c.split.fh);
  c.remaining = data::take(c.data.test, c.split.remaining);
  progress.line(fmt::format("model {} on {}: test accuracy {:.4f}; failures |Fq| = {}, |Fh| = {}; D = {} examples (noise: {})",
                            model_file, device_name(c.device), c.test_eval.accuracy, c.split.fq.size(), c.split.fh.size(),
                            c.data.train.n, c.spec.noise));
  return c;
}

std::map<std::string, std::string> output_metadata(const RepairContext& c) {
  auto meta = c.loaded.metadata;
  for (auto& [key, value] : data_metadata(c.spec, c.data.mean, c.data.stddev)) meta[key] = value;
  return meta;
}

void add_context_options(CLI::App* cmd, std::string& model_file, data::DataSpec& spec, std::string& failures_file,
                         std::string& model) {
  cmd->add_option("--model-file", model_file, "Trained checkpoint (safetensors), e.g. from `lethe train`")->required();
  add_model_option(cmd, model);
  add_data_options(cmd, spec);
  cmd->add_option("--failures", failures_file,
                  "File of test-set indices to use as the query failures Fq (default: the seeded half of the "
                  "misclassified test examples)");
  cmd->footer("The data flags default to what the checkpoint recorded at training time, so D is the set the model "
              "was trained on. A checkpoint without lethe's metadata (e.g. saved by PyTorch) takes them from the "
              "flags: --model names its architecture and --mean/--std its normalisation.");
}

nlohmann::json accuracy_json(const SplitAccuracy& a) {
  return {{"accuracy_fq", a.fq}, {"accuracy_fh", a.fh}, {"accuracy_r", a.remaining}, {"accuracy_test", a.test}};
}

SplitAccuracy split_accuracy(Module& model, const RepairContext& c) {
  SplitAccuracy a;
  a.fq = c.fq.n ? evaluate(model, c.fq).accuracy : 0.0;
  a.fh = c.fh.n ? evaluate(model, c.fh).accuracy : 0.0;
  a.remaining = c.remaining.n ? evaluate(model, c.remaining).accuracy : 0.0;
  a.test = evaluate(model, c.data.test).accuracy;
  return a;
}

std::string CauseRule::describe() const {
  if (positive) return "every example with r > 0";
  if (top_fraction >= 0) return fmt::format("the top {:.1f}% by score", 100 * top_fraction);
  return fmt::format("the top {} by score", top_k);
}

void resolve_cause_rule(const CLI::App& cmd, CauseRule& rule, int64_t default_top_k) {
  if (cmd.count("--top-k") && rule.top_k < 0)
    throw UsageError(fmt::format("--top-k {}: must be >= 0", rule.top_k));
  if (cmd.count("--top-fraction") && !(rule.top_fraction >= 0 && rule.top_fraction <= 1))
    throw UsageError(fmt::format("--top-fraction {}: must be in [0, 1]", rule.top_fraction));
  if (cmd.count("--top-k") || cmd.count("--top-fraction") || rule.positive) return;
  if (default_top_k < 0) throw UsageError("choose the cause set: --top-k K, --top-fraction F or --positive");
  rule.top_k = default_top_k;
  rule.top_k_by_default = true;
}

void check_cause_rule_fits(const CauseRule& rule, int64_t n_train) {
  if (rule.positive || rule.top_fraction >= 0 || rule.top_k <= n_train) return;
  if (rule.top_k_by_default)
    throw UsageError(fmt::format("no cause rule given, and the default --top-k {} is larger than the {} training examples "
                                 "of D: choose one with --top-k K, --top-fraction F or --positive",
                                 rule.top_k, n_train));
  throw UsageError(fmt::format("--top-k {}: larger than the {} training examples", rule.top_k, n_train));
}

void add_cause_rule_options(CLI::App* cmd, CauseRule& rule, const std::string& default_text) {
  auto* k = cmd->add_option("--top-k", rule.top_k, "Cause set: the k highest-scoring examples (" + default_text + ")");
  auto* f = cmd->add_option("--top-fraction", rule.top_fraction, "Cause set: the highest-scoring fraction of D");
  auto* p = cmd->add_flag("--positive", rule.positive, "Cause set: every example with a positive score");
  k->excludes(f)->excludes(p);
  f->excludes(p);
}

std::vector<int64_t> select_causes(const CauseRule& rule, const std::vector<double>& scores) {
  if (rule.positive) return repair::causes_positive(scores);
  if (rule.top_fraction >= 0) return repair::causes_top_fraction(scores, rule.top_fraction);
  return repair::causes_top_k(scores, rule.top_k);
}

void add_memory(nlohmann::json& j, Device device) {
  j["host_peak_rss_bytes"] = device::host_peak_resident_bytes();
  if (device != Device::CUDA) return;
  const device::CudaMemoryPeak peak = device::cuda_memory_peak();
  j["device_peak_bytes"] = peak.in_use_bytes;
  j["device_peak_reserved_bytes"] = peak.reserved_bytes;
}

std::string gib(uint64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1u << 30)); }

}  // namespace lethe::cli
