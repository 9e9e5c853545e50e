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
  std::string model_file;
  std::string split = "test";
  bool json = false;
};

void run_eval(const GlobalOptions& global, EvalArgs& a, const CLI::App& cmd) {
  const Device device = setup(global);
  if (a.split != "test" && a.split != "train")
    throw UsageError(fmt::format("--split: unknown split '{}' (known: test, train)", a.split));
  LoadedModel loaded = load_checkpoint(a.model_file);
  loaded.model->to(device);

  // The training-set mean the model was trained with comes from the checkpoint; flags given on
  // the command line override the recorded data spec.
  data::DataSpec recorded;
  std::vector<float> mean, stddev;
  const bool has_meta = spec_from_metadata(loaded.metadata, recorded, mean, &stddev);
  const data::DataSpec spec = resolve_spec(cmd, a.spec, global, loaded.metadata);
  check_model_fits(loaded.model_name, spec.dataset, a.model_file);
  data::ImageSet set;
  const bool same_as_recorded = has_meta && data::same_data(spec, recorded);
  if (a.split == "test" && same_as_recorded) {
    set = data::read_split(spec, data::Split::Test);
    data::normalise(set, mean, stddev);
  } else {
    Progress progress(global.quiet);
    data::PreparedData d = load_data(spec, device, progress);
    set = a.split == "test" ? std::move(d.test) : std::move(d.train);
  }
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
  add_data_options(cmd, a->spec);
  cmd->add_option("--split", a->split, "Which set: test (T) | train (D, as the data flags define it)")
      ->capture_default_str();
  cmd->add_flag("--json", a->json, "Print one JSON document on stdout instead of the table");
  cmd->callback([&global, a, cmd] { run_eval(global, *a, *cmd); });
}

}  // namespace lethe::cli
