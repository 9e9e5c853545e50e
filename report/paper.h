#pragma once
// The paper's figures (Tanno et al. 2022, as docs/method.md records them under "The paper's
// figures"), written down in code here and nowhere else, and the report's table that puts each
// figure a run measured beside lethe's mean ± std over that run's seeds.
#include <string>
#include <vector>

#include "evaluation/protocol.h"

namespace lethe::report {

enum class PaperMeasure {
  kRecall,   // share of the corrupted examples found (lethe: recall@K, K = the number corrupted)
  kFh,       // Fh accuracy after removing the top k and the removal treatment
  kR,        // R accuracy after the same
  kSeconds,  // identification's run time (the paper: one Tesla K80)
};

struct PaperFigure {
  std::string dataset;  // "mnist" | "cifar10"
  std::string noise;    // "label" | "input" | "adversarial"
  std::string method;   // the paper's method as lethe's --methods names it ("linear:lissa" is its linear-SA)
  PaperMeasure measure;
  double value = 0;
  double high = 0;       // above value: the paper gives the range [value, high]
  bool about = false;    // the paper's figure is approximate ("about 0.85")
  int64_t k = 1000;      // kFh, kR: examples removed
};

// Every figure, in the order the report lists them.
const std::vector<PaperFigure>& paper_figures();

// The paper's method behind a --methods name ("EWC-influence" for "ewc").
std::string paper_method_name(const std::string& method);

// "## Against the paper": one row per figure whose dataset and noise are the run's and whose
// method (and, for kFh/kR, removal size) the run measured; empty when there is none. `device`
// names where lethe's seconds were measured.
std::string paper_section(const repair::ExperimentResults& results, const std::string& device);

}  // namespace lethe::report
