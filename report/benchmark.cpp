#include "report/benchmark.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "util/atomic_file.h"

namespace lethe::report {

using repair::BenchmarkResults;

nlohmann::json benchmark_json(const BenchmarkResults& res, const RunInfo& run) {
  const auto& s = res.settings;
  nlohmann::json j;
  j["settings"] = {{"dataset", s.spec.dataset}, {"data", run.data_dir}, {"model", s.model},
                   {"subset", s.spec.subset}, {"noise", s.spec.noise}, {"seed", s.spec.seed},
                   {"epochs", s.epochs}, {"batch", s.batch}, {"lr", s.lr},
                   {"optimizer", optimizer_name(s.optimizer.kind)}, {"momentum", s.optimizer.momentum},
                   {"methods", s.methods}, {"subsets", s.subsets}, {"alpha", s.alpha}, {"queries_from", s.queries_from},
                   {"queries", s.queries}, {"bootstrap", s.bootstrap},
                   {"fisher", repair::fisher_kind_name(s.identify.fisher.kind)},
                   {"mc_samples", s.identify.fisher.mc_samples},
                   {"loo", s.loo}, {"brittleness", s.brittleness}, {"brittleness_ks", s.brittleness_ks},
                   {"proj_dim", s.identify.trak.proj_dim}, {"damping", s.identify.solve.damping},
                   {"damping_given", s.identify.solve.damping_set},  // not given: linear:gd used repair::kGdDamping
                   {"iterations", s.identify.solve.iterations}};
  j.update(provenance_json(run));
  j["seconds_total"] = res.seconds_total;
  j["n_train"] = res.n_train;
  j["n_corrupted"] = res.n_corrupted;
  j["test_accuracy"] = res.test_accuracy;
  j["n_failures"] = res.n_failures;
  j["query_indices"] = res.query_indices;
  j["subset_models"] = {{"trained", res.subsets_trained}, {"loaded", res.subsets_loaded},
                        {"seconds", res.subset_seconds}, {"mean_test_accuracy", res.mean_subset_accuracy}};
  j["measured_loss"] = res.measured;
  if (!res.loo_indices.empty()) {
    j["loo_indices"] = res.loo_indices;
    j["loo_delta"] = res.loo_delta;
    j["loo_models"] = {{"trained", res.loo_trained}, {"loaded", res.loo_loaded}};
  }
  j["methods"] = nlohmann::json::array();
  for (const auto& m : res.methods) {
    nlohmann::json e = {{"method", m.label},          {"seconds", m.seconds},   {"lds", m.lds.mean},
                        {"lds_ci95", {m.lds.lo, m.lds.hi}}, {"lds_per_query", m.lds.per_query},
                        {"scatter_predicted", m.predicted}};
    if (std::isfinite(m.loo)) e["loo_spearman"] = m.loo;
    if (std::isfinite(m.loo_pearson)) e["loo_pearson"] = m.loo_pearson;
    if (!m.brittle_k.empty()) {
      e["brittleness_k"] = m.brittle_k;
      e["brittleness_models"] = {{"trained", m.brittleness_trained}, {"loaded", m.brittleness_loaded}};
    }
    if (m.measured) {
      e["mislabel_auc"] = m.detection.roc_auc;
      e["mislabel_recall_at_k"] = m.detection.recall_at_k;
    }
    j["methods"].push_back(e);
  }
  return j;
}

std::string benchmark_csv(const BenchmarkResults& res) {
  std::string out = "method,lds,lds_lo,lds_hi,mislabel_auc,mislabel_recall_at_k,seconds\n";
  for (const auto& m : res.methods)
    out += fmt::format("{},{:.6f},{:.6f},{:.6f},{},{},{:.3f}\n", m.label, m.lds.mean, m.lds.lo, m.lds.hi,
                       m.measured ? fmt::format("{:.6f}", m.detection.roc_auc) : "",
                       m.measured ? fmt::format("{:.6f}", m.detection.recall_at_k) : "", m.seconds);
  return out;
}

std::string benchmark_markdown(const BenchmarkResults& res, const RunInfo& run) {
  const auto& s = res.settings;
  std::string md = "# lethe benchmark\n\n";
  const bool from_failures = s.queries_from == "failures";
  md += fmt::format(
      "{} on {} ({} training examples, noise: {}, seed {}), trained {} epochs (batch {}, {} at lr {}). "
      "Test accuracy {:.4f}; {} test failures. Queries: {} {}, a seeded sample{}. Fisher: {}.\n\n",
      s.model, s.spec.dataset, res.n_train, s.spec.noise, s.spec.seed, s.epochs, s.batch, describe(s.optimizer), s.lr,
      res.test_accuracy, res.n_failures, res.query_indices.size(),
      from_failures ? "of the base model's test failures" : "test examples",
      from_failures ? " (the repair setting; not the population TRAK and dattri average over)"
                    : " of the test set (the population TRAK and dattri average over)",
      repair::fisher_kind_name(s.identify.fisher.kind));
  md += fmt::format(
      "LDS: {} models trained from scratch on random subsets of {:.0f}% of D (mean test accuracy {:.4f}; {} trained "
      "this run in {:.0f} s, {} from the cache). For each query, the Spearman correlation over the models between its "
      "measured loss and the sum of a method's scores over the model's subset; the mean over queries, with a 95% "
      "percentile-bootstrap interval ({} resamples of the models and the queries together).\n\n",
      s.subsets, 100 * s.alpha, res.mean_subset_accuracy, res.subsets_trained, res.subset_seconds, res.subsets_loaded,
      s.bootstrap);
  const bool detect = res.n_corrupted > 0, loo = !res.loo_indices.empty(), brittle = s.brittleness > 0;
  md += "| method | LDS | 95% interval |";
  std::string rule = "|---|---|---|";
  if (detect) md += " mislabel AUC | recall@|C| |", rule += "---|---|";
  if (loo) md += " LOO Spearman | LOO Pearson |", rule += "---|---|";
  if (brittle) md += " flipped by removal | median k |", rule += "---|---|";
  md += " seconds |\n" + rule + "---|\n";
  for (const auto& m : res.methods) {
    md += fmt::format("| {} | {:.3f} | [{:.3f}, {:.3f}] |", m.label, m.lds.mean, m.lds.lo, m.lds.hi);
    if (detect) md += fmt::format(" {:.3f} | {:.3f} |", m.detection.roc_auc, m.detection.recall_at_k);
    if (loo) md += fmt::format(" {:.3f} | {:.3f} |", m.loo, m.loo_pearson);
    if (brittle) {
      std::vector<int64_t> ks;
      for (int64_t k : m.brittle_k)
        if (k > 0) ks.push_back(k);
      std::sort(ks.begin(), ks.end());
      md += fmt::format(" {}/{} | {} |", ks.size(), m.brittle_k.size(), ks.empty() ? std::string("—") : std::to_string(ks[ks.size() / 2]));
    }
    md += fmt::format(" {:.1f} |\n", m.seconds);
  }
  if (loo)
    md += fmt::format("\nLOO: {} examples of D, each left out of one model retrained with the base model's seed; per "
                      "query, the Spearman and the Pearson correlation over them between the change in its loss and −r_q(z), "
                      "their means over the queries.\n",
                      res.loo_indices.size());
  if (brittle)
    md += fmt::format("\nBrittleness: for the first {} queries, the smallest k of {{{}}} whose top-k removal and "
                      "retraining makes the model classify the query correctly.\n",
                      s.brittleness, fmt::join(s.brittleness_ks, ", "));
  if (detect)
    md += fmt::format("\nMislabel detection: each method's scores summed over the queries, against the {} corrupted "
                      "examples of D (|C|).\n",
                      res.n_corrupted);
  md += fmt::format("\nSeconds: scoring D against all {} queries. Figures: lds.svg, lds_scatter.svg. Run on {} ({} "
                    "threads), lethe {} ({}), {:.0f} s in all.\n",
                    res.query_indices.size(), run.device + std::string(run.tf32 ? " (TF32)" : ""), run.threads, run.version,
                    run.git_commit, res.seconds_total);
  return md;
}

BarChart lds_chart(const BenchmarkResults& res) {
  BarChart c;
  c.title = "Linear datamodeling score (95% bootstrap interval)";
  c.y_label = "LDS";
  BarSeries s;
  for (const auto& m : res.methods) {
    c.categories.push_back(m.label);
    s.values.push_back(m.lds.mean);
    s.errors.push_back(std::isfinite(m.lds.lo) ? std::max(0.0, m.lds.mean - m.lds.lo) : NAN);
    s.errors_high.push_back(std::isfinite(m.lds.hi) ? std::max(0.0, m.lds.hi - m.lds.mean) : NAN);
  }
  c.series.push_back(std::move(s));
  return c;
}

Chart lds_scatter(const BenchmarkResults& res) {
  Chart c;
  c.title = fmt::format("Query {} of the test set: predicted against measured loss", res.query_indices.empty() ? -1 : res.query_indices[0]);
  c.x_label = "predicted (Σ of the subset's scores, standardised)";
  c.y_label = "measured loss";
  for (const auto& m : res.methods) {
    Series s;
    s.name = m.label;
    s.points_only = true;
    double mean = 0, var = 0;
    for (double p : m.predicted) mean += p / static_cast<double>(m.predicted.size());
    for (double p : m.predicted) var += (p - mean) * (p - mean) / static_cast<double>(m.predicted.size());
    const double sd = var > 0 ? std::sqrt(var) : 1.0;
    for (size_t i = 0; i < m.predicted.size() && i < res.measured.size(); ++i) {
      s.x.push_back((m.predicted[i] - mean) / sd);
      s.y.push_back(res.measured[i].empty() ? NAN : res.measured[i][0]);
    }
    c.series.push_back(std::move(s));
  }
  return c;
}

std::string write_benchmark(const std::string& dir, const BenchmarkResults& res, const RunInfo& run) {
  const auto path = [&](const std::string& name) { return (std::filesystem::path(dir) / name).string(); };
  write_file_atomic(path("results.json"), benchmark_json(res, run).dump(2) + "\n");
  write_file_atomic(path("results.csv"), benchmark_csv(res));
  if (!res.methods.empty()) {
    write_file_atomic(path("lds.svg"), render_bar_svg(lds_chart(res), 760, 420));
    write_file_atomic(path("lds_scatter.svg"), render_svg(lds_scatter(res), 760, 460));
  }
  const std::string md = benchmark_markdown(res, run);
  write_file_atomic(path("report.md"), md);
  return md;
}

}  // namespace lethe::report
