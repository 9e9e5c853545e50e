// `lethe attribute`: a query set scored against D (the Q × N matrix, streamed by block, or each
// query's top k), or every training example's self-influence. The work is repair/attribute.h's;
// the outputs are report/score_matrix.h's.
#include <algorithm>
#include <filesystem>
#include <map>
#include <numeric>

#include <nlohmann/json.hpp>

#include "evaluation/metrics.h"
#include "influence/params.h"
#include "nn/safetensors.h"
#include "parallel/comm.h"
#include "repair/attribute.h"
#include "report/score_matrix.h"
#include "tools/lethe/context.h"
#include "tools/lethe/registry_options.h"
#include "tools/lethe/scores_io.h"
#include "util/atomic_file.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/rng.h"
#include "util/streams.h"

namespace lethe::cli {
namespace {

struct AttributeArgs {
  std::string model_file, failures_file, out, top_out, model;
  data::DataSpec spec;
  repair::AttributeOptions opt;
  std::string queries = "test";
  std::string query_split = "test";
  std::string fisher = "empirical";
  std::string save_dtype = "f32";
  int64_t top_k = 10;
  bool self = false;
  bool json = false;
};

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

DType parse_save_dtype(const std::string& name) {
  if (name == "f32") return DType::F32;
  if (name == "bf16") return DType::BF16;
  if (name == "f16") return DType::F16;
  throw UsageError(fmt::format("--save-dtype {}: expected f32, bf16 or f16", name));
}

// The query set's indices into the split: all of it, its failures, a seeded sample of N, or a file.
std::vector<int64_t> query_indices(const AttributeArgs& a, const RepairContext& c, int64_t split_n, uint64_t seed) {
  const std::string& q = a.queries;
  std::vector<int64_t> idx;
  if (q == "test" || q == "all") {
    idx.resize(static_cast<size_t>(split_n));
    std::iota(idx.begin(), idx.end(), int64_t{0});
  } else if (q == "failures") {
    if (a.query_split != "test") throw UsageError("--queries failures: the failures are test examples (--query-split test)");
    idx = c.split.fq;
    idx.insert(idx.end(), c.split.fh.begin(), c.split.fh.end());
    std::sort(idx.begin(), idx.end());
  } else if (!q.empty() && std::all_of(q.begin(), q.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    int64_t n = 0;
    try {
      n = std::stoll(q);
    } catch (const std::exception&) {
      throw UsageError(fmt::format("--queries {}: not a count", q));
    }
    if (n < 1 || n > split_n)
      throw UsageError(fmt::format("--queries {}: the {} split holds {} examples", q, a.query_split, split_n));
    // A seeded sample (the stream benchmark samples its queries from), in the split's order.
    std::vector<int64_t> all(static_cast<size_t>(split_n));
    std::iota(all.begin(), all.end(), int64_t{0});
    Rng rng(stream_seed(seed, Stream::kBenchmarkQueries));
    for (int64_t i = 0; i < n; ++i) {
      const int64_t j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(split_n - i)));
      std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(j)]);
    }
    idx.assign(all.begin(), all.begin() + n);
    std::sort(idx.begin(), idx.end());
  } else {
    if (!std::filesystem::is_regular_file(q))
      throw UsageError(fmt::format("--queries {}: not test | failures | a count | a file of indices", q));
    idx = read_index_file(q, split_n);
  }
  if (idx.empty()) throw UsageError(fmt::format("--queries {}: the query set is empty", q));
  return idx;
}

// Everything that determines the output, for resuming: a changed model, D, query set, method or
// option starts the output afresh.
std::string output_key(const CLI::App& cmd, const AttributeArgs& a, const std::vector<int64_t>& idx, int64_t n_train) {
  std::string flags;
  for (const CLI::Option* o : cmd.get_options()) {
    const std::string name = o->get_name();
    if (o->count() == 0 || name == "--memory" || name == "--block" || name == "--json" || name == "--help") continue;
    flags += name + "=";
    for (const std::string& r : o->results()) flags += r + ",";
    flags += ";";
  }
  const std::string model_bytes = read_file(a.model_file);
  return fmt::format("model {:08x} n_train {} queries {} {:08x} flags {}", crc32(model_bytes.data(), model_bytes.size()),
                     n_train, idx.size(), crc32(idx.data(), idx.size() * sizeof(int64_t)), flags);
}

