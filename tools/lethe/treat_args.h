#pragma once
// The options of Step II, shared by `lethe treat` and `lethe repair`.
#include <CLI/CLI.hpp>

#include "repair/registry.h"
#include "repair/treat.h"
#include "tools/lethe/registry_options.h"

namespace lethe::cli {

inline void add_treatment_options(CLI::App* cmd, repair::TreatOptions& o) {
  cmd->add_option("--treatment", o.treatment, repair::treatment_names(" | "))->capture_default_str();
  add_registry_options(cmd, o, repair::treatment_options());
}

}  // namespace lethe::cli
