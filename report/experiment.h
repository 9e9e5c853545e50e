#pragma once
// The experiment's results (evaluation/protocol.h) as files: results.json, results.csv, report.md
// and the SVG figures (the recall curve, Fh and R against k).
#include <string>

#include <nlohmann/json.hpp>

#include "evaluation/protocol.h"
#include "report/provenance.h"
#include "report/svg.h"

namespace lethe::report {

// The removal treatment as the report names it: "finetune (held-out rule)", "finetune (2
// epochs)", "retrain", ...
std::string removal_description(const repair::ExperimentSettings& settings);
// "mean ± std" of `v` at `digits` decimals, the mean alone for one value: every table's cell.
std::string mean_std(const std::vector<double>& v, int digits);
// Fq, the held-out slice, Fh and R against the epoch along the first traced fine-tune of the
// held-out rule (results.traces), the kept epoch marked; nothing to draw without one.
Chart stopping_chart(const repair::ExperimentResults& results);

nlohmann::json results_json(const repair::ExperimentResults& results, const RunInfo& run);
std::string results_csv(const repair::ExperimentResults& results);
std::string report_markdown(const repair::ExperimentResults& results, const RunInfo& run);
// Mean recall of the corrupted examples against the fraction of D inspected, one series a method.
Chart recall_chart(const repair::ExperimentResults& results);
// Fh or R accuracy (which = "Fh" | "R") after removing the top k and fine-tuning, against k.
Chart accuracy_chart(const repair::ExperimentResults& results, const std::string& which);

// Writes results.json, results.csv, the figures and report.md into `dir` (each atomically);
// returns the report's text.
std::string write_experiment(const std::string& dir, const repair::ExperimentResults& results, const RunInfo& run);

}  // namespace lethe::report