nlohmann::json self_detection(const std::vector<double>& scores, const std::vector<uint8_t>& noisy) {
  // A mislabelled example stands out by a large self-influence: lethe's r(z, z) is its negative.
  std::vector<double> magnitude(scores.size());
  for (size_t i = 0; i < scores.size(); ++i) magnitude[i] = -scores[i];
  const repair::Detection d = repair::detection(magnitude, noisy);
  nlohmann::json j = {{"n_corrupted", d.n_corrupted}, {"roc_auc", d.roc_auc}};
  for (double f : {0.1, 0.2}) {
    const auto k = static_cast<int64_t>(repair::causes_top_fraction(magnitude, f).size());
    j[fmt::format("share_found_top_{}pct", static_cast<int>(f * 100 + 0.5))] = repair::recall_at_k(magnitude, noisy, k);
  }
  return j;
}

// EK-FAC's phases (covariance, eigendecomposition, Λ), and the pass after them as `last`: what
// is left of the run's seconds. Methods that record no factor times get none.
void add_phases(const std::map<std::string, double>& stats, double seconds, const char* last, nlohmann::json& j) {
  if (!stats.count("seconds_covariance")) return;
  const double factors = stats.at("seconds_covariance") + stats.at("seconds_eigendecomposition") + stats.at("seconds_lambda");
  j["phases"] = {{"covariance", stats.at("seconds_covariance")},
                 {"eigendecomposition", stats.at("seconds_eigendecomposition")},
                 {"lambda", stats.at("seconds_lambda")},
                 {last, seconds - factors}};
}

// "phases: covariance 1.00s, eigendecomposition 0.50s, lambda 2.00s, scores 3.00s", or nothing.
std::string phases_line(const nlohmann::json& j) {
  if (!j.contains("phases")) return "";
  const auto& p = j["phases"];
  std::string line = fmt::format("phases: covariance {:.2f}s, eigendecomposition {:.2f}s, lambda {:.2f}s",
                                 p["covariance"].get<double>(), p["eigendecomposition"].get<double>(),
                                 p["lambda"].get<double>());
  for (const char* last : {"scores", "self_influence"})
    if (p.contains(last)) line += fmt::format(", {} {:.2f}s", last, p[last].get<double>());
  return line + "\n";
}

void run_self(AttributeArgs& a, RepairContext& c, nlohmann::json& j) {
  const auto r = repair::self_influence(*c.loaded.model, c.data.train, a.opt.identify);
  if (ends_with(a.out, ".csv")) {
    write_scores_csv(a.out, c.data.train, r.scores, c.has_noise_mask() ? &c.data.noisy : nullptr);
  } else {
    SafetensorsFile f;
    f.arrays.push_back(NamedArray::from_values<double>("self_influence", {c.data.train.n}, r.scores));
    f.metadata["lethe.attribute.method"] = a.opt.identify.method;
    f.metadata["lethe.attribute.sign"] = "r(z, z) = -g(z)^T H^-1 g(z): more negative = larger self-influence";
    save_safetensors(a.out, f);
  }
  j["seconds"] = r.seconds;
  j["n_queries"] = 0;
  for (const auto& [k, v] : r.stats) j["stats"][k] = v;
  add_phases(r.stats, r.seconds, "self_influence", j);
  if (c.has_noise_mask()) j["mislabel_detection"] = self_detection(r.scores, c.data.noisy);
}

