#pragma once
// The benchmark's results (evaluation/benchmark.h) as files: results.json, results.csv, report.md,
// lds.svg (LDS per method with its 95% bootstrap interval) and lds_scatter.svg (one query's
// predicted against measured loss over the subset models, for each method's scores).
#include <string>

#include <nlohmann/json.hpp>

#include "evaluation/benchmark.h"
#include "report/experiment.h"
#include "report/svg.h"

namespace lethe::report {

nlohmann::json benchmark_json(const repair::BenchmarkResults& results, const RunInfo& run);
std::string benchmark_csv(const repair::BenchmarkResults& results);
std::string benchmark_markdown(const repair::BenchmarkResults& results, const RunInfo& run);
BarChart lds_chart(const repair::BenchmarkResults& results);
// Predicted (each method's Σ_{S_m} r, standardised so methods share an axis) against the first
// query's measured loss.
Chart lds_scatter(const repair::BenchmarkResults& results);

// Writes the files into `dir` (atomically each); returns report.md's text.
std::string write_benchmark(const std::string& dir, const repair::BenchmarkResults& results, const RunInfo& run);

}  // namespace lethe::report
