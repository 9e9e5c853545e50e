#include <nlohmann/json.hpp>

#include "datasets/transforms.h"
#include "learning/train.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "tools/lethe/context.h"
#include "util/error.h"

namespace lethe::cli {
namespace {

struct EvalArgs {
  data::DataSpec spec;
  std::string model_file, model;
  std::string split = "test";
  bool json = false;
};

void run_eval(const GlobalOptions& global, EvalArgs& a, const CLI::App& cmd) {
  const Device device = setup(global);
  LoadedModel loaded = open_checkpoint(a.model_file, a.model, global);
  loaded.model->to(device);
  const EvalSet e = eval_set(cmd, global, a.spec, loaded, a.split, device, a.model_file);
  const data::ImageSet& set = e.set;
  const EvalResult r = evaluate(*loaded.model, set);

  if (a.json) {
    nlohmann::json j;
    j["model_file"] = a.model_file;
    j["model"] = loaded.model_name;
    j["split"] = a.split;
    j["n"] = r.n;
    j["accuracy"] = r.accuracy;
    j["mean_loss"] = r.mean_loss;
    j["per_class_accuracy"] = r.per_class_accuracy;
    j["normalisation"] = normalisation_json(e.spec, e.mean, e.stddev);
    nlohmann::json cm = nlohmann::json::array();
    for (int32_t t = 0; t < r.classes; ++t) {
      nlohmann::json row = nlohmann::json::array();
      for (int32_t p = 0; p < r.classes; ++p) row.push_back(r.confusion[static_cast<size_t>(t) * r.classes + p]);
      cm.push_back(row);
    }
    j["confusion"] = cm;
    print_result(j.dump(2) + "\n");
    return;
  }
  std::string out = fmt::format("{} on {} ({} examples): accuracy {:.4f}, mean loss {:.4f}\n\n", a.model_file, a.split,
                                r.n, r.accuracy, r.mean_loss);
  out += "confusion matrix (rows: true label, columns: prediction)\n      ";
  for (int32_t p = 0; p < r.classes; ++p) out += fmt::format("{:>6}", p);
  out += "   acc\n";
  for (int32_t t = 0; t < r.classes; ++t) {
    out += fmt::format("{:>6}", t);
    for (int32_t p = 0; p < r.classes; ++p) out += fmt::format("{:>6}", r.confusion[static_cast<size_t>(t) * r.classes + p]);
    out += fmt::format("  {:.3f}\n", r.per_class_accuracy[static_cast<size_t>(t)]);
  }
  print_result(out);
}

}  // namespace

void add_eval_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("eval", "Accuracy, per-class accuracy and confusion matrix of a checkpoint");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("--model-file", a->model_file, "Checkpoint (safetensors) to evaluate")->required();
  add_model_option(cmd, a->model);
  add_data_options(cmd, a->spec);
  cmd->add_option("--split", a->split, "Which set: test (T) | train (D, as the data flags define it)")
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "Print one JSON document on stdout instead of the table");
  cmd->callback([&global, a, cmd] { run_eval(global, *a, *cmd); });
}

}  // namespace lethe::cli
