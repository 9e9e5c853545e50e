#pragma once
// The options of Step II, shared by `lethe treat` and `lethe repair`.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "repair/registry.h"
#include "repair/treat.h"
#include "tools/lethe/registry_options.h"

namespace lethe::cli {

// The held-out rule's evaluations (repair::TreatResult::curve) as JSON rows.
inline nlohmann::json stop_curve_json(const std::vector<repair::StopEvaluation>& curve) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& e : curve)
    rows.push_back({{"epoch", e.epoch}, {"accuracy_fq", e.fq}, {"accuracy_heldout", e.heldout}, {"within_tolerance", e.within}});
  return rows;
}

inline void add_treatment_options(CLI::App* cmd, repair::TreatOptions& o) {
  cmd->add_option("--treatment", o.treatment, repair::treatment_names(" | "))->capture_default_str();
  add_registry_options(cmd, o, repair::treatment_options());
}

}  // namespace lethe::cli