void run_matrix(const CLI::App& cmd, AttributeArgs& a, RepairContext& c, const std::vector<int64_t>& idx,
                const data::ImageSet& split, Progress& progress, nlohmann::json& j) {
  const data::ImageSet queries = data::take(split, idx);
  const std::string key = output_key(cmd, a, idx, c.data.train.n);
  const bool matrix = !ends_with(a.out, ".csv");
  const DType dtype = parse_save_dtype(a.save_dtype);
  std::unique_ptr<report::ScoreMatrixWriter> m;
  std::unique_ptr<report::TopKWriter> top;
  const std::string top_path = matrix ? a.top_out : a.out;
  if (matrix) {
    report::ScoreMatrixSpec s;
    s.rows = queries.n, s.cols = c.data.train.n;
    s.dtype = dtype;
    s.row_ids = idx;
    s.key = key;
    s.metadata = {{"lethe.attribute.method", a.opt.identify.method},
                  {"lethe.attribute.query_split", a.query_split},
                  {"lethe.attribute.model_file", a.model_file},
                  {"lethe.attribute.sign", "r(q, z) = -g(z)^T H^-1 g(q): larger = z raises q's loss more"}};
    m = std::make_unique<report::ScoreMatrixWriter>(a.out, s);
  }
  if (!top_path.empty()) top = std::make_unique<report::TopKWriter>(top_path, a.top_k, idx, key);
  // Both outputs advance together; a record that disagrees means one was lost: start both over.
  int64_t first = m ? m->rows_done() : top->rows_done();
  if (m && top && m->rows_done() != top->rows_done()) fail("--out and --top-out recorded different progress; remove their .partial files");
  if (first > 0) progress.line(fmt::format("resuming {}: {} of {} queries already scored", a.out, first, queries.n));
  const auto r = repair::attribute(*c.loaded.model, c.data.train, queries, a.opt, first,
                                   [&](int64_t row0, const std::vector<std::vector<double>>& rows) {
                                     if (m) m->write_rows(row0, rows);
                                     if (top) top->write_rows(row0, rows);
                                   });
  if (m) m->finish();
  if (top) top->finish();
  j["seconds"] = r.seconds;
  j["n_queries"] = queries.n;
  j["queries_resumed"] = r.rows_skipped;
  j["block"] = r.plan.block;
  j["blocks"] = r.plan.blocks;
  j["bytes_per_query"] = r.plan.bytes_per_query;
  j["matrix_bytes"] = queries.n * c.data.train.n * static_cast<int64_t>(dtype_size(dtype));
  if (m) j["scores_offset"] = m->scores_offset();
  if (!top_path.empty()) j["top_k_file"] = top_path;
  for (const auto& [k, v] : r.stats) j["stats"][k] = v;
  add_phases(r.stats, r.seconds, "scores", j);
}

void run_attribute(const GlobalOptions& global, AttributeArgs& a, const CLI::App& cmd) {
  const auto t_start = Clock::now();
  auto& io = a.opt.identify;
  io.fisher.kind = repair::parse_fisher_kind(a.fisher);
  io.seed = global.seed;
  if (cmd.count("--query-rank") && io.query_rank < 1)
    throw UsageError(fmt::format("--query-rank {}: must be >= 1 (leave it out for full rank)", io.query_rank));
  if (a.query_split != "test" && a.query_split != "train")
    throw UsageError(fmt::format("--query-split {}: expected test or train", a.query_split));
  if (a.self && cmd.count("--queries")) throw UsageError("--self scores D against itself: --queries does not apply");
  if (std::filesystem::is_directory(a.out)) throw UsageError(fmt::format("--out {}: is a folder, not a file", a.out));
  if (!ends_with(a.out, ".csv") && !ends_with(a.out, ".safetensors"))
    throw UsageError(fmt::format("--out {}: expected a .safetensors (the matrix) or .csv (top k per query) file", a.out));
  if (!a.top_out.empty() && !ends_with(a.top_out, ".csv")) throw UsageError(fmt::format("--top-out {}: expected a .csv file", a.top_out));
  if (a.top_k < 1) throw UsageError(fmt::format("--top-k {}: must be >= 1", a.top_k));
  parse_save_dtype(a.save_dtype);
  repair::validate(io, 1, 1);
  if (a.self) {
    std::string why;
    if (!repair::has_self_influence(io.method, &why))
      throw UsageError(fmt::format("--self: {} has no self-influence: {}", io.method, why));
  }
  Progress progress(global.quiet);
  // Only the failures as queries (or a --failures file, read and checked) need the model run on T.
  const bool evaluate_test = a.queries == "failures" || !a.failures_file.empty();
  RepairContext c = load_context(cmd, global, a.model_file, a.spec, a.failures_file, progress, a.model, evaluate_test);
  io.progress = [&](const std::string& stage, int64_t done, int64_t total) { progress.update(stage, done, total); };
  io.log = [&](const std::string& line) { progress.line(line); };
  io.fisher.seed = stream_seed(c.spec.seed, Stream::kFisherLabels);
  io.recipe = c.recipe;
  const double seconds_setup = since(t_start);

  nlohmann::json j;
  j["method"] = io.method;
  if (io.method == "linear") j["solver"] = io.solve.solver;
  j["n_train"] = c.data.train.n;
  j["out"] = a.out;
  if (a.self) {
    j["self"] = true;
    run_self(a, c, j);
  } else {
    const data::ImageSet& split = a.query_split == "train" ? c.data.train : c.data.test;
    const auto idx = query_indices(a, c, split.n, c.spec.seed);
    // The budget is checked before any work: a block must hold one query.
    repair::plan_attribute(repair::ParamLayout::of(*c.loaded.model).total, c.data.train.n,
                           static_cast<int64_t>(idx.size()), a.opt);
    j["queries"] = a.queries;
    j["query_split"] = a.query_split;
    if (io.query_rank > 0) j["query_rank"] = io.query_rank;
    run_matrix(cmd, a, c, idx, split, progress, j);
  }
  j["seconds_setup"] = seconds_setup;
  j.update(report::provenance_json(run_info(global, c.device)));
  add_memory(j, c.device);
  if (a.json) {
    print_result(j.dump(2) + "\n");
    return;
  }
  std::string text;
  if (a.self) {
    text = fmt::format("{}: self-influence of {} training examples in {:.2f}s\n", io.method, c.data.train.n,
                       j["seconds"].get<double>());
    if (j.contains("mislabel_detection")) {
      const auto& d = j["mislabel_detection"];
      text += fmt::format("the {} corrupted examples by self-influence: ROC AUC {:.3f}, found in the top 10% {:.3f}, top 20% {:.3f}\n",
                          d["n_corrupted"].get<int64_t>(), d["roc_auc"].get<double>(),
                          d["share_found_top_10pct"].get<double>(), d["share_found_top_20pct"].get<double>());
    }
    text += phases_line(j);
  } else {
    text = fmt::format("{}: {} queries x {} training examples in {:.2f}s ({} block{} of up to {})\n", io.method,
                       j["n_queries"].get<int64_t>(), c.data.train.n, j["seconds"].get<double>(), j["blocks"].get<int64_t>(),
                       j["blocks"].get<int64_t>() == 1 ? "" : "s", j["block"].get<int64_t>());
    text += phases_line(j);
  }
  text += fmt::format("peak memory: host {}", gib(j["host_peak_rss_bytes"].get<uint64_t>()));
  if (j.contains("device_peak_bytes")) text += fmt::format(", device {}", gib(j["device_peak_bytes"].get<uint64_t>()));
  text += fmt::format("\nwrote {}\n", a.out);
  print_result(text);
}

}  // namespace

