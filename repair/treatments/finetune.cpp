// finetune: Adam on D \ C from θ̂, the paper's yardstick for the causes. How long it trains is a
// rule (--finetune-stop): by default it holds out a seeded slice of D \ C and stops on that slice
// and on Fq (repair/heldout_stop.h); `fixed` runs --epochs epochs on all of D \ C.
#include <cmath>
#include <map>

#include <fmt/format.h>

#include "datasets/transforms.h"
#include "learning/train.h"
#include "repair/heldout_stop.h"
#include "influence/params.h"
#include "repair/treatment_support.h"
#include "util/error.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

void finetune_fixed(TreatmentRun& run) {
  train_classifier(run.model, run.set, train_options(run.options, run.options.epochs, run.options.lr, "finetune"));
}

// The rule's figures into the result's stats, and its one-line account.
void describe_rule(TreatmentRun& run, const HeldoutStop& rule, int64_t heldout_n) {
  const TreatOptions& o = run.options;
  auto& stats = run.result.stats;
  const StopEvaluation &start = rule.start(), &best = rule.best(), &last = run.result.curve.back();
  stats["heldout_examples"] = static_cast<double>(heldout_n);  // the slice's examples right before fine-tuning
  stats["epochs_run"] = last.epoch;
  stats["best_epoch"] = best.epoch;
  stats["stopped_early"] = last.epoch < o.finetune_max_epochs ? 1.0 : 0.0;
  stats["within_tolerance"] = best.within ? 1.0 : 0.0;
  stats["fq_accuracy_start"] = start.fq, stats["fq_accuracy_best"] = best.fq, stats["fq_accuracy_last"] = last.fq;
  stats["heldout_accuracy_start"] = start.heldout, stats["heldout_accuracy_best"] = best.heldout;
  stats["heldout_accuracy_last"] = last.heldout;
  const std::string why = last.epoch < o.finetune_max_epochs
                              ? fmt::format("stopped after {} epochs without a better one", o.finetune_patience)
                              : fmt::format("ran to --finetune-max-epochs {}", o.finetune_max_epochs);
  const std::string chosen =
      best.within ? fmt::format("kept epoch {} of {}, the best Fq accuracy with the held-out accuracy within {} of its start",
                                best.epoch, last.epoch, o.finetune_tolerance)
                  : fmt::format("kept epoch {} of {}, the best held-out accuracy: no epoch stayed within {} of its start",
                                best.epoch, last.epoch, o.finetune_tolerance);
  run.result.note = fmt::format("finetune (held-out rule): {} ({}); Fq {:.4f} -> {:.4f}, held-out examples of D \\ C "
                                "right before fine-tuning ({} of {}) {:.4f} -> {:.4f}",
                                chosen, why, start.fq, best.fq, heldout_n, stats.at("heldout_slice"), start.heldout,
                                best.heldout);
  log(o, run.result.note);
}

// The held-out slice's examples the model classifies correctly: R's own construction (the test
// examples θ̂ gets right) applied to the slice, so its accuracy starts at 1 and, like R's, can only
// fall by what fine-tuning costs. The slice's whole accuracy would not show that cost: it rises
// as fine-tuning corrects the slice's mistakes while it breaks what was right (measured in
// docs/noise.md, "Fine-tuning's stopping rule").
data::ImageSet right_now(Module& model, const data::ImageSet& slice) {
  if (slice.n == 0) return slice;
  const EvalResult e = evaluate(model, slice);
  std::vector<int64_t> right;
  for (int64_t i = 0; i < slice.n; ++i)
    if (e.predictions[static_cast<size_t>(i)] == slice.labels[static_cast<size_t>(i)]) right.push_back(i);
  return data::take(slice, right);
}

// Fine-tunes on D \ C less a seeded held-out slice, evaluating after every epoch, and leaves the
// model at the rule's best epoch (parameters and buffers).
void finetune_heldout(TreatmentRun& run) {
  const TreatOptions& o = run.options;
  Rng rng = stream(o.seed, Stream::kFinetuneHeldout);
  const data::HoldoutSplit split = data::holdout_split(run.set.n, o.finetune_heldout, rng);
  const data::ImageSet fit = data::take(run.set, split.kept);
  const data::ImageSet heldout = right_now(run.model, data::take(run.set, split.held_out));
  run.result.stats["heldout_slice"] = static_cast<double>(split.held_out.size());
  const auto evaluate_at = [&](int epoch) {
    StopEvaluation e;
    e.epoch = epoch;
    e.fq = accuracy(run.model, run.fq);
    e.heldout = accuracy(run.model, heldout);
    return e;
  };
  const StopEvaluation start = evaluate_at(0);
  run.result.curve.push_back(start);
  if (o.observe) o.observe(start, run.model);
  HeldoutStop rule(start, o.finetune_patience, o.finetune_tolerance, heldout.n > 0);
  ModelSnapshot best;
  TrainOptions t = train_options(o, o.finetune_max_epochs, o.lr, "finetune");
  t.stop_after = [&](const EpochStats& s) {
    StopEvaluation e = evaluate_at(s.epoch);
    if (rule.record(e)) best = snapshot(run.model);
    run.result.curve.push_back(e);
    if (o.observe) o.observe(e, run.model);
    log(o, fmt::format("finetune epoch {}: Fq {:.4f}, held-out {:.4f}{}{}", e.epoch, e.fq, e.heldout,
                       e.within ? "" : " (below the tolerance)", rule.best().epoch == e.epoch ? ", best so far" : ""));
    return rule.done();
  };
  train_classifier(run.model, fit, t);
  restore(run.model, best);
  describe_rule(run, rule, heldout.n);
}

