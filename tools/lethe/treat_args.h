#pragma once
// The options of Step II, shared by `lethe treat` and `lethe repair`.
#include <CLI/CLI.hpp>

#include "repair/treat.h"

namespace lethe::cli {

inline void add_treatment_options(CLI::App* cmd, repair::TreatOptions& o) {
  cmd->add_option("--treatment", o.treatment, "finetune | retrain | newton | ewc-delete")->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "finetune: epochs on D \\ C")->capture_default_str();
  cmd->add_option("--retrain-epochs", o.retrain_epochs, "retrain: epochs from scratch on D \\ C")->capture_default_str();
  cmd->add_option("--lr", o.lr, "Adam step size (finetune, ewc-delete)")->capture_default_str();
  cmd->add_option("--retrain-lr", o.retrain_lr, "retrain: Adam step size")->capture_default_str();
  cmd->add_option("--treat-batch", o.batch, "Mini-batch size of the treatment")->capture_default_str();
  cmd->add_option("--gamma", o.gamma, "newton: step size γ (paper: 0.01-0.05)")->capture_default_str();
  cmd->add_option("--newton-solver", o.solve.solver, "newton: diag | kfac | cg | lissa | gd")->capture_default_str();
  cmd->add_option("--newton-damping", o.solve.damping, "newton: damping δ")->capture_default_str();
  cmd->add_option("--strength", o.strength, "ewc-delete: weight s of the Fisher anchor")->capture_default_str();
  cmd->add_option("--delete-steps", o.max_steps, "ewc-delete: most steps")->capture_default_str();
  cmd->add_option("--delete-patience", o.patience, "ewc-delete: steps without a better Fq accuracy before stopping")
      ->capture_default_str();
}

}  // namespace lethe::cli
