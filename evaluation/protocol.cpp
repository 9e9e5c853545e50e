#include "evaluation/protocol.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "datasets/transforms.h"
#include "learning/recipe.h"
#include "learning/train.h"
#include "repair/identify.h"
#include "influence/params.h"
#include "repair/registry.h"
#include "repair/treat.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

// One seed's trained model and the sets it is measured on.
struct SeedRun {
  data::DataSpec spec;
  data::PreparedData d;
  std::unique_ptr<Module> model;
  std::optional<data::Augmentation> augmentation;
  data::ImageSet fq, fh, rest;
  ModelSnapshot trained;
  TrainingRecipe recipe;  // how `model` was trained (sgd-influence replays it)
  int64_t n_noisy = 0;
  bool first = false;  // the first seed: its first method's largest removal is traced
  std::array<double, 3> accuracies(Module& m) const {
    return {fq.n ? evaluate(m, fq).accuracy : 0.0, fh.n ? evaluate(m, fh).accuracy : 0.0,
            rest.n ? evaluate(m, rest).accuracy : 0.0};
  }
};

class Protocol {
 public:
  Protocol(const ExperimentSettings& s, const ExperimentHooks& h, ExperimentResults& out) : s_(s), h_(h), out_(out) {}

  void run_seed(int index) {
    SeedRun run;
    run.spec = s_.spec;
    run.spec.seed = s_.first_seed + static_cast<uint64_t>(index);
    run.first = index == 0;
    line(fmt::format("== seed {} ({}/{})", run.spec.seed, index + 1, s_.seeds));
    train_base(run);
    const auto ranked = identify_all(run, index == 0);
    for (const auto& [method, scores] : ranked) remove_all(run, method, scores);
    if (out_.noisy) random_control(run);
    if (out_.noisy && find_treatment(s_.removal).trains) nothing_removed(run);
    treat_largest_k(run, ranked.front().first, ranked.front().second);
  }

 private:
  void line(const std::string& text) const {
    if (h_.line) h_.line(text);
  }
  void update(const std::string& stage, int64_t done, int64_t total) const {
    if (h_.update) h_.update(stage, done, total);
  }

  void train_base(SeedRun& run) {
    run.d = prepare_data_with_victim(run.spec, s_.device, h_.line);
    run.model = init_base_model(s_.model, run.spec.seed);
    run.model->to(s_.device);
    if (s_.augment) run.augmentation = data::training_augmentation(run.d);
    TrainOptions to = base_training(run.spec.seed, s_.epochs, s_.batch, s_.lr, run.augmentation);
    to.on_batch = [&](int64_t done, int64_t total) { update("train", done, total); };
    to.on_epoch = [&](const EpochStats& e) {
      if (e.epoch == e.epochs || e.epoch % 5 == 0)
        line(fmt::format("train epoch {}/{}: loss {:.4f}, train acc {:.4f}", e.epoch, e.epochs, e.loss, e.accuracy));
    };
    run.recipe = {s_.model, run.spec.seed, to};
    const auto t_train = Clock::now();
    train_classifier(*run.model, run.d.train, to);
    const double train_seconds = since(t_train);
    const auto test_eval = evaluate(*run.model, run.d.test);
    const auto split = split_failures(test_eval.predictions, run.d.test.labels, run.spec.seed);
    run.fq = data::take(run.d.test, split.fq);
    run.fh = data::take(run.d.test, split.fh);
    run.rest = data::take(run.d.test, split.remaining);
    line(fmt::format("base model: test accuracy {:.4f}, |Fq| = {}, |Fh| = {}", test_eval.accuracy, run.fq.n, run.fh.n));
    run.trained = snapshot(*run.model);
    run.n_noisy = std::count(run.d.noisy.begin(), run.d.noisy.end(), 1);
    const auto base = run.accuracies(*run.model);
    out_.rows.push_back({run.spec.seed, "none", "none", 0, base[0], base[1], base[2], 0});
    out_.seeds.push_back({run.spec.seed, train_seconds, test_eval.accuracy, run.fq.n, run.fh.n, run.n_noisy});
  }

