// `lethe experiment`: the paper's evaluation protocol (docs/method.md) in one command. The flags
// and an optional JSON config become repair::ExperimentSettings; repair::run_experiment does
// the work and report::write_experiment writes results.json, results.csv, report.md and the
// figures; the first method's top causes of the first seed become causes_<method>.png.
#include <filesystem>

#include "evaluation/protocol.h"
#include "report/experiment.h"
#include "tools/lethe/cli.h"
#include "tools/lethe/experiment_config.h"
#include "tools/lethe/list_flags.h"
#include "tools/lethe/registry_options.h"
#include "tools/lethe/treat_args.h"
#include "tools/lethe/scores_io.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace lethe::cli {
namespace {

struct ExperimentArgs {
  std::string config, out_dir;
  repair::ExperimentSettings settings;
  AugmentFlags augment;
  std::string fisher = "empirical";
  bool json = false;
};

// Settings from a JSON config file; flags given on the command line win.
void apply_config(ExperimentArgs& a, const CLI::App& cmd) {
  if (a.config.empty()) return;
  const ExperimentConfig c = parse_experiment_config(read_file(a.config), a.config);
  auto take = [&](const auto& value, const char* flag, auto& field) {
    if (value && cmd.count(flag) == 0) field = *value;
  };
  auto& s = a.settings;
  take(c.dataset, "--dataset", s.spec.dataset);
  take(c.data, "--data", s.spec.dir);
  take(c.subset, "--subset", s.spec.subset);
  take(c.noise, "--noise", s.spec.noise);
  take(c.noise_fraction, "--noise-fraction", s.spec.noise_fraction);
  take(c.noise_amount, "--noise-amount", s.spec.noise_amount);
  take(c.victim_epochs, "--victim-epochs", s.spec.victim_epochs);
  take(c.noise_design, "--noise-design", s.spec.design);
  take(c.noisy_queries, "--noisy-queries", s.spec.query_fraction);
  take(c.removal, "--removal-treatment", s.removal);
  take(c.retrain_init, "--retrain-init", s.treat.retrain_init);
  take(c.model, "--model", s.model);
  take(c.epochs, "--epochs", s.epochs);
  take(c.batch, "--batch", s.batch);
  take(c.lr, "--lr", s.lr);
  take(c.methods, "--methods", s.methods);
  take(c.ks, "--ks", s.ks);
  take(c.treatments, "--treatments", s.treatments);
  take(c.seeds, "--seeds", s.seeds);
  take(c.fisher, "--fisher", a.fisher);
  take(c.mc_samples, "--mc-samples", s.fisher.mc_samples);
  take(c.finetune_stop, "--finetune-stop", s.treat.finetune_stop);
  take(c.finetune_max_epochs, "--finetune-max-epochs", s.treat.finetune_max_epochs);
  take(c.finetune_patience, "--finetune-patience", s.treat.finetune_patience);
  take(c.finetune_heldout, "--finetune-heldout", s.treat.finetune_heldout);
  take(c.finetune_tolerance, "--finetune-tolerance", s.treat.finetune_tolerance);
  // The rule's settings mean nothing to a fixed fine-tune: said, as the flags are.
  if (s.treat.finetune_stop == "fixed")
    for (const auto& [set, key] : {std::pair{c.finetune_max_epochs.has_value(), "finetune_max_epochs"},
                                   std::pair{c.finetune_patience.has_value(), "finetune_patience"},
                                   std::pair{c.finetune_heldout.has_value(), "finetune_heldout"},
                                   std::pair{c.finetune_tolerance.has_value(), "finetune_tolerance"}})
      if (set) throw UsageError(fmt::format("config '{}': {} belongs to finetune_stop heldout, not fixed", a.config, key));
}

void run(const GlobalOptions& global, ExperimentArgs& a, const CLI::App& cmd) {
  apply_config(a, cmd);
  auto& s = a.settings;
  s.fisher.kind = repair::parse_fisher_kind(a.fisher);
  s.device = setup(global);
  s.first_seed = global.seed;
  if (s.model.empty()) s.model = default_model(s.spec.dataset);
  s.augment = a.augment.resolve(s.spec.dataset);
  // Every refusal comes before the output folder exists.
  repair::validate(s);
  check_finetune_flags(cmd, s.treat, false);
  check_model_fits(s.model, s.spec.dataset);
  data::check_data_folder(s.spec);
  check_out_dir(a.out_dir);
  std::filesystem::create_directories(a.out_dir);

  Progress progress(global.quiet);
  repair::ExperimentHooks hooks;
  hooks.line = [&](const std::string& text) { progress.line(text); };
  hooks.update = [&](const std::string& stage, int64_t done, int64_t total) { progress.update(stage, done, total); };
  hooks.first_scores = [&](const std::string& method, uint64_t seed, const data::ImageSet& train,
                           const std::vector<double>& scores, const std::vector<uint8_t>* noisy) {
    write_cause_grid((std::filesystem::path(a.out_dir) / ("causes_" + method + ".png")).string(), train, scores, noisy, 48,
                     fmt::format("top causes by {}, seed {}", method, seed));
  };
  const auto results = repair::run_experiment(s, hooks);

  const report::RunInfo info = run_info(global, s.device, data::data_dir(s.spec));
  const std::string md = report::write_experiment(a.out_dir, results, info);
  if (a.json) {
    print_result(report::results_json(results, info).dump(2) + "\n");
  } else {
    print_result(md + fmt::format("\nreport: {}\n", (std::filesystem::path(a.out_dir) / "report.md").string()));
  }
}

std::string joined(const auto& items) {
  std::string out;
  for (const auto& x : items) out += (out.empty() ? "" : ",") + fmt::format("{}", x);
  return out;
}

}  // namespace

