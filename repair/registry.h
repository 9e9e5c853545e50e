#pragma once
// The registry of Step I methods and Step II treatments. Each lives in one file of
// repair/methods/ or repair/treatments/ that declares its name, a one-line summary, the options
// it reads (flag, help, where the value lives, and the check of its range), and the function
// that runs it; the build collects the folders' files into the registry (CMake generates the
// table from the file names), so adding a method is adding a file. The CLI's flags and help,
// validation, error messages, the experiment's defaults and its config parser all read it.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"

namespace lethe::repair {

struct IdentifyOptions;
struct IdentifyResult;
struct TreatOptions;
struct TreatResult;

// Where an option's value lives in the options struct O.
template <typename O>
using Field = std::variant<std::function<int&(O&)>, std::function<int64_t&(O&)>, std::function<double&(O&)>,
                           std::function<std::string&(O&)>, std::function<std::vector<std::string>&(O&)>,
                           std::function<std::vector<double>&(O&)>>;

template <typename O>
struct Option {
  std::string flag;  // "--ewc-lr"
  std::string help;  // without the owner's name: the CLI prefixes the methods that read it
  Field<O> field;
  std::function<void(const O&)> check;  // UsageError naming the flag when the value is out of range
};

// An option of type T at the place `get` returns.
template <typename T, typename O, typename Get>
Option<O> option(std::string flag, std::string help, Get get, std::function<void(const O&)> check = {}) {
  return {std::move(flag), std::move(help), Field<O>(std::in_place_type<std::function<T&(O&)>>, get), std::move(check)};
}

// What a Step I method scores with.
struct MethodRun {
  Module& model;
  const data::ImageSet& train;
  const data::ImageSet& fq;
  const IdentifyOptions& options;
  IdentifyResult& result;  // scores go in result.scores, figures in result.stats
};

// What a method keeps between calls of run_queries on successive blocks of queries against the
// same model, D and options (`lethe attribute`): the work that depends on D alone (EK-FAC's
// factors, TRAK's features of D, the norms of D's gradients), done once for all the blocks.
struct QueryCache {
  std::map<std::string, std::shared_ptr<const void>> state;
};

// The value named `name` in `cache`, made by `make()` the first time; made afresh every call
// where there is no cache.
template <typename T, typename Make>
std::shared_ptr<const T> cached(QueryCache* cache, const std::string& name, Make&& make) {
  if (!cache) return std::make_shared<const T>(make());
  auto& slot = cache->state[name];
  if (!slot) slot = std::make_shared<const T>(make());
  return std::static_pointer_cast<const T>(slot);
}

// What a Step I method scores with when each query is its own failure set (evaluation/benchmark.h's
// LDS): scores[j] is r(z) over D for Fq = {queries_j}.
struct QueryRun {
  Module& model;
  const data::ImageSet& train;
  const data::ImageSet& queries;
  const IdentifyOptions& options;
  std::vector<std::vector<double>>& scores;  // [query][example]
  std::map<std::string, double>& stats;
  QueryCache* cache = nullptr;  // set when further blocks of queries follow
};

// What a method's self-influence works on: scores[i] = r(z_i, z_i), the score of z_i with z_i
// itself as the query (the diagonal of the N × N matrix, which is never formed).
struct SelfRun {
  Module& model;
  const data::ImageSet& train;
  const IdentifyOptions& options;
  std::vector<double>& scores;
  std::map<std::string, double>& stats;
};

struct MethodInfo {
  std::string name = {};
  std::string summary = {};
  int position = 0;        // place in listings and in the experiment's default list
  bool needs_fq = true;    // loss and random score without the failures
  // Among the experiment's default methods (the paper's and their rivals); methods added for
  // influence benchmarking only run when named.
  bool in_experiment = true;
  std::vector<Option<IdentifyOptions>> options = {};
  std::function<void(MethodRun&)> run = {};
  // Scores every query at once, sharing the work over D (a curvature, a projection, one pass of
  // dots against all query gradients). Empty: `run` once per query, or once in all when the
  // method needs no failures.
  std::function<void(QueryRun&)> run_queries = {};
  // Host bytes one query of run_queries holds while its block is scored, for θ of n_params and D
  // of n_train examples: what `attribute` sizes its blocks by. Empty: a gradient and its
  // preconditioned vector in double and the float copy the products read (20 bytes a
  // parameter), and its products with D, its scores and its row as written (20 bytes an
  // example). float_row_query_bytes is the form of a method that keeps its queries as float rows.
  std::function<int64_t(int64_t n_params, int64_t n_train, const IdentifyOptions&)> query_bytes = {};
  // Every training example's self-influence; empty where the method has none worth computing
  // (then self_influence_note says why).
  std::function<void(SelfRun&)> self_influence = {};
  std::string self_influence_note = {};
};

// What a Step II treatment works on: the model at θ̂ (treated in place), D, the examples it
// works from (D \ C for a treatment that trains, the causes C otherwise), and the query failures.
struct TreatmentRun {
  Module& model;
  const data::ImageSet& train;
  const data::ImageSet& set;
  const data::ImageSet& fq;
  const TreatOptions& options;
  TreatResult& result;
};

struct TreatmentInfo {
  std::string name = {};
  std::string summary = {};
  int position = 0;
  bool in_experiment = false;  // among the experiment's default extra treatments
  bool trains = false;         // trains on D \ C (finetune, retrain) rather than working from C
  std::vector<Option<TreatOptions>> options = {};
  std::function<void(TreatmentRun&)> run = {};
};

// A query kept as one float row of θ (influence/quantities.h's QueryRows; tracin, gradcos, ekfac):
// 4 bytes a parameter, and 20 an example of D.
int64_t float_row_query_bytes(int64_t n_params, int64_t n_train, const IdentifyOptions& options);

// Every registered method / treatment, in `position` order.
const std::vector<const MethodInfo*>& methods();
const std::vector<const TreatmentInfo*>& treatments();
// The one named; a UsageError naming `flag` and listing the known names otherwise.
const MethodInfo& find_method(const std::string& name, const std::string& flag = "--method");
// A method as `--methods` lists name it (benchmark, experiment): a registered method, or
// "linear:<solver>" for linear influence with that solver.
struct MethodVariant {
  std::string label;   // as given: "linear:cg"
  std::string method;  // "linear"
  std::string solver;  // "cg"; empty: the options' own
};
MethodVariant parse_method_variant(const std::string& label);  // UsageError naming --methods
const TreatmentInfo& find_treatment(const std::string& name, const std::string& flag = "--treatment");
// "ewc, kfac-ewc, ..." and "finetune | retrain | ..." for messages and help.
std::string method_names(const std::string& separator = ", ");
std::string treatment_names(const std::string& separator = ", ");

// Each option flag once, in registration order, with the names of those that read it.
template <typename O>
struct OptionUse {
  const Option<O>* option;
  std::vector<std::string> owners;
};
std::vector<OptionUse<IdentifyOptions>> method_options();
std::vector<OptionUse<TreatOptions>> treatment_options();

}  // namespace lethe::repair

// Registration: a file of repair/methods/ (treatments/) named <stem>.cpp defines
//   LETHE_METHOD(<stem>) { static const MethodInfo m = {...}; return m; }
#define LETHE_METHOD(stem) const ::lethe::repair::MethodInfo& lethe_registered_method_##stem()
#define LETHE_TREATMENT(stem) const ::lethe::repair::TreatmentInfo& lethe_registered_treatment_##stem()
