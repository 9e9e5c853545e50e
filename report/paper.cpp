#include "report/paper.h"

#include <fmt/format.h>

#include "report/experiment.h"

namespace lethe::report {
namespace {

using repair::ExperimentResults;
using M = PaperMeasure;

// lethe's values of a figure's quantity, one per seed that measured it.
std::vector<double> lethe_values(const ExperimentResults& res, const PaperFigure& f) {
  std::vector<double> v;
  if (f.measure == M::kRecall || f.measure == M::kSeconds) {
    for (const auto& s : res.scores)
      if (s.method == f.method && (f.measure == M::kSeconds || s.measured))
        v.push_back(f.measure == M::kSeconds ? s.seconds : s.detection.recall_at_k);
    return v;
  }
  const std::string removal = repair::removal_treatment(res.settings);
  for (const auto& r : res.rows)
    if (r.method == f.method && r.treatment == removal && r.k == f.k && !r.positive) v.push_back(f.measure == M::kFh ? r.fh : r.r);
  return v;
}

std::string what(const PaperFigure& f) {
  switch (f.measure) {
    case M::kRecall:
      return f.noise == "label" ? "recall of the flipped labels (lethe: recall@K, K = the number flipped)"
                                : "recall of the corrupted examples (lethe: recall@K)";
    case M::kFh: return fmt::format("Fh after removing the top {}", f.k);
    case M::kR: return fmt::format("R after removing the top {}", f.k);
    case M::kSeconds: return "identification, seconds";
  }
  return "";
}

std::string paper_text(const PaperFigure& f) {
  std::string text = f.high > f.value ? fmt::format("{}–{}", f.value, f.high) : fmt::format("{}", f.value);
  if (f.about) text = "about " + text;
  if (f.measure == M::kSeconds) text += " (one Tesla K80)";
  return text;
}

std::string lethe_text(const std::vector<double>& v, const PaperFigure& f, const std::string& device) {
  const int digits = f.measure == M::kSeconds ? 1 : 3;
  std::string text = mean_std(v, digits);
  if (f.measure == M::kSeconds) text += fmt::format(" ({})", device);
  return text;
}

std::string dataset_name(const std::string& dataset) { return dataset == "cifar10" ? "CIFAR-10" : "MNIST"; }

}  // namespace

const std::vector<PaperFigure>& paper_figures() {
  // docs/method.md, "The paper's figures". Label noise: detection, the Fh EWC-influence reaches,
  // and the run times; random input noise and adversarial poisoning: Fh after removing the top
  // 1,000 and fine-tuning, with R "0.96–0.99" for every method.
  static const std::vector<PaperFigure> figures = [] {
    std::vector<PaperFigure> f = {
        {"mnist", "label", "ewc", M::kRecall, 0.85, 0, true},
        {"mnist", "label", "linear:lissa", M::kRecall, 0.75, 0, true},
        {"mnist", "label", "linear:gd", M::kRecall, 0.49, 0, true},
        {"mnist", "label", "sgd-influence", M::kRecall, 0.49, 0, true},
        {"mnist", "label", "ewc", M::kFh, 0.83, 0, true},
        {"mnist", "label", "ewc", M::kSeconds, 9.8},
        {"mnist", "label", "linear:lissa", M::kSeconds, 16.4},
        {"mnist", "label", "linear:gd", M::kSeconds, 11.2},
        {"mnist", "label", "sgd-influence", M::kSeconds, 185},
        {"cifar10", "label", "ewc", M::kSeconds, 496},
        {"cifar10", "label", "linear:lissa", M::kSeconds, 1322},
        {"cifar10", "label", "linear:gd", M::kSeconds, 996},
        {"cifar10", "label", "sgd-influence", M::kSeconds, 8301},
    };
    const std::vector<std::string> methods = {"random", "linear:lissa", "linear:gd", "sgd-influence", "ewc"};
    const std::vector<std::pair<std::string, std::vector<double>>> fh = {
        {"input", {0.195, 0.622, 0.605, 0.600, 0.692}}, {"adversarial", {0.038, 0.654, 0.615, 0.577, 0.731}}};
    for (const auto& [noise, values] : fh) {
      for (size_t m = 0; m < methods.size(); ++m) f.push_back({"mnist", noise, methods[m], M::kFh, values[m]});
      for (const auto& method : methods) f.push_back({"mnist", noise, method, M::kR, 0.96, 0.99});
    }
    return f;
  }();
  return figures;
}

std::string paper_method_name(const std::string& method) {
  if (method == "ewc") return "EWC-influence";
  if (method == "linear:lissa") return "linear influence, SA";
  if (method == "linear:gd") return "linear influence, GD";
  if (method == "sgd-influence") return "SGD-influence";
  return method;
}

std::string paper_section(const ExperimentResults& res, const std::string& device) {
  const auto& s = res.settings;
  std::string rows;
  for (const auto& f : paper_figures()) {
    if (f.dataset != s.spec.dataset || f.noise != s.spec.noise) continue;
    const auto v = lethe_values(res, f);
    if (v.empty()) continue;
    rows += fmt::format("| {}, {} noise | {} (`{}`) | {} | {} | {} |\n", dataset_name(f.dataset), f.noise,
                        paper_method_name(f.method), f.method, what(f), paper_text(f), lethe_text(v, f, device));
  }
  if (rows.empty()) return "";
  return fmt::format(
      "## Against the paper\n\n"
      "The paper's figures as docs/method.md records them (its MNIST model a 4-conv CNN, its repairs fine-tuned), beside "
      "this run's. lethe's setting: {}, noise {}; removal treatment {}.\n\n"
      "| setting | method | figure | the paper | lethe ({} seed{}) |\n|---|---|---|---|---|\n{}\n",
      dataset_name(s.spec.dataset), data::describe_noise(s.spec), removal_description(s), res.seeds.size(), res.seeds.size() == 1 ? "" : "s",
      rows);
}

}  // namespace lethe::report
