#include "report/experiment.h"

#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "report/paper.h"
#include "util/atomic_file.h"

namespace lethe::report {
namespace {

using repair::ExperimentResults;
using repair::mean;
using repair::RepairRow;

std::string pm(const std::vector<double>& v) { return mean_std(v, 3); }

std::string label(const std::string& method) { return method == "linear" ? "linear (diag)" : method; }

const repair::MethodScore* score_of(const ExperimentResults& res, uint64_t seed, const std::string& method) {
  const repair::MethodScore* found = nullptr;
  for (const auto& m : res.scores)
    if (m.seed == seed && m.method == method) found = &m;
  return found;
}

// The accuracies (Fq, Fh, R) of the rows that pass `keep`, each as a list over seeds.
struct Accuracies {
  std::vector<double> fq, fh, r, seconds;
};
Accuracies of_rows(const std::vector<const RepairRow*>& rows) {
  Accuracies a;
  for (const RepairRow* row : rows) {
    a.fq.push_back(row->fq), a.fh.push_back(row->fh), a.r.push_back(row->r), a.seconds.push_back(row->seconds);
  }
  return a;
}
Accuracies accuracies(const ExperimentResults& res, const std::function<bool(const RepairRow&)>& keep) {
  return of_rows(repair::rows_where(res, keep));
}

std::string detection_section(const ExperimentResults& res) {
  std::string md = "## Detection of the corrupted examples\n\n| method | recall@K | ROC AUC | precision of r>0 | r>0 | seconds |\n|---|---|---|---|---|---|\n";
  for (const auto& m : res.settings.methods) {
    std::vector<double> rec, auc, prec, pos, sec;
    for (const auto& x : res.scores)
      if (x.method == m) {
        rec.push_back(x.detection.recall_at_k), auc.push_back(x.detection.roc_auc);
        prec.push_back(x.detection.precision_positive);
        pos.push_back(static_cast<double>(x.n_positive)), sec.push_back(x.seconds);
      }
    md += fmt::format("| {} | {} | {} | {} | {:.0f} | {:.1f} |\n", label(m), pm(rec), pm(auc), pm(prec), mean(pos), mean(sec));
  }
  return md + "\nK = the number of corrupted examples. ![recall curve](recall_curve.svg)\n\n";
}

std::string repair_sections(const ExperimentResults& res) {
  const auto& s = res.settings;
  const std::string removal = repair::removal_treatment(s);
  std::string md = fmt::format("## Repair: remove the top k, {}\n\n| method | k | Fq | Fh | R |\n|---|---|---|---|---|\n",
                               removal_description(s));
  const auto base = accuracies(res, [](const RepairRow& r) { return r.method == "none"; });
  md += fmt::format("| original model | 0 | {} | {} | {} |\n", pm(base.fq), pm(base.fh), pm(base.r));
  for (const auto& g : repair::removal_groups(res, "nothing")) {
    const auto a = of_rows(g.rows);
    md += fmt::format("| nothing removed, {} on all of D | 0 | {} | {} | {} |\n", removal, pm(a.fq), pm(a.fh), pm(a.r));
  }
  for (const auto& m : repair::compared_methods(res))
    for (const auto& g : repair::removal_groups(res, m)) {
      const auto a = of_rows(g.rows);
      md += fmt::format("| {} | {} | {} | {} | {} |\n", label(m), g.k_label, pm(a.fq), pm(a.fh), pm(a.r));
    }
  md += "\n![Fh against k](fh_vs_k.svg) ![R against k](r_vs_k.svg)\n\n";
  std::string positive;
  for (const auto& m : s.methods) {
    const auto rows = repair::rows_where(res, [&](const RepairRow& r) { return r.positive && r.method == m; });
    if (rows.empty()) continue;
    std::vector<double> sizes;
    for (const auto* r : rows) sizes.push_back(static_cast<double>(r->k));
    const auto a = of_rows(rows);
    positive += fmt::format("| {} | {:.0f} | {} | {} | {} |\n", label(m), mean(sizes), pm(a.fq), pm(a.fh), pm(a.r));
  }
  if (!positive.empty())
    md += fmt::format("## The paper's cause set C = {{r > 0}}, {}\n\n| method | mean \\|C\\| | Fq | Fh | R |\n"
                      "|---|---|---|---|---|\n{}\n",
                      removal == "finetune" ? "fine-tuned" : "treated by " + removal, positive);
  const bool extra = std::any_of(s.treatments.begin(), s.treatments.end(), [&](const std::string& t) { return t != removal; });
  if (extra) {
    md += fmt::format("## Treatments of the top {} by {}\n\n| treatment | Fq | Fh | R | seconds |\n|---|---|---|---|---|\n",
                      *std::max_element(s.ks.begin(), s.ks.end()), s.methods.front());
    for (const auto& t : s.treatments) {
      if (t == removal) continue;
      const auto a = accuracies(res, [&](const RepairRow& r) { return r.treatment == t; });
      if (!a.fq.empty()) md += fmt::format("| {} | {} | {} | {} | {:.1f} |\n", t, pm(a.fq), pm(a.fh), pm(a.r), mean(a.seconds));
    }
    md += "\n";
  }
  return md;
}

// The mean ± std of one of the held-out rule's figures over rows.
std::string stopping_figure(const std::vector<const RepairRow*>& rows, const std::string& key, int digits) {
  std::vector<double> v;
  for (const RepairRow* r : rows) v.push_back(r->stopping.at(key));
  return mean_std(v, digits);
}

// What fine-tuning's held-out rule did after each removal, and its course on one fine-tune with
// the Fh and R it never sees; empty when no fine-tune ran under the rule.
std::string stopping_section(const ExperimentResults& res) {
  const auto stopped = repair::rows_where(res, [](const RepairRow& r) { return !r.stopping.empty(); });
  if (stopped.empty()) return "";
  const auto& t = res.settings.treat;
  std::string md = fmt::format(
      "## Fine-tuning's stopping rule\n\nEach fine-tune held out {:g}% of D \\ C (seeded), trained on the rest (Adam "
      "{:g}) and after every epoch evaluated Fq and the held-out examples the model got right before fine-tuning (the "
      "watched ones); it kept the epoch of best Fq accuracy among those that kept all but {:g} of the watched ones right, "
      "and stopped after {} epochs without a better one or at {}. Fh is never looked at.\n\n| removal | k | epochs run | "
      "kept epoch | watched held-out examples | share still right at the kept epoch | kept within the tolerance |\n"
      "|---|---|---|---|---|---|---|\n",
      100 * t.finetune_heldout, t.lr, t.finetune_tolerance, t.finetune_patience, t.finetune_max_epochs);
  std::vector<std::string> methods = repair::compared_methods(res);
  methods.push_back("nothing");
  for (const auto& m : methods)
    for (const auto& g : repair::removal_groups(res, m)) {
      std::vector<const RepairRow*> rows;
      for (const RepairRow* r : g.rows)
        if (!r->stopping.empty()) rows.push_back(r);
      if (rows.empty()) continue;
      md += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", m == "nothing" ? "nothing removed" : label(m), g.k_label,
                        stopping_figure(rows, "epochs_run", 1), stopping_figure(rows, "best_epoch", 1),
                        stopping_figure(rows, "heldout_examples", 0), stopping_figure(rows, "heldout_accuracy_best", 3),
                        stopping_figure(rows, "within_tolerance", 2));
    }
  for (const auto& trace : res.traces) {
    md += fmt::format("\nThe rule's course on {}'s top {} (seed {}): it sees Fq and the watched held-out examples; Fh "
                      "and R are measured beside it, for the trade-off it makes.\n\n| epoch | Fq | held-out | Fh | R | |\n"
                      "|---|---|---|---|---|---|\n",
                      label(trace.method), trace.k, trace.seed);
    for (const auto& p : trace.points)
      md += fmt::format("| {} | {:.3f} | {:.3f} | {:.3f} | {:.3f} | {} |\n", p.epoch, p.fq, p.heldout, p.fh, p.r,
                        p.epoch == trace.kept_epoch ? "kept" : p.within ? "" : "held-out below the tolerance");
  }
  if (!res.traces.empty()) md += "\n![the rule's course](finetune_rule.svg)\n";
  return md + "\n";
}

}  // namespace

