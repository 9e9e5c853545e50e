#include <nlohmann/json.hpp>

#include "nn/checkpoint.h"
#include "repair/treat.h"
#include "tools/lethe/context.h"
#include "tools/lethe/scores_io.h"
#include "tools/lethe/treat_args.h"
#include "util/error.h"

namespace lethe::cli {
namespace {

struct TreatArgs {
  std::string model_file, failures_file, scores_file, out;
  std::string model, save_dtype = "f32";
  data::DataSpec spec;
  CauseRule rule;
  repair::TreatOptions opt;
  bool json = false;
  bool tradeoff = false;
};

void run_treat(const GlobalOptions& global, TreatArgs& a, const CLI::App& cmd) {
  a.opt.seed = global.seed;
  repair::validate(a.opt);
  check_finetune_flags(cmd, a.opt);
  parse_save_dtype(a.save_dtype);  // a bad value stops here, before any work
  resolve_cause_rule(cmd, a.rule);
  Progress progress(global.quiet);
  RepairContext c = load_context(cmd, global, a.model_file, a.spec, a.failures_file, progress, a.model);
  check_cause_rule_fits(a.rule, c.data.train.n);
  const auto scores = read_scores_csv(a.scores_file, c.data.train.n);
  const auto causes = select_causes(a.rule, scores);
  a.opt.augment = c.augment;
  a.opt.recipe = c.recipe;
  a.opt.progress = [&](const std::string& stage, int64_t d, int64_t t) { progress.update(stage, d, t); };
  a.opt.log = [&](const std::string& line) { progress.line(line); };
  Module& model = *c.loaded.model;
  // With --tradeoff, Fh and R beside each of the held-out rule's evaluations: the trade-off the
  // rule cannot see (it never looks at Fh), for the user to judge its choice.
  std::vector<std::pair<double, double>> fh_r;
  if (a.tradeoff)
    a.opt.observe = [&](const repair::StopEvaluation&, Module& m) {
      fh_r.emplace_back(c.fh.n ? evaluate(m, c.fh).accuracy : 0.0, c.remaining.n ? evaluate(m, c.remaining).accuracy : 0.0);
    };
  const SplitAccuracy before = split_accuracy(model, c);
  const auto r = repair::treat(model, c.data.train, causes, c.fq, a.opt);
  const SplitAccuracy after = split_accuracy(model, c);

  auto meta = output_metadata(c);
  meta["lethe.repair.treatment"] = a.opt.treatment;
  meta["lethe.repair.causes"] = std::to_string(causes.size());
  meta["lethe.repair.scores"] = a.scores_file;
  save_checkpoint(a.out, model, c.loaded.architecture, meta, parse_save_dtype(a.save_dtype));

  if (a.json) {
    nlohmann::json j = report::provenance_json(run_info(global, c.device, data::data_dir(c.spec)));
    j["normalisation"] = normalisation_json(c.spec, c.data.mean, c.data.stddev);
    j["treatment"] = a.opt.treatment;
    j["n_causes"] = causes.size();
    j["seconds"] = r.seconds;
    j["before"] = accuracy_json(before);
    j["after"] = accuracy_json(after);
    for (const auto& [k, v] : r.stats) j["stats"][k] = v;
    if (!r.note.empty()) j["note"] = r.note;
    if (!r.curve.empty()) {
      j["curve"] = stop_curve_json(r.curve);
      for (size_t i = 0; i < fh_r.size(); ++i)
        j["curve"][i]["accuracy_fh"] = fh_r[i].first, j["curve"][i]["accuracy_r"] = fh_r[i].second;
    }
    j["out"] = a.out;
    print_result(j.dump(2) + "\n");
    return;
  }
  std::string out = fmt::format("treatment {} on {} ({} causes) in {:.1f}s\n\n", a.opt.treatment, a.rule.describe(),
                                causes.size(), r.seconds);
  out += "           Fq      Fh      R       test\n";
  out += fmt::format("before   {:.4f}  {:.4f}  {:.4f}  {:.4f}\n", before.fq, before.fh, before.remaining, before.test);
  out += fmt::format("after    {:.4f}  {:.4f}  {:.4f}  {:.4f}\n\n", after.fq, after.fh, after.remaining, after.test);
  if (!r.note.empty()) out += r.note + "\n\n";
  if (!r.curve.empty()) {
    const int kept = static_cast<int>(r.stats.at("best_epoch"));
    out += fmt::format("epoch   Fq      held-out{}   (the rule sees Fq and held-out; * kept, - below the tolerance)\n",
                       a.tradeoff ? "   Fh      R     " : "");
    for (size_t i = 0; i < r.curve.size(); ++i) {
      const auto& e = r.curve[i];
      out += fmt::format("{:>5}{}  {:.4f}  {:.4f}", e.epoch, e.epoch == kept ? '*' : e.within ? ' ' : '-', e.fq, e.heldout);
      out += a.tradeoff ? fmt::format("     {:.4f}  {:.4f}\n", fh_r[i].first, fh_r[i].second) : "\n";
    }
    out += "\n";
  }
  out += fmt::format("repaired model: {}\n", a.out);
  print_result(out);
}

}  // namespace

void add_treat_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("treat", "Step II: make the model forget a cause set, and measure Fq/Fh/R before and after");
  auto a = std::make_shared<TreatArgs>();
  add_context_options(cmd, a->model_file, a->spec, a->failures_file, a->model);
  cmd->add_option("--scores", a->scores_file, "Scores file from `lethe identify`")->required();
  add_cause_rule_options(cmd, a->rule, "one of --top-k, --top-fraction, --positive is required");
  add_treatment_options(cmd, a->opt);
  cmd->add_option("--out", a->out, "Repaired checkpoint to write (atomically)")->required();
  add_save_dtype_option(cmd, a->save_dtype);
  cmd->add_flag("--tradeoff", a->tradeoff,
                "finetune's held-out rule: measure Fh and R at each of its evaluations too (one pass over the test set an "
                "epoch), to see the trade-off it made");
  cmd->add_flag("--json", a->json, "Print one JSON document on stdout instead of the table");
  cmd->callback([&global, a, cmd] { run_treat(global, *a, *cmd); });
}

}  // namespace lethe::cli
