// `lethe repair`: Algorithm 1 in one command — identify the causes of the failures, make the
// model forget them, and write the causes, the repaired model and a report.
#include <filesystem>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "nn/checkpoint.h"
#include "repair/identify.h"
#include "evaluation/metrics.h"
#include "repair/treat.h"
#include "tools/lethe/context.h"
#include "tools/lethe/registry_options.h"
#include "tools/lethe/scores_io.h"
#include "tools/lethe/treat_args.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe::cli {
namespace {

struct RepairArgs {
  std::string model_file, failures_file, out_dir;
  std::string model, save_dtype = "f32";
  data::DataSpec spec;
  CauseRule rule;
  repair::IdentifyOptions identify;
  repair::TreatOptions treat;
  bool json = false;
};

std::string accuracy_row(const std::string& name, const SplitAccuracy& a) {
  return fmt::format("| {} | {:.4f} | {:.4f} | {:.4f} | {:.4f} |\n", name, a.fq, a.fh, a.remaining, a.test);
}

void run_repair(const GlobalOptions& global, RepairArgs& a, const CLI::App& cmd) {
  a.identify.seed = a.treat.seed = global.seed;
  repair::validate(a.identify, 1, 1);
  repair::validate(a.treat);
  check_finetune_flags(cmd, a.treat);
  parse_save_dtype(a.save_dtype);  // a bad value stops here, before any work
  if (a.rule.top_k < 0 && a.rule.top_fraction < 0 && !a.rule.positive) a.rule.top_k = 1000;
  if (std::filesystem::exists(a.out_dir) && !std::filesystem::is_directory(a.out_dir))
    fail("--out-dir '{}' exists and is not a folder", a.out_dir);
  Progress progress(global.quiet);
  RepairContext c = load_context(cmd, global, a.model_file, a.spec, a.failures_file, progress, a.model);
  if (a.rule.top_k > c.data.train.n)
    throw UsageError(fmt::format("--top-k {}: larger than the {} training examples", a.rule.top_k, c.data.train.n));
  std::filesystem::create_directories(a.out_dir);
  a.treat.augment = c.augment;
  a.identify.recipe = a.treat.recipe = c.recipe;
  auto on_progress = [&](const std::string& stage, int64_t d, int64_t t) { progress.update(stage, d, t); };
  auto on_log = [&](const std::string& line) { progress.line(line); };
  a.identify.progress = a.treat.progress = on_progress;
  a.identify.log = a.treat.log = on_log;
  Module& model = *c.loaded.model;

  // Outputs complete on disk, for the message of an interruption: each is written atomically,
  // so what is listed is whole and anything else in --out-dir is as it was.
  std::vector<std::string> written;
  try {
    // Step I.
    const auto ident = repair::identify(model, c.data.train, c.fq, a.identify);
    const auto causes = select_causes(a.rule, ident.scores);
    const std::vector<uint8_t>* mask = c.has_noise_mask() ? &c.data.noisy : nullptr;
    const std::string scores_path = (std::filesystem::path(a.out_dir) / "scores.csv").string();
    const std::string grid_path = (std::filesystem::path(a.out_dir) / "causes.png").string();
    write_scores_csv(scores_path, c.data.train, ident.scores, mask);
    written.push_back(scores_path);
    write_cause_grid(grid_path, c.data.train, ident.scores, mask, 48, fmt::format("top causes by {}", ident.method));
    written.push_back(grid_path);
    progress.line(fmt::format("step I: {} scored {} examples in {:.1f}s; cause set: {} ({} examples)", ident.method,
                              c.data.train.n, ident.seconds, a.rule.describe(), causes.size()));

    // Step II.
    const SplitAccuracy before = split_accuracy(model, c);
    const auto tr = repair::treat(model, c.data.train, causes, c.fq, a.treat);
    const SplitAccuracy after = split_accuracy(model, c);
    const std::string model_path = (std::filesystem::path(a.out_dir) / "repaired.safetensors").string();
    auto meta = output_metadata(c);
    meta["lethe.repair.method"] = ident.method;
    meta["lethe.repair.treatment"] = a.treat.treatment;
    meta["lethe.repair.causes"] = std::to_string(causes.size());
    save_checkpoint(model_path, model, c.loaded.architecture, meta, parse_save_dtype(a.save_dtype));
    written.push_back(model_path);

    nlohmann::json j;
    j["model_file"] = a.model_file;
    j["device"] = device_name(c.device);
    j["normalisation"] = normalisation_json(c.spec, c.data.mean, c.data.stddev);
    j["data"] = {{"dataset", c.spec.dataset}, {"subset", c.spec.subset}, {"noise", c.spec.noise}, {"seed", c.spec.seed}};
    j["n_train"] = c.data.train.n;
    j["n_fq"] = c.fq.n;
    j["n_fh"] = c.fh.n;
    j["identify"] = {{"method", ident.method}, {"seconds", ident.seconds}, {"n_positive", repair::causes_positive(ident.scores).size()}};
    for (const auto& [k, v] : ident.stats) j["identify"]["stats"][k] = v;
    j["cause_rule"] = a.rule.describe();
    j["n_causes"] = causes.size();
    if (mask) {
      const repair::Detection found = repair::detection(ident.scores, *mask);
      j["identify"]["recall_at_k"] = found.recall_at_k;
      j["identify"]["roc_auc"] = found.roc_auc;
      j["causes_precision"] = repair::precision(causes, *mask);  // the chosen cause set's, not r > 0's
      j["n_corrupted"] = found.n_corrupted;
    }
    j["treat"] = {{"treatment", a.treat.treatment}, {"seconds", tr.seconds}};
    for (const auto& [k, v] : tr.stats) j["treat"]["stats"][k] = v;
    if (!tr.note.empty()) j["treat"]["note"] = tr.note;
    if (!tr.curve.empty()) j["treat"]["curve"] = stop_curve_json(tr.curve);
    j["before"] = {{"accuracy_fq", before.fq}, {"accuracy_fh", before.fh}, {"accuracy_r", before.remaining}, {"accuracy_test", before.test}};
    j["after"] = {{"accuracy_fq", after.fq}, {"accuracy_fh", after.fh}, {"accuracy_r", after.remaining}, {"accuracy_test", after.test}};
    j["outputs"] = {{"scores", scores_path}, {"causes_grid", grid_path}, {"repaired_model", model_path}};

    std::string md = "# lethe repair report\n\n";
    md += fmt::format("Model `{}` ({}), trained on {} examples of {} (noise: {}, seed {}), run on {}.\n\n", a.model_file,
                      c.loaded.model_name, c.data.train.n, c.spec.dataset, c.spec.noise, c.spec.seed, device_name(c.device));
    md += fmt::format("Failures: {} misclassified test examples, split into |Fq| = {} (shown to the method) and "
                      "|Fh| = {} (held out); R = the {} correctly classified.\n\n",
                      c.fq.n + c.fh.n, c.fq.n, c.fh.n, c.remaining.n);
    md += fmt::format("## Step I: causes\n\nMethod `{}` scored every training example in {:.1f} s. Cause set: {} ({} examples); "
                      "{} examples have r > 0.\n\n",
                      ident.method, ident.seconds, a.rule.describe(), causes.size(), j["identify"]["n_positive"].get<size_t>());
    if (mask)
      md += fmt::format("Against the {} examples the noise corrupted: recall@{} = {:.3f}, ROC AUC = {:.3f}, precision of the "
                        "cause set = {:.3f}.\n\n",
                        j["n_corrupted"].get<int64_t>(), j["n_corrupted"].get<int64_t>(), j["identify"]["recall_at_k"].get<double>(),
                        j["identify"]["roc_auc"].get<double>(), j["causes_precision"].get<double>());
    md += "![top causes](causes.png)\n\n";
    md += fmt::format("## Step II: treatment `{}` ({:.1f} s)\n\n", a.treat.treatment, tr.seconds);
    md += "| model | Fq | Fh | R | test |\n|---|---|---|---|---|\n";
    md += accuracy_row("before", before) + accuracy_row("after", after);
    if (!tr.note.empty()) md += "\n" + tr.note + ".\n";
    md += "\nFq: failures the method saw; Fh: failures it did not (does the repair generalise?); R: what the model "
          "already got right (is it kept?).\n\nFiles: `scores.csv`, `causes.png`, `repaired.safetensors`, `summary.json`.\n";
    write_file_atomic((std::filesystem::path(a.out_dir) / "report.md").string(), md);
    write_file_atomic((std::filesystem::path(a.out_dir) / "summary.json").string(), j.dump(2) + "\n");

    if (a.json) {
      print_result(j.dump(2) + "\n");
      return;
    }
    std::string out = fmt::format("{} + {}: {} causes removed\n", ident.method, a.treat.treatment, causes.size());
    out += "           Fq      Fh      R       test\n";
    out += fmt::format("before   {:.4f}  {:.4f}  {:.4f}  {:.4f}\n", before.fq, before.fh, before.remaining, before.test);
    out += fmt::format("after    {:.4f}  {:.4f}  {:.4f}  {:.4f}\n", after.fq, after.fh, after.remaining, after.test);
    if (!tr.note.empty()) out += tr.note + "\n";
    out += fmt::format("report: {}\n", (std::filesystem::path(a.out_dir) / "report.md").string());
    print_result(out);
  } catch (const Interrupted& e) {
    const std::string kept = written.empty() ? fmt::format("nothing written to '{}'", a.out_dir)
                                             : fmt::format("written before it: {}", fmt::join(written, ", "));
    throw Interrupted(e.signal(), fmt::format("{}; {}; the input model '{}' is untouched", e.what(), kept, a.model_file));
  }
}

}  // namespace

void add_repair_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("repair", "Algorithm 1 end to end: identify the causes, treat the model, write a report");
  auto a = std::make_shared<RepairArgs>();
  add_context_options(cmd, a->model_file, a->spec, a->failures_file, a->model);
  cmd->add_option("--out-dir", a->out_dir, "Folder for scores.csv, causes.png, repaired.safetensors, report.md")->required();
  cmd->add_option("--method", a->identify.method, "Step I method: " + repair::method_names(" | "))->capture_default_str();
  // The Step I options a repair most often changes; `lethe identify` has them all.
  add_registry_options(cmd, a->identify, repair::method_options(), {"--solver", "--damping", "--ewc-lr"});
  add_cause_rule_options(cmd, a->rule, "default 1000");
  add_treatment_options(cmd, a->treat);
  add_save_dtype_option(cmd, a->save_dtype);
  cmd->add_flag("--json", a->json, "Print the summary as JSON on stdout");
  cmd->callback([&global, a, cmd] { run_repair(global, *a, *cmd); });
}

}  // namespace lethe::cli