std::string mean_std(const std::vector<double>& v, int digits) {
  return v.size() > 1 ? fmt::format("{:.{}f} ± {:.{}f}", mean(v), digits, repair::stdev(v), digits)
                      : fmt::format("{:.{}f}", mean(v), digits);
}

std::string removal_description(const repair::ExperimentSettings& s) {
  const std::string removal = repair::removal_treatment(s);
  if (removal != "finetune") return removal;
  return s.treat.finetune_stop == "fixed" ? fmt::format("finetune ({} epochs)", s.treat.epochs) : "finetune (held-out rule)";
}

Chart stopping_chart(const ExperimentResults& res) {
  Chart chart{"", "fine-tuning epoch", "accuracy", 0, kAuto, 0, 1, {}};
  if (res.traces.empty()) return chart;
  const auto& trace = res.traces.front();
  chart.title = fmt::format("Fine-tuning after removing {}'s top {} (seed {}); kept epoch {}", trace.method, trace.k,
                            trace.seed, trace.kept_epoch);
  Series fq{"Fq (seen)", {}, {}, "", false}, heldout{"held-out (seen)", {}, {}, "", false};
  Series fh{"Fh (not seen)", {}, {}, "", true}, r{"R (not seen)", {}, {}, "", true};
  for (const auto& p : trace.points) {
    for (Series* s : {&fq, &heldout, &fh, &r}) s->x.push_back(p.epoch);
    fq.y.push_back(p.fq), heldout.y.push_back(p.heldout), fh.y.push_back(p.fh), r.y.push_back(p.r);
  }
  Series kept{"kept epoch", {static_cast<double>(trace.kept_epoch), static_cast<double>(trace.kept_epoch)}, {0, 1}, "#888888", true};
  chart.series = {fq, heldout, fh, r, kept};
  return chart;
}