  // Step I for every method, and the oracle's ranking when the corruption is known.
  std::vector<std::pair<std::string, std::vector<double>>> identify_all(SeedRun& run, bool first_seed) {
    std::vector<std::pair<std::string, std::vector<double>>> ranked;
    for (const auto& m : s_.methods) {
      IdentifyOptions io;
      const MethodVariant v = parse_method_variant(m);
      io.method = v.method;
      if (!v.solver.empty()) io.solve.solver = v.solver;
      io.seed = run.spec.seed;
      io.fisher = s_.fisher;
      io.fisher.seed = stream_seed(run.spec.seed, Stream::kFisherLabels);
      io.recipe = run.recipe;
      io.progress = [&](const std::string& stage, int64_t done, int64_t total) { update(m + " " + stage, done, total); };
      const auto r = identify(*run.model, run.d.train, run.fq, io);
      MethodScore ms;
      ms.seed = run.spec.seed;
      ms.method = m;
      ms.seconds = r.seconds;
      ms.n_positive = static_cast<int64_t>(causes_positive(r.scores).size());
      ms.measured = out_.noisy;
      if (out_.noisy) ms.detection = detection(r.scores, run.d.noisy, 50);
      line(fmt::format("{:<9} {:6.2f}s  recall@{} {:.3f}  AUC {:.3f}", m, r.seconds, run.n_noisy,
                       ms.measured ? ms.detection.recall_at_k : NAN, ms.measured ? ms.detection.roc_auc : NAN));
      out_.scores.push_back(ms);
      if (first_seed && m == s_.methods.front() && h_.first_scores)
        h_.first_scores(m, run.spec.seed, run.d.train, r.scores, out_.noisy ? &run.d.noisy : nullptr);
      ranked.emplace_back(m, r.scores);
    }
    if (out_.noisy) ranked.emplace_back("oracle", std::vector<double>(run.d.noisy.begin(), run.d.noisy.end()));
    return ranked;
  }

  // Step II: remove the top k and treat (fine-tune by default), for every k (the oracle at most the
  // corrupted set, each distinct size once).
  void remove_all(SeedRun& run, const std::string& method, const std::vector<double>& scores) {
    std::vector<int64_t> sizes;
    for (int64_t k : s_.ks) {
      const int64_t kk = method == "oracle" ? std::min<int64_t>(k, run.n_noisy) : k;
      if (std::find(sizes.begin(), sizes.end(), kk) == sizes.end()) sizes.push_back(kk);
    }
    const int64_t kmax = *std::max_element(s_.ks.begin(), s_.ks.end());
    for (int64_t k : sizes) {
      const std::string stage = fmt::format("{} k={}", method, k);
      const bool traced = run.first && method == s_.methods.front() && k == kmax;
      repair_causes(run, method, s_.removal, k, causes_top_k(scores, k), stage, traced);
    }
    const RepairRow last = out_.rows.back();
    positive_causes(run, method, scores);
    line(fmt::format("{:<9} remove top {} + {}: Fq {:.3f}  Fh {:.3f}  R {:.3f}", method, last.k, s_.removal, last.fq,
                     last.fh, last.r));
  }

  // The paper's own cause set, C = {r > 0}, beside the top k: treated when it is a real choice
  // (neither empty nor nearly all of D, as random's and the oracle's are).
  void positive_causes(SeedRun& run, const std::string& method, const std::vector<double>& scores) {
    if (method == "oracle" || method == "random") return;
    const auto causes = causes_positive(scores);
    const auto n = static_cast<int64_t>(causes.size());
    if (n == 0 || n > run.d.train.n * 9 / 10) return;
    repair_causes(run, method, s_.removal, n, causes, fmt::format("{} r>0 ({})", method, n));
    out_.rows.back().positive = true;
  }

  // The oracle gate's control: random removal of as many examples as the oracle's largest removal,
  // treated the same way, unless the random method was already treated so at that k. Its
  // scores are the random method's (the same stream and seed).
  void random_control(SeedRun& run) {
    const int64_t kmax = *std::max_element(s_.ks.begin(), s_.ks.end());
    const int64_t k = std::min<int64_t>(kmax, run.n_noisy);
    if (k < 1) return;
    for (const auto& r : out_.rows)
      if (r.seed == run.spec.seed && r.method == "random" && r.treatment == s_.removal && r.k == k && !r.positive) return;
    IdentifyOptions io;
    io.method = "random";
    io.seed = run.spec.seed;
    const auto scores = identify(*run.model, run.d.train, run.fq, io).scores;
    repair_once(run, "random", s_.removal, k, scores, fmt::format("oracle gate: random k={}", k));
  }

