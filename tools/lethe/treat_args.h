#pragma once
// The options of Step II, shared by `lethe treat` and `lethe repair`.
#include <array>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "repair/registry.h"
#include "repair/treat.h"
#include "tools/lethe/registry_options.h"
#include "util/error.h"

namespace lethe::cli {

// The held-out rule's evaluations (repair::TreatResult::curve) as JSON rows.
inline nlohmann::json stop_curve_json(const std::vector<repair::StopEvaluation>& curve) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& e : curve)
    rows.push_back({{"epoch", e.epoch}, {"accuracy_fq", e.fq}, {"accuracy_heldout", e.heldout}, {"within_tolerance", e.within}});
  return rows;
}

// The held-out rule's own settings: meaningless, and refused, beside --finetune-stop fixed.
inline constexpr std::array<const char*, 4> kHeldoutRuleFlags = {"--finetune-max-epochs", "--finetune-patience",
                                                                 "--finetune-heldout", "--finetune-tolerance"};

// A flag given for a rule that is not the one chosen would be ignored without a word: refused.
// `epochs_flag`: the command's --epochs is fine-tuning's (not, as in experiment, the base model's).
inline void check_finetune_flags(const CLI::App& cmd, const repair::TreatOptions& o, bool epochs_flag = true) {
  if (o.treatment != "finetune") return;
  if (epochs_flag && o.finetune_stop != "fixed" && cmd.count("--epochs"))
    throw UsageError(fmt::format("--epochs counts the epochs of --finetune-stop fixed; the {} rule stops by itself, at "
                                 "most after --finetune-max-epochs",
                                 o.finetune_stop));
  if (o.finetune_stop == "fixed")
    for (const char* flag : kHeldoutRuleFlags)
      if (cmd.count(flag)) throw UsageError(fmt::format("{} belongs to --finetune-stop heldout, not fixed", flag));
}

inline void add_treatment_options(CLI::App* cmd, repair::TreatOptions& o) {
  cmd->add_option("--treatment", o.treatment, repair::treatment_names(" | "))->capture_default_str();
  add_registry_options(cmd, o, repair::treatment_options());
}

}  // namespace lethe::cli
