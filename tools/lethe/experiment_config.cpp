#include "tools/lethe/experiment_config.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "repair/registry.h"
#include "util/error.h"

namespace lethe::cli {
namespace {

using Json = nlohmann::json;

// Settings nest two deep (object, list); the limit only stops pathological documents.
constexpr int kMaxDepth = 16;

[[noreturn]] void wrong(const std::string& name, const std::string& key, const std::string& what) {
  throw UsageError(fmt::format("config '{}': setting '{}' {}", name, key, what));
}

std::string excerpt(const Json& value) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  return text.size() > 40 ? text.substr(0, 40) + "..." : text;
}

template <typename Int>
Int read_integer(const Json& value, const std::string& name, const std::string& key) {
  // Integers only: nlohmann converts a float to an int with a plain cast, undefined behaviour
  // when it is out of range, and a fraction would be dropped silently.
  if (!value.is_number_integer()) wrong(name, key, fmt::format("must be an integer, not {}", excerpt(value)));
  if (value.is_number_unsigned()) {
    const auto v = value.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<Int>::max()))
      wrong(name, key, fmt::format("is {}, out of range", v));
    return static_cast<Int>(v);
  }
  const auto v = value.get<int64_t>();
  if (v < std::numeric_limits<Int>::min() || v > std::numeric_limits<Int>::max())
    wrong(name, key, fmt::format("is {}, out of range", v));
  return static_cast<Int>(v);
}

std::string read_string(const Json& value, const std::string& name, const std::string& key) {
  if (!value.is_string()) wrong(name, key, fmt::format("must be a string, not {}", excerpt(value)));
  return value.get<std::string>();
}

double read_number(const Json& value, const std::string& name, const std::string& key) {
  if (!value.is_number()) wrong(name, key, fmt::format("must be a number, not {}", excerpt(value)));
  const double v = value.get<double>();
  if (!std::isfinite(v)) wrong(name, key, "must be finite");
  return v;
}

template <typename Read>
auto read_list(const Json& value, const std::string& name, const std::string& key, Read read) {
  using T = decltype(read(value, name, key));
  if (!value.is_array()) wrong(name, key, fmt::format("must be a list, not {}", excerpt(value)));
  std::vector<T> out;
  for (const Json& item : value) out.push_back(read(item, name, key));
  return out;
}

// A number >= 0: the settings whose negative values mean "the default" in a DataSpec, so that a
// negative one given is refused rather than read as the default.
double read_non_negative(const Json& value, const std::string& name, const std::string& key) {
  const double v = read_number(value, name, key);
  if (!(v >= 0)) wrong(name, key, fmt::format("must be >= 0, not {} (leave it out for the default)", v));
  return v;
}

// A list of registered names (methods or treatments); an unknown one is named with the file.
template <typename Find>
std::vector<std::string> read_names(const Json& value, const std::string& name, const std::string& key, const char* what,
                                    Find find, const std::string& known) {
  auto names = read_list(value, name, key, read_string);
  for (const auto& n : names) {
    try {
      find(n, key);
    } catch (const UsageError&) {
      wrong(name, key, fmt::format("names an unknown {} '{}' (known: {})", what, n, known));
    }
  }
  return names;
}

}  // namespace

ExperimentConfig parse_experiment_config(std::string_view text, const std::string& name) {
  Json j;
  try {
    j = Json::parse(text.begin(), text.end(), [](int depth, Json::parse_event_t, Json&) {
      if (depth > kMaxDepth) throw Error(fmt::format("nested deeper than {} levels", kMaxDepth));
      return true;
    });
  } catch (const nlohmann::json::exception& e) {
    fail("config '{}': not valid JSON ({})", name, e.what());
  } catch (const Error& e) {
    fail("config '{}': not a settings file: {}", name, e.what());
  }
  if (!j.is_object()) fail("config '{}': expected a JSON object", name);
  ExperimentConfig c;
  for (const auto& [key, value] : j.items()) {
    if (key == "dataset") c.dataset = read_string(value, name, key);
    else if (key == "model") c.model = read_string(value, name, key);
    else if (key == "data") c.data = read_string(value, name, key);
    else if (key == "noise") c.noise = read_string(value, name, key);
    else if (key == "subset") c.subset = read_integer<int64_t>(value, name, key);
    else if (key == "batch") c.batch = read_integer<int64_t>(value, name, key);
    else if (key == "epochs") c.epochs = read_integer<int>(value, name, key);
    else if (key == "seeds") c.seeds = read_integer<int>(value, name, key);
    else if (key == "lr") c.lr = read_number(value, name, key);
    else if (key == "noise_fraction") c.noise_fraction = read_number(value, name, key);
    else if (key == "noise_amount") c.noise_amount = read_non_negative(value, name, key);
    else if (key == "victim_epochs") c.victim_epochs = read_integer<int>(value, name, key);
    else if (key == "noise_design") c.noise_design = read_string(value, name, key);
    else if (key == "noisy_queries") c.noisy_queries = read_non_negative(value, name, key);
    else if (key == "removal_treatment") c.removal = read_string(value, name, key);
    else if (key == "retrain_init") c.retrain_init = read_string(value, name, key);
    else if (key == "fisher") c.fisher = read_string(value, name, key);
    else if (key == "mc_samples") c.mc_samples = read_integer<int>(value, name, key);
    else if (key == "finetune_stop") c.finetune_stop = read_string(value, name, key);
    else if (key == "finetune_max_epochs") c.finetune_max_epochs = read_integer<int>(value, name, key);
    else if (key == "finetune_patience") c.finetune_patience = read_integer<int>(value, name, key);
    else if (key == "finetune_heldout") c.finetune_heldout = read_number(value, name, key);
    else if (key == "finetune_tolerance") c.finetune_tolerance = read_number(value, name, key);
    else if (key == "methods")
      c.methods = read_names(value, name, key, "method",
                             [](const std::string& n, const std::string&) { repair::parse_method_variant(n); },
                             repair::method_names() + "; linear:<solver>");
    else if (key == "treatments") c.treatments = read_names(value, name, key, "treatment", repair::find_treatment, repair::treatment_names());
    else if (key == "ks") c.ks = read_list(value, name, key, read_integer<int64_t>);
    else throw UsageError(fmt::format("config '{}': unknown setting '{}'", name, key));
  }
  return c;
}

}  // namespace lethe::cli