  // The control that removes nothing: the removal treatment on all of D (a treatment that trains;
  // the others have nothing to act on). What it repairs is what
  // further training (fine-tuning) or another initialisation (retraining) repairs by itself.
  void nothing_removed(SeedRun& run) {
    repair_causes(run, "nothing", s_.removal, 0, {}, "control: nothing removed");
  }

  // The other treatments at the largest k, on the first method's causes.
  void treat_largest_k(SeedRun& run, const std::string& method, const std::vector<double>& scores) {
    const int64_t kmax = *std::max_element(s_.ks.begin(), s_.ks.end());
    for (const auto& tname : s_.treatments) {
      if (tname == s_.removal) continue;
      repair_once(run, method, tname, kmax, scores, tname);
      const auto& r = out_.rows.back();
      line(fmt::format("{} + {} (top {}): Fq {:.3f}  Fh {:.3f}  R {:.3f}  {:.1f}s", method, tname, kmax, r.fq, r.fh, r.r,
                       r.seconds));
    }
  }

  // One treatment of the top k from the trained model; its row joins the results.
  void repair_once(SeedRun& run, const std::string& method, const std::string& treatment, int64_t k,
                   const std::vector<double>& scores, const std::string& stage) {
    repair_causes(run, method, treatment, k, causes_top_k(scores, k), stage);
  }
  // `traced`: the held-out rule's course, with Fh and R at each evaluation, joins the results.
  void repair_causes(SeedRun& run, const std::string& method, const std::string& treatment, int64_t k,
                     const std::vector<int64_t>& causes, const std::string& stage, bool traced = false) {
    restore(*run.model, run.trained);
    TreatOptions t = s_.treat;
    t.treatment = treatment;
    t.seed = run.spec.seed;
    t.augment = run.augmentation;
    // Retraining follows the base model's epochs and step size (its batch is the treatments' own).
    t.retrain_epochs = s_.epochs;
    t.retrain_lr = s_.lr;
    t.recipe = run.recipe;
    t.progress = [&](const std::string& what, int64_t done, int64_t total) {
      update(fmt::format("{} {}", stage, what), done, total);
    };
    StopTrace trace{run.spec.seed, method, k, 0, {}};
    if (traced)
      t.observe = [&](const StopEvaluation& e, Module& m) {
        const auto a = run.accuracies(m);
        trace.points.push_back({e.epoch, e.fq, e.heldout, a[1], a[2], e.within});
      };
    const auto tr = treat(*run.model, run.d.train, causes, run.fq, t);
    const auto acc = run.accuracies(*run.model);
    out_.rows.push_back({run.spec.seed, method, treatment, k, acc[0], acc[1], acc[2], tr.seconds});
    if (tr.curve.empty()) return;
    out_.rows.back().stopping = tr.stats;
    if (trace.points.empty()) return;
    line(fmt::format("{} top {}: {}", method, k, tr.note));
    trace.kept_epoch = static_cast<int>(tr.stats.at("best_epoch"));
    out_.traces.push_back(std::move(trace));
  }

  const ExperimentSettings& s_;
  const ExperimentHooks& h_;
  ExperimentResults& out_;
};

}  // namespace

std::vector<std::string> default_methods() {
  std::vector<std::string> names;
  for (const MethodInfo* m : methods())
    if (m->in_experiment) names.push_back(m->name);
  return names;
}

std::vector<std::string> default_treatments() {
  std::vector<std::string> names;
  for (const TreatmentInfo* t : treatments())
    if (t->in_experiment) names.push_back(t->name);
  return names;
}

std::string default_removal(const data::DataSpec& spec) {
  return spec.noise == "input" && data::noise_design(spec) == "pattern" ? "retrain" : "finetune";
}

std::string removal_treatment(const ExperimentSettings& settings) {
  return settings.removal.empty() ? default_removal(settings.spec) : settings.removal;
}