nlohmann::json results_json(const ExperimentResults& res, const RunInfo& run) {
  const auto& s = res.settings;
  nlohmann::json j;
  j["settings"] = {{"dataset", s.spec.dataset}, {"data", run.data_dir}, {"model", s.model}, {"augment", s.augment},
                   {"subset", s.spec.subset}, {"noise", s.spec.noise}, {"noise_fraction", s.spec.noise_fraction},
                   {"noise_amount", data::noise_amount(s.spec)}, {"victim_epochs", s.spec.victim_epochs},
                   {"noise_design", data::noise_design(s.spec)}, {"noisy_queries", data::query_fraction(s.spec)},
                   {"removal_treatment", repair::removal_treatment(s)}, {"retrain_init", s.treat.retrain_init},
                   {"epochs", s.epochs}, {"batch", s.batch}, {"lr", s.lr}, {"methods", s.methods},
                   {"fisher", repair::fisher_kind_name(s.fisher.kind)}, {"mc_samples", s.fisher.mc_samples}, {"ks", s.ks},
                   {"treatments", s.treatments}, {"seeds", s.seeds}, {"first_seed", s.first_seed},
                   {"finetune", {{"stop", s.treat.finetune_stop}, {"epochs", s.treat.epochs}, {"lr", s.treat.lr},
                                 {"max_epochs", s.treat.finetune_max_epochs}, {"patience", s.treat.finetune_patience},
                                 {"heldout", s.treat.finetune_heldout}, {"tolerance", s.treat.finetune_tolerance}}}};
  j.update(provenance_json(run));
  j["seconds_total"] = res.seconds_total;
  j["per_seed"] = nlohmann::json::array();
  for (const auto& p : res.seeds)
    j["per_seed"].push_back({{"seed", p.seed}, {"train_seconds", p.train_seconds}, {"test_accuracy", p.test_accuracy},
                             {"n_fq", p.n_fq}, {"n_fh", p.n_fh}, {"n_corrupted", p.n_corrupted}});
  if (const auto gate = repair::oracle_gate(res); gate.measured)
    j["oracle_gate"] = {{"k", gate.k},          {"seeds", gate.seeds},
                        {"oracle_fh", gate.oracle_fh}, {"oracle_fh_std", gate.oracle_fh_std},
                        {"random_fh", gate.random_fh}, {"random_fh_std", gate.random_fh_std},
                        {"oracle_r", gate.oracle_r},   {"difference", gate.difference}, {"k_mean", gate.k_mean},
                        {"difference_std", gate.difference_std}, {"margin", gate.margin},
                        {"causal", gate.causal}};
  j["identification"] = nlohmann::json::array();
  for (const auto& ms : res.scores) {
    nlohmann::json e = {{"seed", ms.seed}, {"method", ms.method}, {"seconds", ms.seconds}, {"n_positive", ms.n_positive}};
    if (ms.measured) {
      e["recall_at_k"] = ms.detection.recall_at_k;
      e["roc_auc"] = ms.detection.roc_auc;
      e["precision_positive"] = ms.detection.precision_positive;
      e["recall_curve"] = nlohmann::json::array();
      for (const auto& p : ms.detection.curve) e["recall_curve"].push_back({p.fraction, p.recall});
    }
    j["identification"].push_back(e);
  }
  j["repair"] = nlohmann::json::array();
  for (const auto& r : res.rows) {
    j["repair"].push_back({{"seed", r.seed}, {"method", r.method}, {"treatment", r.treatment}, {"k", r.k},
                           {"cause_set", r.positive ? "r>0" : "top_k"},
                           {"accuracy_fq", r.fq}, {"accuracy_fh", r.fh}, {"accuracy_r", r.r}, {"seconds", r.seconds}});
    if (!r.stopping.empty()) j["repair"].back()["stopping"] = r.stopping;
  }
  for (const auto& t : res.traces) {
    nlohmann::json points = nlohmann::json::array();
    for (const auto& p : t.points)
      points.push_back({{"epoch", p.epoch}, {"accuracy_fq", p.fq}, {"accuracy_heldout", p.heldout}, {"accuracy_fh", p.fh},
                        {"accuracy_r", p.r}, {"within_tolerance", p.within}});
    j["stopping_traces"].push_back(
        {{"seed", t.seed}, {"method", t.method}, {"k", t.k}, {"kept_epoch", t.kept_epoch}, {"points", points}});
  }
  return j;
}

