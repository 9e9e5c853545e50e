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

// The cause set when no rule is given: the paper's largest k.
constexpr int64_t kDefaultTopK = 1000;

struct RepairArgs {
  std::string model_file, failures_file, out_dir;
  std::string model, save_dtype = "f32";
  data::DataSpec spec;
  CauseRule rule;
  repair::IdentifyOptions identify;
  repair::TreatOptions treat;
  bool json = false;
};

// What the two steps found and did, and the files they wrote (in --out-dir).
struct RepairOutcome {
  repair::IdentifyResult ident;
  std::vector<int64_t> causes;
  repair::TreatResult treated;
  SplitAccuracy before, after;
  std::string scores_path, grid_path, model_path;
};

std::string out_file(const RepairArgs& a, const char* name) { return (std::filesystem::path(a.out_dir) / name).string(); }

const std::vector<uint8_t>* noise_mask(const RepairContext& c) { return c.has_noise_mask() ? &c.data.noisy : nullptr; }

// Every flag checked before any file is read.
void check_repair_flags(const GlobalOptions& global, RepairArgs& a, const CLI::App& cmd) {
  a.identify.seed = a.treat.seed = global.seed;
  repair::validate(a.identify, 1, 1);
  repair::validate(a.treat);
  check_finetune_flags(cmd, a.treat);
  parse_save_dtype(a.save_dtype);  // a bad value stops here, before any work
  resolve_cause_rule(cmd, a.rule, kDefaultTopK);
  check_out_dir(a.out_dir);
}

// The options' hooks and the recorded training run, from the loaded context.
void connect_options(RepairArgs& a, const RepairContext& c, Progress& progress) {
  a.treat.augment = c.augment;
  a.identify.recipe = a.treat.recipe = c.recipe;
  auto on_progress = [&progress](const std::string& stage, int64_t d, int64_t t) { progress.update(stage, d, t); };
  auto on_log = [&progress](const std::string& line) { progress.line(line); };
  a.identify.progress = a.treat.progress = on_progress;
  a.identify.log = a.treat.log = on_log;
}

// Steps I and II, each output written atomically and added to `written` once whole.
RepairOutcome identify_and_treat(const RepairArgs& a, RepairContext& c, Progress& progress,
                                 std::vector<std::string>& written) {
  Module& model = *c.loaded.model;
  RepairOutcome o;
  o.ident = repair::identify(model, c.data.train, c.fq, a.identify);
  o.causes = select_causes(a.rule, o.ident.scores);
  o.scores_path = out_file(a, "scores.csv");
  o.grid_path = out_file(a, "causes.png");
  write_scores_csv(o.scores_path, c.data.train, o.ident.scores, noise_mask(c));
  written.push_back(o.scores_path);
  write_cause_grid(o.grid_path, c.data.train, o.ident.scores, noise_mask(c), 48,
                   fmt::format("top causes by {}", o.ident.method));
  written.push_back(o.grid_path);
  progress.line(fmt::format("step I: {} scored {} examples in {:.1f}s; cause set: {} ({} examples)", o.ident.method,
                            c.data.train.n, o.ident.seconds, a.rule.describe(), o.causes.size()));

  o.before = split_accuracy(model, c);
  o.treated = repair::treat(model, c.data.train, o.causes, c.fq, a.treat);
  o.after = split_accuracy(model, c);
  o.model_path = out_file(a, "repaired.safetensors");
  auto meta = output_metadata(c);
  meta["lethe.repair.method"] = o.ident.method;
  meta["lethe.repair.treatment"] = a.treat.treatment;
  meta["lethe.repair.causes"] = std::to_string(o.causes.size());
  save_checkpoint(o.model_path, model, c.loaded.architecture, meta, parse_save_dtype(a.save_dtype));
  written.push_back(o.model_path);
  return o;
}

nlohmann::json repair_summary(const GlobalOptions& global, const RepairArgs& a, const RepairContext& c,
                              const RepairOutcome& o) {
  nlohmann::json j = report::provenance_json(run_info(global, c.device, data::data_dir(c.spec)));
  j["model_file"] = a.model_file;
  j["normalisation"] = normalisation_json(c.spec, c.data.mean, c.data.stddev);
  j["data"] = {{"dataset", c.spec.dataset}, {"subset", c.spec.subset}, {"noise", c.spec.noise}, {"seed", c.spec.seed}};
  j["n_train"] = c.data.train.n;
  j["n_fq"] = c.fq.n;
  j["n_fh"] = c.fh.n;
  j["n_r"] = c.remaining.n;
  j["identify"] = {{"method", o.ident.method},
                   {"seconds", o.ident.seconds},
                   {"n_positive", repair::causes_positive(o.ident.scores).size()}};
  for (const auto& [k, v] : o.ident.stats) j["identify"]["stats"][k] = v;
  j["cause_rule"] = a.rule.describe();
  j["n_causes"] = o.causes.size();
  if (const auto* mask = noise_mask(c)) {
    const repair::Detection found = repair::detection(o.ident.scores, *mask);
    j["identify"]["recall_at_k"] = found.recall_at_k;
    j["identify"]["roc_auc"] = found.roc_auc;
    j["causes_precision"] = repair::precision(o.causes, *mask);  // the chosen cause set's, not r > 0's
    j["n_corrupted"] = found.n_corrupted;
  }
  j["treat"] = {{"treatment", a.treat.treatment}, {"seconds", o.treated.seconds}};
  for (const auto& [k, v] : o.treated.stats) j["treat"]["stats"][k] = v;
  if (!o.treated.note.empty()) j["treat"]["note"] = o.treated.note;
  if (!o.treated.curve.empty()) j["treat"]["curve"] = stop_curve_json(o.treated.curve);
  j["before"] = accuracy_json(o.before);
  j["after"] = accuracy_json(o.after);
  j["outputs"] = {{"scores", o.scores_path}, {"causes_grid", o.grid_path}, {"repaired_model", o.model_path}};
  return j;
}

