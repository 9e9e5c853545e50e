#pragma once
// The flags of the registered methods' and treatments' options (repair/registry.h): each flag
// once, its help prefixed by the methods that read it and its default shown.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "repair/registry.h"

namespace lethe::cli {

// Adds the options in `uses` (only those whose flags `only` lists, when it is not empty).
template <typename O>
void add_registry_options(CLI::App* cmd, O& options, const std::vector<repair::OptionUse<O>>& uses,
                          const std::vector<std::string>& only = {}) {
  for (const auto& use : uses) {
    const auto& opt = *use.option;
    if (!only.empty() && std::find(only.begin(), only.end(), opt.flag) == only.end()) continue;
    std::string owners;
    for (const auto& o : use.owners) owners += (owners.empty() ? "" : ", ") + o;
    std::visit(
        [&](const auto& get) {
          auto& value = get(options);
          auto* added = cmd->add_option(opt.flag, value, owners + ": " + opt.help);
          using T = std::decay_t<decltype(value)>;
          if constexpr (!std::is_same_v<T, std::vector<std::string>> && !std::is_same_v<T, std::vector<double>>)
            added->capture_default_str();
        },
        opt.field);
  }
}

}  // namespace lethe::cli