std::string results_csv(const ExperimentResults& res) {
  // The held-out rule's epochs close each fine-tuned row (empty for the other treatments).
  std::string csv = "seed,method,treatment,k,accuracy_fq,accuracy_fh,accuracy_r,seconds,recall_at_k,roc_auc,identify_seconds,"
                    "cause_set,finetune_epochs_run,finetune_kept_epoch\n";
  const auto stopping = [](const RepairRow& r, const char* key) {
    const auto it = r.stopping.find(key);
    return it == r.stopping.end() ? std::string() : fmt::format("{}", it->second);
  };
  for (const auto& r : res.rows) {
    const auto* ms = score_of(res, r.seed, r.method);
    const bool measured = ms && ms->measured;
    csv += fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f},{:.3f},{},{},{},{},{},{}\n", r.seed, r.method, r.treatment, r.k, r.fq,
                       r.fh, r.r, r.seconds, measured ? fmt::format("{:.6f}", ms->detection.recall_at_k) : "",
                       measured ? fmt::format("{:.6f}", ms->detection.roc_auc) : "",
                       ms ? fmt::format("{:.3f}", ms->seconds) : "", r.positive ? "r>0" : "top_k",
                       stopping(r, "epochs_run"), stopping(r, "best_epoch"));
  }
  return csv;
}