std::string accuracy_row(const std::string& name, const SplitAccuracy& a) {
  return fmt::format("| {} | {:.4f} | {:.4f} | {:.4f} | {:.4f} |\n", name, a.fq, a.fh, a.remaining, a.test);
}

// report.md, from the summary `j` and what it does not hold.
std::string repair_report(const RepairArgs& a, const RepairContext& c, const RepairOutcome& o, const nlohmann::json& j) {
  std::string md = "# lethe repair report\n\n";
  md += fmt::format("Model `{}` ({}), trained on {} examples of {} (noise: {}, seed {}), run on {}.\n\n", a.model_file,
                    c.loaded.model_name, c.data.train.n, c.spec.dataset, c.spec.noise, c.spec.seed, device_name(c.device));
  if (a.failures_file.empty())
    md += fmt::format("Failures: {} misclassified test examples, split into |Fq| = {} (shown to the method) and "
                      "|Fh| = {} (held out); R = the {} correctly classified.\n\n",
                      c.fq.n + c.fh.n, c.fq.n, c.fh.n, c.remaining.n);
  else
    md += fmt::format("Failures: |Fq| = {} test examples listed in `{}` (shown to the method); |Fh| = the {} other "
                      "misclassified ones (held out); R = the {} correctly classified outside Fq.\n\n",
                      c.fq.n, a.failures_file, c.fh.n, c.remaining.n);
  md += fmt::format("## Step I: causes\n\nMethod `{}` scored every training example in {:.1f} s. Cause set: {} ({} examples); "
                    "{} examples have r > 0.\n\n",
                    o.ident.method, o.ident.seconds, a.rule.describe(), o.causes.size(),
                    j["identify"]["n_positive"].get<size_t>());
  if (noise_mask(c))
    md += fmt::format("Against the {} examples the noise corrupted: recall@{} = {:.3f}, ROC AUC = {:.3f}, precision of the "
                      "cause set = {:.3f}.\n\n",
                      j["n_corrupted"].get<int64_t>(), j["n_corrupted"].get<int64_t>(), j["identify"]["recall_at_k"].get<double>(),
                      j["identify"]["roc_auc"].get<double>(), j["causes_precision"].get<double>());
  md += "![top causes](causes.png)\n\n";
  md += fmt::format("## Step II: treatment `{}` ({:.1f} s)\n\n", a.treat.treatment, o.treated.seconds);
  md += "| model | Fq | Fh | R | test |\n|---|---|---|---|---|\n";
  md += accuracy_row("before", o.before) + accuracy_row("after", o.after);
  if (!o.treated.note.empty()) md += "\n" + o.treated.note + ".\n";
  md += "\nFq: failures the method saw; Fh: failures it did not (does the repair generalise?); R: what the model "
        "already got right (is it kept?).\n\nFiles: `scores.csv`, `causes.png`, `repaired.safetensors`, `summary.json`.\n";
  return md;
}

// The table on stdout without --json.
std::string repair_console(const RepairArgs& a, const RepairOutcome& o) {
  std::string out = fmt::format("{} + {}: {} causes removed\n", o.ident.method, a.treat.treatment, o.causes.size());
  out += "           Fq      Fh      R       test\n";
  for (const auto& [name, s] : {std::pair{"before", &o.before}, std::pair{"after ", &o.after}})
    out += fmt::format("{}   {:.4f}  {:.4f}  {:.4f}  {:.4f}\n", name, s->fq, s->fh, s->remaining, s->test);
  if (!o.treated.note.empty()) out += o.treated.note + "\n";
  out += fmt::format("report: {}\n", out_file(a, "report.md"));
  return out;
}

void run_repair(const GlobalOptions& global, RepairArgs& a, const CLI::App& cmd) {
  check_repair_flags(global, a, cmd);
  Progress progress(global.quiet);
  RepairContext c = load_context(cmd, global, a.model_file, a.spec, a.failures_file, progress, a.model);
  check_cause_rule_fits(a.rule, c.data.train.n);
  std::filesystem::create_directories(a.out_dir);
  connect_options(a, c, progress);

  // Outputs complete on disk, for the message of an interruption: each is written atomically,
  // so what is listed is whole and anything else in --out-dir is as it was.
  std::vector<std::string> written;
  try {
    const RepairOutcome o = identify_and_treat(a, c, progress, written);
    const nlohmann::json j = repair_summary(global, a, c, o);
    write_file_atomic(out_file(a, "report.md"), repair_report(a, c, o, j));
    write_file_atomic(out_file(a, "summary.json"), j.dump(2) + "\n");
    print_result(a.json ? j.dump(2) + "\n" : repair_console(a, o));
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
  add_cause_rule_options(cmd, a->rule, fmt::format("default {}, when no rule is given", kDefaultTopK));
  add_treatment_options(cmd, a->treat);
  add_save_dtype_option(cmd, a->save_dtype);
  cmd->add_flag("--json", a->json, "Print the summary as JSON on stdout");
  cmd->callback([&global, a, cmd] { run_repair(global, *a, *cmd); });
}

}  // namespace lethe::cli
