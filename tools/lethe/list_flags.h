#pragma once
// A comma-separated list flag (--methods ewc,loss  --ks 250,500): empty items are skipped, so
// `--treatments ""` is the empty list; an item that is not an integer is a UsageError naming
// the flag.
#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "util/error.h"

namespace lethe::cli {

template <typename T>
std::vector<T> split_list(const std::string& text, const char* flag) {
  std::vector<T> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    if constexpr (std::is_same_v<T, std::string>) {
      out.push_back(item);
    } else {
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(item, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != item.size()) throw UsageError(fmt::format("{}: '{}' is not an integer", flag, item));
      out.push_back(static_cast<T>(v));
    }
  }
  return out;
}

}  // namespace lethe::cli