void validate(const ExperimentSettings& a) {
  data::validate_values(a.spec);  // before --subset is compared with anything
  if (a.methods.empty()) throw UsageError("--methods: at least one method");
  for (const auto& m : a.methods) parse_method_variant(m);
  for (const auto& t : a.treatments) find_treatment(t, "--treatments");
  if (!a.removal.empty()) find_treatment(a.removal, "--removal-treatment");
  if (a.ks.empty()) throw UsageError("--ks: at least one k");
  const int64_t n = a.spec.subset;
  for (int64_t k : a.ks)
    if (k < 1 || (n > 0 && k >= n))
      throw UsageError(fmt::format("--ks: k = {} must be in [1, {}) (the training set size)", k, n));
  if (a.seeds < 1) throw UsageError(fmt::format("--seeds {}: must be >= 1", a.seeds));
  if (a.fisher.mc_samples < 1) throw UsageError(fmt::format("--mc-samples {}: must be >= 1", a.fisher.mc_samples));
  if (a.epochs < 1) throw UsageError(fmt::format("--epochs {}: must be >= 1", a.epochs));
  if (a.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", a.batch));
  if (!(a.lr > 0)) throw UsageError(fmt::format("--lr {}: must be > 0", a.lr));
  validate(a.treat);
  data::validate_spec(a.spec);
}

ExperimentResults run_experiment(const ExperimentSettings& settings, const ExperimentHooks& hooks) {
  validate(settings);
  const auto t_all = Clock::now();
  ExperimentResults out;
  out.settings = settings;
  if (out.settings.model.empty()) out.settings.model = default_model(settings.spec.dataset);
  out.settings.removal = removal_treatment(settings);
  out.noisy = settings.spec.noise != "none";
  Protocol protocol(out.settings, hooks, out);
  for (int s = 0; s < settings.seeds; ++s) protocol.run_seed(s);
  if (const OracleGate gate = oracle_gate(out); gate.measured && hooks.line) hooks.line(gate.verdict);
  out.seconds_total = since(t_all);
  return out;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / static_cast<double>(v.size());
}

double stdev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::vector<int64_t> finetune_sizes(const ExperimentResults& results, const std::string& method) {
  std::vector<int64_t> out;
  const std::string removal = removal_treatment(results.settings);
  for (const auto& r : results.rows)
    if (r.method == method && r.treatment == removal && !r.positive && std::find(out.begin(), out.end(), r.k) == out.end())
      out.push_back(r.k);
  return out;
}

namespace {
// Fills a group's mean k and its label: the k when every seed removed as many, else `varying`
// with the mean.
void label_group(RemovalGroup& g, const std::string& varying) {
  double sum = 0;
  for (const auto* r : g.rows) sum += static_cast<double>(r->k);
  g.k_mean = sum / static_cast<double>(g.rows.size());
  const bool same = std::all_of(g.rows.begin(), g.rows.end(), [&](const RepairRow* r) { return r->k == g.rows[0]->k; });
  g.k_label = same ? std::to_string(g.rows[0]->k) : fmt::format("{} (mean {:.0f})", varying, g.k_mean);
}
}  // namespace

std::vector<RemovalGroup> removal_groups(const ExperimentResults& results, const std::string& method) {
  std::vector<RemovalGroup> groups;
  const std::string removal = removal_treatment(results.settings);
  if (method != "oracle") {
    const auto& asked = results.settings.ks;
    RemovalGroup control;  // random removal of as many as the oracle removed (the gate's), k per seed
    for (int64_t k : finetune_sizes(results, method)) {
      const bool as_asked = std::find(asked.begin(), asked.end(), k) != asked.end() || k == 0;
      RemovalGroup g{std::to_string(k), static_cast<double>(k), {}};
      for (const auto& r : results.rows)
        if (r.method == method && r.treatment == removal && r.k == k && !r.positive)
          (as_asked ? g.rows : control.rows).push_back(&r);
      if (as_asked) groups.push_back(std::move(g));
    }
    if (!control.rows.empty()) {
      label_group(control, "as many as the oracle");
      groups.push_back(std::move(control));
    }
    return groups;
  }
  std::vector<int64_t> asked = results.settings.ks;
  std::sort(asked.begin(), asked.end());
  for (int64_t k : asked) {
    RemovalGroup g;
    bool all_corrupted = true;
    for (const auto& seed : results.seeds) {
      const int64_t kk = std::min(k, seed.n_corrupted);
      all_corrupted = all_corrupted && kk == seed.n_corrupted;
      for (const auto& r : results.rows)
        if (r.seed == seed.seed && r.method == method && r.treatment == removal && r.k == kk && !r.positive)
          g.rows.push_back(&r);
    }
    if (g.rows.empty() || (!groups.empty() && groups.back().rows == g.rows)) continue;
    label_group(g, all_corrupted ? "all corrupted" : "up to " + std::to_string(k));
    groups.push_back(std::move(g));
  }
  return groups;
}

std::vector<const RepairRow*> rows_where(const ExperimentResults& results,
                                         const std::function<bool(const RepairRow&)>& keep) {
  std::vector<const RepairRow*> out;
  for (const auto& r : results.rows)
    if (keep(r)) out.push_back(&r);
  return out;
}

OracleGate oracle_gate(const ExperimentResults& results, double margin) {
  OracleGate g;
  const std::string removal = removal_treatment(results.settings);
  g.margin = margin;
  std::vector<double> oracle_fh, random_fh, oracle_r, diff, ks;
  for (const auto& seed : results.seeds) {
    const RepairRow* oracle = nullptr;
    for (const auto& r : results.rows)
      if (r.seed == seed.seed && r.method == "oracle" && r.treatment == removal && !r.positive && (!oracle || r.k > oracle->k))
        oracle = &r;
    if (!oracle) continue;
    const RepairRow* random = nullptr;
    for (const auto& r : results.rows)
      if (r.seed == seed.seed && r.method == "random" && r.treatment == removal && r.k == oracle->k && !r.positive)
        random = &r;
    if (!random) continue;
    g.k = oracle->k;
    ks.push_back(static_cast<double>(oracle->k));
    oracle_fh.push_back(oracle->fh);
    oracle_r.push_back(oracle->r);
    random_fh.push_back(random->fh);
    diff.push_back(oracle->fh - random->fh);
  }
  g.seeds = static_cast<int64_t>(diff.size());
  if (!results.noisy || diff.empty() || g.seeds != static_cast<int64_t>(results.seeds.size())) return g;
  g.measured = true;
  g.oracle_fh = mean(oracle_fh), g.oracle_fh_std = stdev(oracle_fh);
  g.random_fh = mean(random_fh), g.random_fh_std = stdev(random_fh);
  g.oracle_r = mean(oracle_r);
  g.difference = mean(diff), g.difference_std = stdev(diff);
  g.k_mean = mean(ks);
  const bool same_k = std::all_of(ks.begin(), ks.end(), [&](double k) { return k == ks.front(); });
  const std::string k_text = same_k ? fmt::format("k = {}", g.k) : fmt::format("k = {:.0f} on average", g.k_mean);
  // Clearly above: by the margin, and by two standard errors of the paired difference.
  const double se = g.seeds >= 2 ? g.difference_std / std::sqrt(static_cast<double>(g.seeds)) : 0.0;
  g.causal = g.difference >= margin && g.difference > 2 * se;
  const std::string pm_o = g.seeds >= 2 ? fmt::format(" ± {:.3f}", g.oracle_fh_std) : "";
  const std::string pm_r = g.seeds >= 2 ? fmt::format(" ± {:.3f}", g.random_fh_std) : "";
  const std::string treated = removal == "finetune" ? "fine-tuning" : removal == "retrain" ? "retraining" : "treating by " + removal;
  g.verdict = g.causal
                  ? fmt::format("Oracle gate: removing the corrupted examples ({}) and {} gives Fh {:.3f}{} "
                                "against {:.3f}{} for as many random ones ({:+.3f} over {} seed(s)): the corruption "
                                "causes the failures, so rankings of D can be judged by repair.",
                                k_text, treated, g.oracle_fh, pm_o, g.random_fh, pm_r, g.difference, g.seeds)
                  : fmt::format("Oracle gate: the corruption does not cause the failures: removing the corrupted "
                                "examples ({}) gives Fh {:.3f}{} against {:.3f}{} for as many random ones, only "
                                "{:+.3f} over {} seed(s) (at least {:.2f}, clear of the seeds' spread, is needed), so "
                                "no ranking of D can be judged by how much its removal repairs here.",
                                k_text, g.oracle_fh, pm_o, g.random_fh, pm_r, g.difference, g.seeds, margin);
  return g;
}

std::vector<std::string> compared_methods(const ExperimentResults& results) {
  std::vector<std::string> m = results.settings.methods;
  if (results.noisy) m.push_back("oracle");
  return m;
}

}  // namespace lethe::repair