Chart recall_chart(const ExperimentResults& res) {
  Chart curve{"Detection: recall of the corrupted examples", "fraction of D inspected (in score order)", "recall", 0, 1, 0, 1, {}};
  for (const auto& m : res.settings.methods) {
    Series series{m, {}, {}, "", m == "random"};
    std::vector<const repair::MethodScore*> ms;  // the mean curve over seeds
    for (const auto& x : res.scores)
      if (x.method == m) ms.push_back(&x);
    for (size_t p = 0; p < ms.front()->detection.curve.size(); ++p) {
      double r = 0;
      for (const auto* x : ms) r += x->detection.curve[p].recall;
      series.x.push_back(ms.front()->detection.curve[p].fraction);
      series.y.push_back(r / static_cast<double>(ms.size()));
    }
    curve.series.push_back(series);
  }
  return curve;
}

Chart accuracy_chart(const ExperimentResults& res, const std::string& which) {
  Chart chart{fmt::format("{} accuracy after removing the top k and {}", which,
                          repair::removal_treatment(res.settings) == "finetune"
                              ? "fine-tuning"
                              : "treating by " + repair::removal_treatment(res.settings)),
              "k (examples removed)",
              fmt::format("{} accuracy", which), kAuto, kAuto, 0, 1, {}};
  for (const auto& m : repair::compared_methods(res)) {
    Series series{m, {}, {}, "", m == "random" || m == "oracle"};
    for (const auto& g : repair::removal_groups(res, m)) {
      const auto a = of_rows(g.rows);
      series.x.push_back(g.k_mean);
      series.y.push_back(mean(which == "Fh" ? a.fh : a.r));
    }
    chart.series.push_back(series);
  }
  return chart;
}

std::string report_markdown(const ExperimentResults& res, const RunInfo& run) {
  const auto& s = res.settings;
  std::vector<double> base_test;
  for (const auto& p : res.seeds) base_test.push_back(p.test_accuracy);
  std::string md = "# lethe experiment\n\n";
  md += fmt::format("{} ({} training examples, noise: {}), {} trained {} epochs (Adam {}, batch {}); {} seed(s) "
                    "from {}; device {}, {} threads; lethe {} ({}); {:.0f} s in all.\n\n",
                    s.spec.dataset, s.spec.subset, data::describe_noise(s.spec), s.model, s.epochs, s.lr, s.batch, s.seeds,
                    s.first_seed, run.device + std::string(run.tf32 ? " (TF32)" : ""), run.threads, run.version,
                    run.git_commit, res.seconds_total);
  md += fmt::format("Base model test accuracy: {}. Values are mean ± std over seeds.\n\n", pm(base_test));
  if (const auto gate = repair::oracle_gate(res); gate.measured) md += gate.verdict + "\n\n";
  if (res.noisy) md += detection_section(res);
  md += repair_sections(res);
  md += stopping_section(res);
  md += paper_section(res, fmt::format("{}, {} threads", run.device, run.threads));
  md += fmt::format("Top causes by {} (first seed; red: known corrupted): ![causes](causes_{}.png)\n\nAll numbers: "
                    "`results.json`, `results.csv`.\n", s.methods.front(), s.methods.front());
  return md;
}

std::string write_experiment(const std::string& dir, const ExperimentResults& res, const RunInfo& run) {
  const auto path = [&](const std::string& name) { return (std::filesystem::path(dir) / name).string(); };
  write_file_atomic(path("results.json"), results_json(res, run).dump(2) + "\n");
  write_file_atomic(path("results.csv"), results_csv(res));
  if (res.noisy) write_file_atomic(path("recall_curve.svg"), render_svg(recall_chart(res)));
  write_file_atomic(path("fh_vs_k.svg"), render_svg(accuracy_chart(res, "Fh")));
  write_file_atomic(path("r_vs_k.svg"), render_svg(accuracy_chart(res, "R")));
  if (!res.traces.empty()) write_file_atomic(path("finetune_rule.svg"), render_svg(stopping_chart(res)));
  const std::string md = report_markdown(res, run);
  write_file_atomic(path("report.md"), md);
  return md;
}

}  // namespace lethe::report
