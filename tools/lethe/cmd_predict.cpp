// lethe predict: per-example logits, probabilities and losses, for comparing with another
// framework's outputs on the same inputs.
#include <cmath>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "learning/batches.h"
#include "nn/autograd.h"
#include "nn/ops.h"
#include "nn/safetensors.h"
#include "tools/lethe/context.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace lethe::cli {
namespace {

struct PredictArgs {
  data::DataSpec spec;
  std::string model_file, model, out;
  std::string split = "test";
  int64_t batch = 500;
  bool json = false;
};

struct Predictions {
  int64_t n = 0, classes = 0;
  std::vector<float> logits, probabilities, losses;  // [n, classes], [n, classes], [n]
  std::vector<int64_t> labels, predicted;
};

Predictions predict(Module& model, const data::ImageSet& set, int64_t batch) {
  NoGradGuard no_grad;
  ModeGuard evaluation_mode(model, false);
  Predictions p;
  p.n = set.n;
  p.classes = set.num_classes;
  const auto k = static_cast<size_t>(p.classes);
  p.logits.resize(static_cast<size_t>(set.n) * k);
  p.probabilities.resize(p.logits.size());
  p.losses.resize(static_cast<size_t>(set.n));
  p.labels.resize(static_cast<size_t>(set.n));
  p.predicted.resize(static_cast<size_t>(set.n));
  for_each_image_batch(set, batch, model.device(), [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
    Tensor logits = model.forward(x);
    if (logits.size(1) != p.classes) fail("model has {} outputs but the data has {} classes", logits.size(1), p.classes);
    const auto z = logits.to_vector();
    const auto loss = cross_entropy(logits, labels).to_vector();
    for (size_t i = 0; i < idx.size(); ++i) {
      const float* row = z.data() + i * k;
      const auto at = static_cast<size_t>(idx[i]);
      size_t best = 0;
      for (size_t c = 1; c < k; ++c)
        if (row[c] > row[best]) best = c;
      double total = 0;
      for (size_t c = 0; c < k; ++c) total += std::exp(static_cast<double>(row[c]) - row[best]);
      for (size_t c = 0; c < k; ++c) {
        p.logits[at * k + c] = row[c];
        p.probabilities[at * k + c] = static_cast<float>(std::exp(static_cast<double>(row[c]) - row[best]) / total);
      }
      p.losses[at] = loss[i];
      p.labels[at] = labels.host()[i];
      p.predicted[at] = static_cast<int64_t>(best);
    }
  });
  return p;
}

void write_csv(const std::string& path, const Predictions& p) {
  write_file_atomic(path, [&](std::FILE* f) {
    std::fprintf(f, "index,label,prediction,loss");
    for (int64_t c = 0; c < p.classes; ++c) std::fprintf(f, ",logit_%lld", static_cast<long long>(c));
    for (int64_t c = 0; c < p.classes; ++c) std::fprintf(f, ",prob_%lld", static_cast<long long>(c));
    std::fprintf(f, "\n");
    const auto k = static_cast<size_t>(p.classes);
    for (size_t i = 0; i < static_cast<size_t>(p.n); ++i) {
      std::fprintf(f, "%zu,%lld,%lld,%.9g", i, static_cast<long long>(p.labels[i]), static_cast<long long>(p.predicted[i]),
                   p.losses[i]);
      for (size_t c = 0; c < k; ++c) std::fprintf(f, ",%.9g", p.logits[i * k + c]);
      for (size_t c = 0; c < k; ++c) std::fprintf(f, ",%.9g", p.probabilities[i * k + c]);
      std::fprintf(f, "\n");
    }
  });
}

void write_arrays(const std::string& path, const Predictions& p, const std::map<std::string, std::string>& metadata) {
  SafetensorsFile file;
  file.metadata = metadata;
  std::vector<int64_t> index(static_cast<size_t>(p.n));
  for (size_t i = 0; i < index.size(); ++i) index[i] = static_cast<int64_t>(i);
  file.arrays.push_back(NamedArray::from_values<float>("logits", {p.n, p.classes}, p.logits));
  file.arrays.push_back(NamedArray::from_values<float>("probabilities", {p.n, p.classes}, p.probabilities));
  file.arrays.push_back(NamedArray::from_values<float>("loss", {p.n}, p.losses));
  file.arrays.push_back(NamedArray::from_values<int64_t>("label", {p.n}, p.labels));
  file.arrays.push_back(NamedArray::from_values<int64_t>("prediction", {p.n}, p.predicted));
  file.arrays.push_back(NamedArray::from_values<int64_t>("index", {p.n}, index));
  save_safetensors(path, file);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void run_predict(const GlobalOptions& global, PredictArgs& a, const CLI::App& cmd) {
  const bool csv = ends_with(a.out, ".csv");
  if (!csv && !ends_with(a.out, ".safetensors"))
    throw UsageError(fmt::format("--out '{}': name a .csv or a .safetensors file", a.out));
  if (a.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", a.batch));
  const Device device = setup(global);
  LoadedModel loaded = open_checkpoint(a.model_file, a.model, global);
  loaded.model->to(device);
  const EvalSet e = eval_set(cmd, global, a.spec, loaded, a.split, device, a.model_file);
  const Predictions p = predict(*loaded.model, e.set, a.batch);

  int64_t correct = 0;
  double loss = 0;
  for (size_t i = 0; i < static_cast<size_t>(p.n); ++i) {
    correct += p.predicted[i] == p.labels[i];
    loss += p.losses[i];
  }
  const double accuracy = p.n ? static_cast<double>(correct) / static_cast<double>(p.n) : 0.0;
  const nlohmann::json norm = normalisation_json(e.spec, e.mean, e.stddev);
  if (csv) {
    write_csv(a.out, p);
  } else {
    write_arrays(a.out, p,
                 {{"lethe.model", loaded.model_name},
                  {"lethe.predict.model_file", a.model_file},
                  {"lethe.predict.split", a.split},
                  {"lethe.data.dataset", e.spec.dataset},
                  {"lethe.data.mean", fmt::format("{}", fmt::join(e.mean, ","))},
                  {"lethe.data.std", fmt::format("{}", fmt::join(e.stddev, ","))}});
  }
  if (a.json) {
    nlohmann::json j;
    j["model_file"] = a.model_file;
    j["model"] = loaded.model_name;
    j["split"] = a.split;
    j["n"] = p.n;
    j["accuracy"] = accuracy;
    j["mean_loss"] = p.n ? loss / static_cast<double>(p.n) : 0.0;
    j["normalisation"] = norm;
    j["out"] = a.out;
    print_result(j.dump(2) + "\n");
    return;
  }
  print_result(fmt::format("{} on {} ({} examples): accuracy {:.4f}, mean loss {:.4f}\nwrote {}\n", a.model_file, a.split,
                           p.n, accuracy, p.n ? loss / static_cast<double>(p.n) : 0.0, a.out));
}

}  // namespace

void add_predict_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("predict", "Per-example logits, probabilities and losses of a checkpoint, to CSV or safetensors");
  auto a = std::make_shared<PredictArgs>();
  cmd->add_option("--model-file", a->model_file, "Checkpoint (safetensors) to run")->required();
  add_model_option(cmd, a->model);
  add_data_options(cmd, a->spec);
  cmd->add_option("--split", a->split, "Which set: test (T) | train (D, as the data flags define it)")->capture_default_str();
  cmd->add_option("--out", a->out,
                  "File to write (atomically): FILE.csv (index, label, prediction, loss, logit_0.., prob_0..) or "
                  "FILE.safetensors (F32 logits [n, k], probabilities [n, k], loss [n]; I64 label, prediction, index)")
      ->required();
  cmd->add_option("--batch", a->batch, "Examples per forward pass")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print one JSON summary on stdout instead of text");
  cmd->footer("Without lethe's metadata in the checkpoint, --model names its architecture and --mean/--std the "
              "normalisation it was trained with.");
  cmd->callback([&global, a, cmd] { run_predict(global, *a, *cmd); });
}

}  // namespace lethe::cli
