#include "repair/registry.h"

#include <algorithm>

#include <fmt/format.h>

#include "repair/identify.h"
#include "influence/solve.h"
#include "repair/treat.h"
#include "util/error.h"

// The build writes one line per file of repair/methods/ and repair/treatments/ into
// registered.inc (CMakeLists.txt, from the folders' file names):
//   LETHE_REGISTER_METHOD(ewc)  LETHE_REGISTER_TREATMENT(newton) ...
// It is read twice: once to declare each file's registration function, once to list them.
#define LETHE_REGISTER_METHOD(stem) LETHE_METHOD(stem);
#define LETHE_REGISTER_TREATMENT(stem) LETHE_TREATMENT(stem);
#include "registered.inc"
#undef LETHE_REGISTER_METHOD
#undef LETHE_REGISTER_TREATMENT

namespace lethe::repair {
namespace {

template <typename Info>
std::vector<const Info*> sorted(std::vector<const Info*> v) {
  std::stable_sort(v.begin(), v.end(), [](const Info* a, const Info* b) { return a->position < b->position; });
  return v;
}

template <typename Info>
std::string names_of(const std::vector<const Info*>& all, const std::string& separator) {
  std::string out;
  for (const Info* i : all) out += (out.empty() ? "" : separator) + i->name;
  return out;
}

template <typename Info>
const Info& find_in(const std::vector<const Info*>& all, const std::string& name, const std::string& flag,
                    const char* what) {
  for (const Info* i : all)
    if (i->name == name) return *i;
  throw UsageError(fmt::format("{}: unknown {} '{}' (known: {})", flag, what, name, names_of(all, ", ")));
}

template <typename O, typename Info>
std::vector<OptionUse<O>> options_of(const std::vector<const Info*>& all) {
  std::vector<OptionUse<O>> out;
  for (const Info* i : all)
    for (const auto& opt : i->options) {
      auto same = std::find_if(out.begin(), out.end(), [&](const OptionUse<O>& u) { return u.option->flag == opt.flag; });
      if (same == out.end()) {
        out.push_back({&opt, {i->name}});
      } else {
        same->owners.push_back(i->name);
        if (!same->option->check) same->option = &opt;  // the declaration that checks the value
      }
    }
  return out;
}

}  // namespace

int64_t float_row_query_bytes(int64_t n_params, int64_t n_train, const IdentifyOptions&) {
  return n_params * 4 + n_train * (8 + 8 + 4);
}

const std::vector<const MethodInfo*>& methods() {
#define LETHE_REGISTER_METHOD(stem) &lethe_registered_method_##stem(),
#define LETHE_REGISTER_TREATMENT(stem)
  static const std::vector<const MethodInfo*> all = sorted<MethodInfo>({
#include "registered.inc"
  });
#undef LETHE_REGISTER_METHOD
#undef LETHE_REGISTER_TREATMENT
  return all;
}

const std::vector<const TreatmentInfo*>& treatments() {
#define LETHE_REGISTER_METHOD(stem)
#define LETHE_REGISTER_TREATMENT(stem) &lethe_registered_treatment_##stem(),
  static const std::vector<const TreatmentInfo*> all = sorted<TreatmentInfo>({
#include "registered.inc"
  });
#undef LETHE_REGISTER_METHOD
#undef LETHE_REGISTER_TREATMENT
  return all;
}

const MethodInfo& find_method(const std::string& name, const std::string& flag) {
  return find_in(methods(), name, flag, "method");
}
const TreatmentInfo& find_treatment(const std::string& name, const std::string& flag) {
  return find_in(treatments(), name, flag, "treatment");
}
MethodVariant parse_method_variant(const std::string& label) {
  MethodVariant v;
  v.label = label;
  const auto colon = label.find(':');
  v.method = label.substr(0, colon);
  find_method(v.method, "--methods");
  if (colon != std::string::npos) {
    v.solver = label.substr(colon + 1);
    if (v.method != "linear")
      throw UsageError(fmt::format("--methods: '{}': only linear takes a solver after ':'", label));
    const auto& solvers = linear_solvers();
    if (std::find(solvers.begin(), solvers.end(), v.solver) == solvers.end())
      throw UsageError(
          fmt::format("--methods: '{}': unknown solver '{}' (known: {})", label, v.solver, linear_solver_names(", ")));
  }
  return v;
}

std::string method_names(const std::string& separator) { return names_of(methods(), separator); }
std::string treatment_names(const std::string& separator) { return names_of(treatments(), separator); }

std::vector<OptionUse<IdentifyOptions>> method_options() { return options_of<IdentifyOptions>(methods()); }
std::vector<OptionUse<TreatOptions>> treatment_options() { return options_of<TreatOptions>(treatments()); }

}  // namespace lethe::repair