// The stopping rules by name: the option's check and the treatment's dispatch read this one table.
const std::map<std::string, void (*)(TreatmentRun&)>& stopping_rules() {
  static const std::map<std::string, void (*)(TreatmentRun&)> rules = {{"fixed", finetune_fixed},
                                                                       {"heldout", finetune_heldout}};
  return rules;
}

std::string rule_names() {
  std::string names;
  for (const auto& [name, run] : stopping_rules()) names += (names.empty() ? "" : " | ") + name;
  return names;
}

}  // namespace
}  // namespace lethe::repair

LETHE_TREATMENT(finetune) {
  using namespace lethe::repair;
  using lethe::UsageError;
  using O = TreatOptions;
  static const TreatmentInfo t = {
      .name = "finetune",
      .summary = "Adam on D \\ C from θ̂, stopped by a held-out slice of D \\ C and Fq (or after --epochs)",
      .position = 10,
      .trains = true,
      .options =
          {
              option<std::string, O>(
                  "--finetune-stop",
                  "when fine-tuning stops: heldout (hold out a seeded --finetune-heldout share of D \\ C, fine-tune on the "
                  "rest, and after every epoch evaluate Fq and the held-out examples the model got right before "
                  "fine-tuning; keep the epoch of best Fq accuracy that keeps all but --finetune-tolerance of those right, "
                  "stop after --finetune-patience epochs without a better one or at --finetune-max-epochs; Fh is never "
                  "looked at) | fixed (--epochs epochs on all of D \\ C)",
                  [](O& o) -> std::string& { return o.finetune_stop; },
                  [](const O& o) {
                    if (!stopping_rules().count(o.finetune_stop))
                      throw UsageError(fmt::format("--finetune-stop '{}': must be one of {}", o.finetune_stop, rule_names()));
                  }),
              option<int, O>("--finetune-max-epochs", "most epochs under the held-out rule",
                             [](O& o) -> int& { return o.finetune_max_epochs; },
                             [](const O& o) {
                               if (o.finetune_max_epochs < 1)
                                 throw UsageError(fmt::format("--finetune-max-epochs {}: must be >= 1", o.finetune_max_epochs));
                             }),
              option<int, O>("--finetune-patience", "held-out rule: epochs without a better kept epoch before stopping",
                             [](O& o) -> int& { return o.finetune_patience; },
                             [](const O& o) {
                               if (o.finetune_patience < 1)
                                 throw UsageError(fmt::format("--finetune-patience {}: must be >= 1", o.finetune_patience));
                             }),
              option<double, O>("--finetune-heldout", "held-out rule: share of D \\ C held out (0: stop on Fq alone)",
                                [](O& o) -> double& { return o.finetune_heldout; },
                                [](const O& o) {
                                  if (!(o.finetune_heldout >= 0 && o.finetune_heldout < 1))
                                    throw UsageError(fmt::format("--finetune-heldout {}: must be in [0, 1)", o.finetune_heldout));
                                }),
              option<double, O>("--finetune-tolerance",
                                "held-out rule: share of the held-out examples right before fine-tuning a kept epoch may lose",
                                [](O& o) -> double& { return o.finetune_tolerance; },
                                [](const O& o) {
                                  if (!(o.finetune_tolerance >= 0 && o.finetune_tolerance <= 1))
                                    throw UsageError(
                                        fmt::format("--finetune-tolerance {}: must be in [0, 1]", o.finetune_tolerance));
                                }),
              option<int, O>("--epochs", "epochs on D \\ C with --finetune-stop fixed", [](O& o) -> int& { return o.epochs; },
                             [](const O& o) {
                               if (o.epochs < 0) throw UsageError(fmt::format("--epochs {}: must be >= 0", o.epochs));
                             }),
              option<double, O>("--lr", "Adam step size", [](O& o) -> double& { return o.lr; },
                                [](const O& o) {
                                  if (!(o.lr > 0)) throw UsageError(fmt::format("--lr {}: must be > 0", o.lr));
                                }),
              option<int64_t, O>("--treat-batch", "mini-batch size", [](O& o) -> int64_t& { return o.batch; },
                                 [](const O& o) {
                                   if (o.batch < 1) throw UsageError(fmt::format("--treat-batch {}: must be >= 1", o.batch));
                                 }),
          },
      .run = [](TreatmentRun& run) { stopping_rules().at(run.options.finetune_stop)(run); },
  };
  return t;
}
