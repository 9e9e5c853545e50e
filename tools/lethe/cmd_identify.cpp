
#include <nlohmann/json.hpp>

#include "nn/safetensors.h"
#include "repair/identify.h"
#include "evaluation/metrics.h"
#include "tools/lethe/context.h"
#include "tools/lethe/registry_options.h"
#include "tools/lethe/scores_io.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/streams.h"

namespace lethe::cli {
namespace {

struct IdentifyArgs {
  std::string model_file, failures_file, out, array_out, grid, model;
  data::DataSpec spec;
  repair::IdentifyOptions opt;
  std::string fisher = "empirical";
  int64_t grid_count = 32;
  bool json = false;
};

void run_identify(const GlobalOptions& global, IdentifyArgs& a, const CLI::App& cmd) {
  const auto t_start = Clock::now();
  a.opt.fisher.kind = repair::parse_fisher_kind(a.fisher);
  a.opt.seed = global.seed;
  repair::validate(a.opt, 1, 1);  // flag errors before any loading
  if (a.out.empty()) throw UsageError("--out: a scores file is required");
  Progress progress(global.quiet);
  RepairContext c = load_context(cmd, global, a.model_file, a.spec, a.failures_file, progress, a.model);
  a.opt.progress = [&](const std::string& stage, int64_t done, int64_t total) { progress.update(stage, done, total); };
  a.opt.log = [&](const std::string& line) { progress.line(line); };
  a.opt.fisher.seed = stream_seed(c.spec.seed, Stream::kFisherLabels);
  a.opt.recipe = c.recipe;
  // Reading the checkpoint, D and T, evaluating T and splitting its failures: what the command
  // spends before the method starts, which `seconds` (the method alone) leaves out.
  const double seconds_setup = since(t_start);

  const auto r = repair::identify(*c.loaded.model, c.data.train, c.fq, a.opt);
  const auto positive = repair::causes_positive(r.scores);

  write_scores_csv(a.out, c.data.train, r.scores, c.has_noise_mask() ? &c.data.noisy : nullptr);
  if (!a.array_out.empty()) write_scores_array(a.array_out, r);
  if (!a.grid.empty())
    write_cause_grid(a.grid, c.data.train, r.scores, c.has_noise_mask() ? &c.data.noisy : nullptr, a.grid_count,
                     fmt::format("top {} causes by {}", a.grid_count, r.method));

  nlohmann::json j;
  j["method"] = r.method;
  if (r.method == "linear") j["solver"] = a.opt.solve.solver;
  j["seconds"] = r.seconds;
  j["seconds_setup"] = seconds_setup;
  j["n_train"] = c.data.train.n;
  j["n_fq"] = c.fq.n;
  j["n_fh"] = c.fh.n;
  j["n_r"] = c.remaining.n;
  j["n_positive"] = static_cast<int64_t>(positive.size());
  j["test_accuracy"] = c.test_eval.accuracy;
  j.update(report::provenance_json(run_info(global, c.device)));
  add_memory(j, c.device);
  j["model"] = c.loaded.model_name;
  j["normalisation"] = normalisation_json(c.spec, c.data.mean, c.data.stddev);
  j["scores_file"] = a.out;
  for (const auto& [k, v] : r.stats) j["stats"][k] = v;
  if (c.has_noise_mask()) {
    j["noise"] = c.spec.noise;
    const repair::Detection found = repair::detection(r.scores, c.data.noisy);
    j["n_corrupted"] = found.n_corrupted;
    j["recall_at_k"] = found.recall_at_k;
    j["roc_auc"] = found.roc_auc;
    j["precision_positive"] = found.precision_positive;
  }
  if (a.json) {
    print_result(j.dump(2) + "\n");
    return;
  }
  std::string out = fmt::format("method {}{}: scored {} training examples against |Fq| = {} failures in {:.2f}s\n",
                                r.method, r.method == "linear" ? " (" + a.opt.solve.solver + ")" : "", c.data.train.n, c.fq.n,
                                r.seconds);
  out += fmt::format("causes with r > 0: {}\n", positive.size());
  if (c.has_noise_mask())
    out += fmt::format("against the {} corrupted examples ({} noise): recall@{} {:.3f}, ROC AUC {:.3f}, precision of r>0 {:.3f}\n",
                       j["n_corrupted"].get<int64_t>(), c.spec.noise, j["n_corrupted"].get<int64_t>(), j["recall_at_k"].get<double>(), j["roc_auc"].get<double>(),
                       j["precision_positive"].get<double>());
  out += fmt::format("peak memory: host {}", gib(j["host_peak_rss_bytes"].get<uint64_t>()));
  if (j.contains("device_peak_bytes")) out += fmt::format(", device {}", gib(j["device_peak_bytes"].get<uint64_t>()));
  out += fmt::format("\nscores: {}\n", a.out);
  print_result(out);
}

}  // namespace

void add_identify_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("identify", "Step I: score every training example as a cause of the model's failures");
  auto a = std::make_shared<IdentifyArgs>();
  add_context_options(cmd, a->model_file, a->spec, a->failures_file, a->model);
  auto& o = a->opt;
  cmd->add_option("--method", o.method, repair::method_names(" | "))->capture_default_str();
  cmd->add_option("--out", a->out, "Scores file to write (CSV: index, source_index, label, [corrupted,] score, rank)")->required();
  cmd->add_option("--array", a->array_out, "Also write the scores as a safetensors array (F64 'scores')");
  cmd->add_option("--grid", a->grid, "Also write a PNG grid of the top causes");
  cmd->add_option("--grid-count", a->grid_count, "Causes shown in the grid")->capture_default_str();
  cmd->add_option("--batch", o.batch, "Examples per pass over D")->capture_default_str();
  add_fisher_options(cmd, a->fisher, o.fisher.mc_samples);
  add_registry_options(cmd, o, repair::method_options());
  cmd->add_flag("--json", a->json, "Print one JSON document on stdout instead of text");
  cmd->callback([&global, a, cmd] {
    a->opt.solve.damping_set = cmd->count("--damping") > 0;
    run_identify(global, *a, *cmd);
  });
}

}  // namespace lethe::cli