void add_attribute_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "attribute",
      "Score a query set against every training example (a Q x N matrix, or each query's top k), or every "
      "training example's self-influence");
  auto a = std::make_shared<AttributeArgs>();
  add_context_options(cmd, a->model_file, a->spec, a->failures_file, a->model);
  auto& o = a->opt.identify;
  o.method = "ekfac";  // the field's usual choice at this scale; ewc (identify's) runs one update per query
  cmd->add_option("--method", o.method, repair::method_names(" | "))->capture_default_str();
  cmd->add_option("--out", a->out,
                  "Output: .safetensors for the matrix ('scores' [Q, N], 'query_indices' [Q]; with --self "
                  "'self_influence' [N]), .csv for each query's top k (with --self: every example's score)")
      ->required();
  cmd->add_option("--queries", a->queries,
                  "Queries: test (all of the split) | failures (the misclassified test examples) | N (a seeded "
                  "sample of N) | FILE (indices, one per line)")
      ->capture_default_str();
  cmd->add_option("--query-split", a->query_split, "Split the queries come from: test | train")->capture_default_str();
  cmd->add_flag("--self", a->self, "Every training example's self-influence r(z, z), never the N x N matrix");
  cmd->add_option("--query-rank", o.query_rank,
                  "Replace each query vector's weight matrices by their best rank-R approximation (Kronfluence's "
                  "query low-rank); full rank when left out");
  cmd->add_option("--memory", a->opt.memory_gb, "Working memory of one block of queries, in GB")->capture_default_str();
  cmd->add_option("--block", a->opt.block, "Queries per block (0: as many as --memory holds)")->capture_default_str();
  cmd->add_option("--save-dtype", a->save_dtype, "The matrix's dtype: f32 | bf16 | f16")->capture_default_str();
  cmd->add_option("--top-k", a->top_k, "Training examples listed per query in a .csv output")->capture_default_str();
  cmd->add_option("--top-out", a->top_out, "Also write each query's top k to this .csv beside a .safetensors matrix");
  cmd->add_option("--batch", o.batch, "Examples per pass over D")->capture_default_str();
  cmd->add_option("--fisher", a->fisher, "Fisher: empirical (given labels) | sampled (labels from the model)")->capture_default_str();
  cmd->add_option("--mc-samples", o.fisher.mc_samples, "Label draws per example for --fisher sampled")->capture_default_str();
  add_registry_options(cmd, o, repair::method_options());
  cmd->add_flag("--json", a->json, "Print one JSON document on stdout instead of text");
  cmd->callback([&global, a, cmd] {
    a->opt.identify.solve.damping_set = cmd->count("--damping") > 0;
    run_attribute(global, *a, *cmd);
  });
}

}  // namespace lethe::cli
