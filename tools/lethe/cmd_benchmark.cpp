// `lethe benchmark`: the field's evaluation of attribution methods on one model and D. The flags
// become repair::BenchmarkSettings; repair::run_benchmark trains (or reads back) the subset
// models and scores every method; report::write_benchmark writes results.json, results.csv,
// report.md and the figures.
#include <filesystem>

#include "evaluation/benchmark.h"
#include "repair/registry.h"
#include "report/benchmark.h"
#include "tools/lethe/cli.h"
#include "tools/lethe/list_flags.h"
#include "tools/lethe/registry_options.h"
#include "util/error.h"
#include "util/progress.h"

namespace lethe::cli {
namespace {

struct BenchmarkArgs {
  repair::BenchmarkSettings settings;
  std::string optimizer = "adam", fisher = "empirical";
  double momentum = 0;
  bool json = false;
};

void run(const GlobalOptions& global, BenchmarkArgs& a) {
  auto& s = a.settings;
  s.device = setup(global);
  s.spec.seed = global.seed;
  s.optimizer = {parse_optimizer_kind(a.optimizer), a.momentum};
  s.identify.fisher.kind = repair::parse_fisher_kind(a.fisher);
  if (s.model.empty()) s.model = default_model(s.spec.dataset);
  // Every refusal comes before the output folder exists.
  repair::validate(s);
  check_model_fits(s.model, s.spec.dataset);
  data::check_data_folder(s.spec);
  check_out_dir(s.out_dir);
  std::filesystem::create_directories(s.out_dir);

  Progress progress(global.quiet);
  repair::BenchmarkHooks hooks;
  hooks.line = [&](const std::string& text) { progress.line(text); };
  hooks.update = [&](const std::string& stage, int64_t done, int64_t total) { progress.update(stage, done, total); };
  const auto results = repair::run_benchmark(s, hooks);

  const report::RunInfo info = run_info(global, s.device, data::data_dir(s.spec));
  const std::string md = report::write_benchmark(s.out_dir, results, info);
  if (a.json) {
    print_result(report::benchmark_json(results, info).dump(2) + "\n");
  } else {
    print_result(md + fmt::format("\nreport: {}\n", (std::filesystem::path(s.out_dir) / "report.md").string()));
  }
}

}  // namespace

void add_benchmark_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "benchmark", "The field's evaluation of attribution methods: LDS over subset models, mislabel AUC, seconds");
  auto a = std::make_shared<BenchmarkArgs>();
  auto& s = a->settings;
  s.spec.noise = "label";
  auto methods = std::make_shared<std::string>();
  std::string defaults;
  for (const auto& m : s.methods) defaults += (defaults.empty() ? "" : ",") + m;
  cmd->add_option("--out-dir", s.out_dir,
                  "Folder for the results and the cache of trained models (a rerun reuses them; a folder of another "
                  "model or D is refused)")
      ->required();
  add_data_options(cmd, s.spec);
  cmd->add_option("--model", s.model, "Architecture of every model (default: the dataset's)");
  cmd->add_option("--epochs", s.epochs, "Training epochs of the base model and of every subset model")->capture_default_str();
  cmd->add_option("--batch", s.batch, "Training batch size of every model")->capture_default_str();
  cmd->add_option("--lr", s.lr, "Learning rate of every model's optimiser")->capture_default_str();
  add_optimizer_options(cmd, a->optimizer, a->momentum);
  cmd->add_option("--methods", *methods,
                  "Comma-separated methods; linear:<solver> picks linear influence's solver (default: " + defaults + ")");
  cmd->add_option("--subsets", s.subsets, "LDS: models trained on random subsets of D")->capture_default_str();
  cmd->add_option("--alpha", s.alpha, "LDS: the fraction of D each subset holds")->capture_default_str();
  cmd->add_option("--queries-from", s.queries_from,
                  "Where the queries come from: test (a seeded sample of the test set, as TRAK and dattri take "
                  "them) | failures (the base model's test failures, the repair setting)")
      ->capture_default_str();
  cmd->add_option("--queries", s.queries, "Queries sampled from --queries-from (all of it when fewer)")
      ->capture_default_str();
  cmd->add_option("--bootstrap", s.bootstrap, "Resamples of the subset models and the queries, together, for the LDS interval")->capture_default_str();
  cmd->add_option("--loo", s.loo, "Leave-one-out correlation over this many examples of D, one retrained model each (0: off)")
      ->capture_default_str();
  cmd->add_option("--brittleness", s.brittleness,
                  "Brittleness of this many queries: the fewest top causes whose removal flips each (0: off; "
                  "one retraining per method, query and k tried)")
      ->capture_default_str();
  auto brittle_ks = std::make_shared<std::string>();
  cmd->add_option("--brittleness-ks", *brittle_ks, "Comma-separated k tried, ascending (default 10,20,40,80,160,320,640)");
  auto& o = s.identify;
  cmd->add_option("--score-batch", o.batch, "Examples per pass over D while scoring")->capture_default_str();
  add_fisher_options(cmd, a->fisher, o.fisher.mc_samples);
  add_registry_options(cmd, o, repair::method_options());
  cmd->add_flag("--json", a->json, "Print results.json on stdout instead of the report");
  cmd->footer("Example: lethe --seed 0 benchmark --subset 3000 --noise label --subsets 50 --out-dir runs/benchmark");
  cmd->callback([&global, a, cmd, methods, brittle_ks] {
    if (cmd->count("--methods")) a->settings.methods = split_list<std::string>(*methods, "--methods");
    if (cmd->count("--brittleness-ks"))
      a->settings.brittleness_ks = split_list<int64_t>(*brittle_ks, "--brittleness-ks");
    a->settings.identify.solve.damping_set = cmd->count("--damping") > 0;
    run(global, *a);
  });
}

}  // namespace lethe::cli