void add_experiment_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("experiment", "The paper's evaluation: train, identify with each of the paper's methods and rivals, repair, report");
  auto a = std::make_shared<ExperimentArgs>();
  auto& s = a->settings;
  s.spec.noise = "label";
  auto methods = std::make_shared<std::string>(), ks = std::make_shared<std::string>(),
       treatments = std::make_shared<std::string>();
  cmd->add_option("--config", a->config, "JSON file of settings (keys as the flags, dashes as underscores: subset, noise, epochs, methods, ks, "
                                          "treatments, seeds, fisher, finetune_stop, ...); flags given override it");
  cmd->add_option("--out-dir", a->out_dir, "Folder for results.json, results.csv, report.md and the figures")->required();
  add_data_options(cmd, s.spec);
  cmd->add_option("--model", s.model, "Base model: mnist-cnn | cifar-cnn (default: the dataset's)");
  add_augment_options(cmd, a->augment);
  cmd->add_option("--epochs", s.epochs, "Base model: training epochs")->capture_default_str();
  cmd->add_option("--batch", s.batch, "Base model: batch size")->capture_default_str();
  cmd->add_option("--lr", s.lr, "Base model: Adam learning rate")->capture_default_str();
  cmd->add_option("--methods", *methods,
                  "Comma-separated Step I methods; linear:<solver> names linear influence's solver (linear:lissa is the "
                  "paper's linear-SA) (default: " + joined(s.methods) + ")");
  add_fisher_options(cmd, a->fisher, s.fisher.mc_samples);
  cmd->add_option("--ks", *ks, "Comma-separated numbers of top causes to remove (default: " + joined(s.ks) + ")");
  cmd->add_option("--removal-treatment", s.removal,
                  "Treatment after removing each method's top k, and the oracle gate's: finetune | retrain | any "
                  "treatment `lethe treat` names; retrain follows the base model's --epochs and --lr. Default: retrain "
                  "for --noise-design pattern (fine-tuning gets no gradient that unlearns a pattern once its carriers "
                  "are gone), finetune otherwise");
  cmd->add_option("--retrain-init", s.treat.retrain_init,
                  "Where the retrain treatment starts: fresh (a new initialisation) | base (the base model's own "
                  "initialisation and batch-order stream, so that the removal is all that differs)")
      ->capture_default_str();
  cmd->add_option("--treatments", *treatments, "Comma-separated extra treatments at the largest k (default: " + joined(s.treatments) + ")");
  // Fine-tuning's stopping rule, as `lethe treat` takes it (its --epochs and --lr would collide
  // with the base model's: the experiment's fine-tunes keep their defaults).
  std::vector<std::string> rule_flags = {"--finetune-stop"};
  rule_flags.insert(rule_flags.end(), kHeldoutRuleFlags.begin(), kHeldoutRuleFlags.end());
  add_registry_options(cmd, s.treat, repair::treatment_options(), rule_flags);
  cmd->add_option("--seeds", s.seeds, "Number of seeds (the global --seed, then the next ones)")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print results.json on stdout instead of the report");
  cmd->footer("Five seeds: lethe --seed 0 experiment --seeds 5 --out-dir runs/experiment5");
  cmd->callback([&global, a, cmd, methods, ks, treatments] {
    if (cmd->count("--methods")) a->settings.methods = split_list<std::string>(*methods, "--methods");
    if (cmd->count("--ks")) a->settings.ks = split_list<int64_t>(*ks, "--ks");
    if (cmd->count("--treatments")) a->settings.treatments = split_list<std::string>(*treatments, "--treatments");
    run(global, *a, *cmd);
  });
}

}  // namespace lethe::cli
