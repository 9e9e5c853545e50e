#include "evaluation/benchmark.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <sstream>
#include <tuple>
#include <type_traits>
#include <variant>

#include <fmt/ranges.h>

#include "datasets/transforms.h"
#include "learning/recipe.h"
#include "learning/train.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "parallel/comm.h"
#include "parallel/rounds.h"
#include "repair/registry.h"
#include "influence/solve.h"
#include "util/atomic_file.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/streams.h"

namespace lethe::repair {
namespace {

namespace fs = std::filesystem;

// The checkpoint metadata that holds a cached model's key (model_key).
constexpr const char* kKeyMetadata = "lethe.benchmark.key";

// FNV-1a, fed piece by piece.
struct Fnv {
  uint64_t h = 0xcbf29ce484222325ull;
  void feed(const void* p, size_t bytes) {
    const auto* c = static_cast<const unsigned char*>(p);
    for (size_t i = 0; i < bytes; ++i) h = (h ^ c[i]) * 0x100000001b3ull;
  }
  void feed(const std::string& text) { feed(text.data(), text.size() + 1); }  // with its NUL: "ab","c" ≠ "a","bc"
};

// FNV-1a over a set's labels and pixels: D's identity in the cache's manifest.
uint64_t fingerprint(const data::ImageSet& s) {
  Fnv f;
  f.feed(s.labels.data(), s.labels.size() * sizeof(int32_t));
  f.feed(s.pixels.data(), s.pixels.size() * sizeof(float));
  return f.h;
}

// What the cached models depend on, one "key value" line each. A folder whose manifest differs in
// any of them holds models of another D, model or recipe.
std::vector<std::pair<std::string, std::string>> manifest(const BenchmarkSettings& s, int64_t examples,
                                                          uint64_t data_fingerprint) {
  return {
      {"format", "lethe.benchmark/1"},
      {"model", s.model},
      {"dataset", s.spec.dataset},
      {"examples", std::to_string(examples)},
      {"data_fingerprint", fmt::format("{:016x}", data_fingerprint)},
      {"noise", data::describe_noise(s.spec)},
      {"seed", std::to_string(s.spec.seed)},
      {"epochs", std::to_string(s.epochs)},
      {"batch", std::to_string(s.batch)},
      {"lr", fmt::format("{}", s.lr)},
      {"optimizer", describe(s.optimizer)},
      {"alpha", fmt::format("{}", s.alpha)},
  };
}

std::string manifest_path(const BenchmarkSettings& s) { return (fs::path(s.out_dir) / "benchmark-cache.txt").string(); }

void check_or_write_manifest(const BenchmarkSettings& s, int64_t examples, uint64_t data_fingerprint) {
  const auto want = manifest(s, examples, data_fingerprint);
  const std::string path = manifest_path(s);
  if (fs::exists(path)) {
    std::ifstream in(path);
    std::map<std::string, std::string> have;
    std::string line;
    while (std::getline(in, line)) {
      const auto space = line.find(' ');
      if (space != std::string::npos) have[line.substr(0, space)] = line.substr(space + 1);
    }
    for (const auto& [key, value] : want) {
      const auto it = have.find(key);
      // A folder from before the optimiser was recorded holds Adam's models.
      const std::string theirs = it != have.end() ? it->second : key == "optimizer" ? "adam" : "(missing)";
      if (theirs != value)
        fail("--out-dir '{}' holds a benchmark of another {} ({}: {}, this run: {}); use another folder", s.out_dir,
             key == "data_fingerprint" || key == "examples" || key == "noise" || key == "dataset" ? "D" : "setting",
             key, theirs, value);
    }
  } else {
    std::string text;
    for (const auto& [key, value] : want) text += key + " " + value + "\n";
    write_file_atomic(path, text);
  }
  // On every rank: each writes the models it trains (docs/scale-out.md).
  fs::create_directories(fs::path(s.out_dir) / "models");
}

// The manifest's keys and, after them, what this run asked of the folder: its queries (the test
// examples) and every option of the methods, "run.<name> <value>" lines that are a record, not
// checked (a cached model is checked by the key its file carries).
void record_run(const BenchmarkSettings& s, int64_t examples, uint64_t data_fingerprint,
                const std::vector<int64_t>& query_indices) {
  std::string text;
  for (const auto& [key, value] : manifest(s, examples, data_fingerprint)) text += key + " " + value + "\n";
  text += fmt::format("run.queries {}\nrun.query_indices {}\n", s.queries, fmt::join(query_indices, ","));
  text += fmt::format("run.methods {}\nrun.subsets {}\nrun.loo {}\nrun.brittleness {}\nrun.brittleness_ks {}\n",
                      fmt::join(s.methods, ","), s.subsets, s.loo, s.brittleness, fmt::join(s.brittleness_ks, ","));
  IdentifyOptions io = s.identify;
  text += fmt::format("run.option --score-batch {}\n", io.batch);
  for (const auto& use : method_options())
    std::visit(
        [&](const auto& get) {
          using T = std::decay_t<decltype(get(io))>;
          if constexpr (std::is_same_v<T, std::vector<std::string>> || std::is_same_v<T, std::vector<double>>)
            text += fmt::format("run.option {} {}\n", use.option->flag, fmt::join(get(io), ","));
          else
            text += fmt::format("run.option {} {}\n", use.option->flag, get(io));
        },
        use.option->field);
  write_file_atomic(manifest_path(s), text);
}

// What a cached model is a function of: the examples of D it trains on (D itself by its
// fingerprint), its seed, the architecture and the training recipe. A cached model is used only
// where its file carries this key, so an option that changes a removal set (another query,
// --damping, --proj-dim) trains that model anew instead of reading one trained without other
// examples.
std::string model_key(const BenchmarkSettings& s, uint64_t data_fingerprint, uint64_t seed,
                      const std::vector<int64_t>& rows) {
  Fnv f;
  f.feed("lethe.benchmark.model/1");
  f.feed(s.model);
  f.feed(&data_fingerprint, sizeof data_fingerprint);
  f.feed(&seed, sizeof seed);
  f.feed(fmt::format("epochs {} batch {} lr {}", s.epochs, s.batch, s.lr));
  const uint64_t count = rows.size();
  f.feed(&count, sizeof count);
  f.feed(rows.data(), rows.size() * sizeof(int64_t));
  return fmt::format("{:016x}", f.h);
}

std::vector<uint8_t> subset_mask(uint64_t seed, int m, int64_t n, double alpha) {
  Rng rng = stream(seed, Stream::kBenchmarkSubsets).fork(static_cast<uint64_t>(m));
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  rng.shuffle(order);
  const int64_t size = std::clamp<int64_t>(std::llround(alpha * static_cast<double>(n)), 1, n);
  std::vector<uint8_t> mask(static_cast<size_t>(n), 0);
  for (int64_t i = 0; i < size; ++i) mask[order[i]] = 1;
  return mask;
}

std::string fmt_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::llround(seconds));
  return s >= 60 ? fmt::format("{}m{:02d}s", s / 60, s % 60) : fmt::format("{}s", s);
}

// What a model job of the rounds (parallel/rounds.h) sends back: whether the rank trained the
// model or read it from the cache, its seconds (reading or training, and measuring), and what it
// measured.
struct ModelMeasurement {
  bool trained = false;
  double seconds = 0;
  std::vector<double> values;

  std::vector<double> pack() const {
    std::vector<double> v = {trained ? 1.0 : 0.0, seconds};
    v.insert(v.end(), values.begin(), values.end());
    return v;
  }
  static ModelMeasurement unpack(const parallel::JobResult& r) {
    LETHE_CHECK(r.values.size() >= 2, "model job {} sent {} values", r.key, r.values.size());
    return {r.values[0] != 0, r.values[1], std::vector<double>(r.values.begin() + 2, r.values.end())};
  }
};

// The ETA of `total` models trained as many at a time as there are ranks: the seconds per round
// that trained a model so far, times the rounds left. (One process: seconds per trained model
// times the models left.)
class RoundClock {
 public:
  explicit RoundClock(int64_t total) : total_(total) {}
  // After a round of `done` models, `trained` of which were trained.
  void round(size_t done, int64_t trained) {
    done_ += static_cast<int64_t>(done);
    if (trained > 0) ++training_rounds_;
  }
  std::string eta() const {
    const int64_t ranks = parallel::comm().size();
    const int64_t rounds_left = (total_ - done_ + ranks - 1) / ranks;
    return fmt_duration(training_rounds_ ? since(start_) / static_cast<double>(training_rounds_) * rounds_left : 0.0);
  }
  double seconds() const { return since(start_); }

 private:
  Clock::time_point start_ = Clock::now();
  int64_t total_, done_ = 0, training_rounds_ = 0;
};

// The examples of D a model trains on: those `keep` marks.
std::vector<int64_t> kept_rows(const std::vector<uint8_t>& keep) {
  std::vector<int64_t> rows;
  for (size_t i = 0; i < keep.size(); ++i)
    if (keep[i]) rows.push_back(static_cast<int64_t>(i));
  return rows;
}

class Benchmark {
 public:
  Benchmark(const BenchmarkSettings& s, const BenchmarkHooks& h, BenchmarkResults& out) : s_(s), h_(h), out_(out) {}

  void run() {
    data_ = prepare_data_with_victim(s_.spec, s_.device, h_.line);
    // --subset 0 takes the whole split, whose size only reading it tells: the bound validate()
    // could not check.
    if (s_.loo >= data_.train.n)
      throw UsageError(fmt::format("--loo {}: must be below the {} training examples of D", s_.loo, data_.train.n));
    data_fingerprint_ = fingerprint(data_.train);
    check_or_write_manifest(s_, data_.train.n, data_fingerprint_);
    out_.n_train = data_.train.n;
    out_.n_corrupted = std::count(data_.noisy.begin(), data_.noisy.end(), 1);
    std::vector<int64_t> all(static_cast<size_t>(data_.train.n));
    std::iota(all.begin(), all.end(), 0);
    base_ = cached_model(model_path(-1), s_.spec.seed, data_.train, "train base", key_of(s_.spec.seed, all));
    choose_queries();
    record_run(s_, data_.train.n, data_fingerprint_, out_.query_indices);
    measure_subsets();
    leave_one_out();
    for (const auto& label : s_.methods) score(parse_method_variant(label));
  }

 private:
  void line(const std::string& text) const {
    if (h_.line) h_.line(text);
  }
  void update(const std::string& stage, int64_t done, int64_t total) const {
    if (h_.update) h_.update(stage, done, total);
  }

  // A cached model's file in the output folder.
  std::string cache_file(const std::string& name) const { return (fs::path(s_.out_dir) / "models" / name).string(); }
  std::string model_path(int m) const {
    return cache_file(m < 0 ? "base.safetensors" : fmt::format("subset-{:04d}.safetensors", m));
  }

  uint64_t subset_seed(int64_t m) const {
    return stream(s_.spec.seed, Stream::kBenchmarkModels).fork(static_cast<uint64_t>(m)).next_u64();
  }

  std::string key_of(uint64_t seed, const std::vector<int64_t>& rows) const {
    return model_key(s_, data_fingerprint_, seed, rows);
  }

  // The model cached at `path` when its file carries `key` (model_key), else one trained on `set`
  // from `seed` and cached there with the key.
  std::unique_ptr<Module> cached_model(const std::string& path, uint64_t seed, const data::ImageSet& set,
                                       const std::string& stage, const std::string& key, bool* trained = nullptr) {
    auto model = init_base_model(s_.model, seed);
    if (fs::exists(path)) {
      try {
        const auto meta = load_safetensors(path).metadata;
        const auto it = meta.find(kKeyMetadata);
        if (it != meta.end() && it->second == key) {
          load_parameters(path, *model);
          model->to(s_.device);
          if (trained) *trained = false;
          return model;
        }
        line(fmt::format("cached model {} was trained on other examples or another recipe (key {}, this run's {}); "
                         "training it again",
                         path, it == meta.end() ? std::string("none") : it->second, key));
      } catch (const Error& e) {
        line(fmt::format("cached model {} unreadable ({}); training it again", path, e.what()));
        model = init_base_model(s_.model, seed);
      }
    }
    model->to(s_.device);
    TrainOptions to = base_training(seed, s_.epochs, s_.batch, s_.lr, std::nullopt, s_.optimizer);
    to.on_batch = [&](int64_t done, int64_t total) { update(stage, done, total); };
    train_classifier(*model, set, to);
    save_checkpoint(path, *model, s_.model, {{"lethe.benchmark.model", stage}, {kKeyMetadata, key}});
    if (trained) *trained = true;
    return model;
  }

  // One job of the rounds (parallel/rounds.h), which this rank does alone: the model cached at
  // `path`, else trained from `seed` on the examples `rows` of D and cached, then measured. The
  // rank writes the model it trains itself: the ranks' jobs are disjoint, so no two ranks write
  // one file, and a model is on disk as soon as it is trained, for an interrupted run's rerun to
  // read (docs/scale-out.md).
  std::vector<double> model_job(const std::string& path, uint64_t seed, const std::vector<int64_t>& rows,
                                const std::string& stage, const std::function<std::vector<double>(Module&)>& measure) {
    const auto t = Clock::now();
    ModelMeasurement out;
    std::unique_ptr<Module> model;
    {
      ScopedFileWrites own_model(true);
      model = cached_model(path, seed, data::take(data_.train, rows), stage, key_of(seed, rows), &out.trained);
    }
    out.values = measure(*model);
    out.seconds = since(t);
    return out.pack();
  }

  // The queries: a seeded sample of --queries from the test set or from the base model's test
  // failures (--queries-from), in test-set order.
  void choose_queries() {
    const auto eval = evaluate(*base_, data_.test);
    out_.test_accuracy = eval.accuracy;
    std::vector<int64_t> failures, pool;
    for (size_t i = 0; i < eval.predictions.size(); ++i)
      if (eval.predictions[i] != data_.test.labels[i]) failures.push_back(static_cast<int64_t>(i));
    out_.n_failures = static_cast<int64_t>(failures.size());
    if (s_.queries_from == "failures") {
      if (failures.empty()) fail("the model trained on D makes no mistakes on the test set: no queries to attribute");
      pool = failures;
    } else {
      pool.resize(static_cast<size_t>(data_.test.n));
      std::iota(pool.begin(), pool.end(), 0);
    }
    Rng rng = stream(s_.spec.seed, Stream::kBenchmarkQueries);
    rng.shuffle(pool);
    pool.resize(static_cast<size_t>(std::min<int64_t>(s_.queries, static_cast<int64_t>(pool.size()))));
    std::sort(pool.begin(), pool.end());
    out_.query_indices = pool;
    queries_ = data::take(data_.test, pool);
    line(fmt::format("base model: test accuracy {:.4f}, {} failures; {} queries from the {}", eval.accuracy,
                     out_.n_failures, queries_.n, s_.queries_from == "failures" ? "failures" : "test set"));
  }

  // Trains (or loads) the M subset models and measures every query's loss under each: rank r of
  // N takes models r, r + N, ..., each an ordinary one-process training run (parallel/rounds.h).
  void measure_subsets() {
    for (int m = 0; m < s_.subsets; ++m) masks_.push_back(subset_mask(s_.spec.seed, m, data_.train.n, s_.alpha));
    out_.measured.assign(static_cast<size_t>(s_.subsets), {});
    std::vector<double> accuracy(static_cast<size_t>(s_.subsets));
    RoundClock clock(s_.subsets);
    const auto job = [&](int64_t m) {
      check_interrupt("before subset model {}", m + 1);
      return model_job(model_path(static_cast<int>(m)), subset_seed(m), kept_rows(masks_[m]),
                       fmt::format("subset {}", m + 1), [&](Module& model) {
                         const auto losses = evaluate(model, queries_).losses;
                         std::vector<double> v(losses.begin(), losses.end());
                         v.push_back(evaluate(model, data_.test).accuracy);
                         return v;
                       });
    };
    parallel::run_in_rounds(parallel::dealt_round_robin(s_.subsets), job, [&](const std::vector<parallel::JobResult>& round) {
      std::vector<std::pair<int64_t, double>> trained;  // (model, seconds)
      for (const auto& r : round) {
        const ModelMeasurement mm = ModelMeasurement::unpack(r);
        out_.measured[r.key].assign(mm.values.begin(), mm.values.end() - 1);
        accuracy[r.key] = mm.values.back();
        ++(mm.trained ? out_.subsets_trained : out_.subsets_loaded);
        if (mm.trained) trained.emplace_back(r.key, mm.seconds);
      }
      clock.round(round.size(), static_cast<int64_t>(trained.size()));
      for (const auto& [m, seconds] : trained)
        line(fmt::format("subset model {}/{} trained in {:.1f}s (ETA {})", m + 1, s_.subsets, seconds, clock.eta()));
    });
    out_.subset_seconds = clock.seconds();
    // Summed in model order, as one process sums them.
    out_.mean_subset_accuracy = 0;
    for (const double a : accuracy) out_.mean_subset_accuracy += a / s_.subsets;
    if (out_.subsets_loaded) line(fmt::format("{} subset models read from the cache", out_.subsets_loaded));
  }

  // Models retrained with the base model's seed on D without one example each, one a rank at a
  // time as the subset models.
  void leave_one_out() {
    if (s_.loo == 0) return;
    const int64_t n = data_.train.n;
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    Rng rng = stream(s_.spec.seed, Stream::kBenchmarkLoo);
    rng.shuffle(order);
    const auto base_losses = evaluate(*base_, queries_).losses;
    out_.loo_indices.assign(order.begin(), order.begin() + s_.loo);
    out_.loo_delta.assign(static_cast<size_t>(s_.loo), {});
    RoundClock clock(s_.loo);
    const auto job = [&](int64_t e) {
      check_interrupt("before leave-one-out model {}", e + 1);
      std::vector<uint8_t> keep(static_cast<size_t>(n), 1);
      keep[order[e]] = 0;
      return model_job(cache_file(fmt::format("loo-{:05d}.safetensors", order[e])), s_.spec.seed, kept_rows(keep),
                       fmt::format("leave out {}", order[e]), [&](Module& model) {
                         const auto losses = evaluate(model, queries_).losses;
                         return std::vector<double>(losses.begin(), losses.end());
                       });
    };
    parallel::run_in_rounds(parallel::dealt_round_robin(s_.loo), job, [&](const std::vector<parallel::JobResult>& round) {
      std::vector<int64_t> trained;
      for (const auto& r : round) {
        const ModelMeasurement mm = ModelMeasurement::unpack(r);
        auto& delta = out_.loo_delta[r.key];
        for (size_t j = 0; j < mm.values.size(); ++j) delta.push_back(mm.values[j] - base_losses[j]);
        ++(mm.trained ? out_.loo_trained : out_.loo_loaded);
        if (mm.trained) trained.push_back(r.key);
      }
      clock.round(round.size(), static_cast<int64_t>(trained.size()));
      for (const int64_t e : trained)
        line(fmt::format("leave-one-out model {}/{} trained (ETA {})", e + 1, s_.loo, clock.eta()));
    });
  }

  // Per query, the Spearman and the Pearson correlation over the left-out examples of the
  // measured change against −r_q(z); their means over the queries.
  std::pair<double, double> loo_correlation(const std::vector<std::vector<double>>& scores) const {
    if (out_.loo_indices.size() < 2) return {NAN, NAN};
    double rank = 0, value = 0;
    for (size_t j = 0; j < scores.size(); ++j) {
      std::vector<double> predicted, measured;
      for (size_t e = 0; e < out_.loo_indices.size(); ++e) {
        predicted.push_back(-scores[j][out_.loo_indices[e]]);
        measured.push_back(out_.loo_delta[e][j]);
      }
      rank += spearman(predicted, measured);
      value += pearson(predicted, measured);
    }
    const double q = static_cast<double>(scores.size());
    return {rank / q, value / q};
  }

  // For each searched query, the smallest k of the grid whose top-k removal (retrained with the
  // base seed) makes the model classify it correctly; -1 when none of the grid does. A query's
  // search is sequential (the next k only when the last did not flip it); rank r of N searches
  // queries r, r + N, ..., one model a round, and every rank follows every search from the
  // rounds' results.
  // A model's file is named by its key (model_key: the examples it keeps), so a search reads
  // back exactly the models of the removals it asks for, whichever query or method asked first.
  std::vector<int64_t> brittleness(const MethodVariant& v, const std::vector<std::vector<double>>& scores,
                                   BenchmarkMethod& bm) {
    const int64_t searched = std::min<int64_t>(s_.brittleness, queries_.n);
    const auto& ks = s_.brittleness_ks;
    const auto grid = static_cast<int64_t>(ks.size());
    std::vector<int64_t> found(static_cast<size_t>(searched), -1);
    // Per query, the index in the grid of the next k to try; `grid` once its search has ended.
    std::vector<int64_t> next_k(static_cast<size_t>(searched), 0);
    const auto advance = [&](int64_t j, int64_t to) {
      next_k[j] = to < grid && ks[to] < data_.train.n ? to : grid;
    };
    for (int64_t j = 0; j < searched; ++j) advance(j, 0);
    const int rank = parallel::comm().rank(), ranks = parallel::comm().size();
    const auto next = [&]() -> std::optional<int64_t> {
      for (int64_t j = rank; j < searched; j += ranks)
        if (next_k[j] < grid) return j * grid + next_k[j];
      return std::nullopt;
    };
    const auto job = [&](int64_t key) {
      const int64_t j = key / grid, k = ks[key % grid];
      check_interrupt("in the brittleness search of {}", v.label);
      std::vector<uint8_t> keep(static_cast<size_t>(data_.train.n), 1);
      for (int64_t i : causes_top_k(scores[j], k)) keep[i] = 0;
      const auto query = data::take(queries_, std::vector<int64_t>{j});
      const auto rows = kept_rows(keep);
      return model_job(cache_file(fmt::format("brittle-{}.safetensors", key_of(s_.spec.seed, rows))), s_.spec.seed, rows,
                       fmt::format("{} brittleness q{} k={}", v.label, j, k), [&](Module& model) {
                         return std::vector<double>{evaluate(model, query).predictions[0] == query.labels[0] ? 1.0 : 0.0};
                       });
    };
    parallel::run_in_rounds(next, job, [&](const std::vector<parallel::JobResult>& round) {
      for (const auto& r : round) {
        const int64_t j = r.key / grid, at = r.key % grid;
        const ModelMeasurement mm = ModelMeasurement::unpack(r);
        ++(mm.trained ? bm.brittleness_trained : bm.brittleness_loaded);
        if (mm.values.at(0) != 0) {
          found[j] = ks[at];
          next_k[j] = grid;
        } else {
          advance(j, at + 1);
        }
      }
    });
    return found;
  }

  void score(const MethodVariant& v) {
    IdentifyOptions io = s_.identify;
    io.method = v.method;
    if (!v.solver.empty()) io.solve.solver = v.solver;
    io.seed = s_.spec.seed;
    io.fisher.seed = stream_seed(s_.spec.seed, Stream::kFisherLabels);
    io.recipe = TrainingRecipe{s_.model, s_.spec.seed,
                               base_training(s_.spec.seed, s_.epochs, s_.batch, s_.lr, std::nullopt, s_.optimizer)};
    io.progress = [&](const std::string& stage, int64_t done, int64_t total) { update(v.label + " " + stage, done, total); };
    const QueryScores q = identify_per_query(*base_, data_.train, queries_, io);
    BenchmarkMethod bm;
    bm.label = v.label;
    bm.seconds = q.seconds;
    bm.lds = linear_datamodeling_score(q.scores, masks_, out_.measured, s_.bootstrap,
                                       stream_seed(s_.spec.seed, Stream::kBootstrap));
    std::vector<double> total(static_cast<size_t>(data_.train.n), 0.0);
    for (const auto& r : q.scores)
      for (size_t i = 0; i < r.size(); ++i) total[i] += r[i];
    bm.measured = out_.n_corrupted > 0;
    if (bm.measured) bm.detection = detection(total, data_.noisy, 50);
    for (const auto& mask : masks_) {
      double p = 0;
      for (size_t i = 0; i < mask.size(); ++i)
        if (mask[i]) p += q.scores[0][i];
      bm.predicted.push_back(p);
    }
    std::tie(bm.loo, bm.loo_pearson) = loo_correlation(q.scores);
    line(fmt::format("{:<12} {:7.2f}s  LDS {:.3f} [{:.3f}, {:.3f}]{}{}", v.label, bm.seconds, bm.lds.mean, bm.lds.lo,
                     bm.lds.hi, bm.measured ? fmt::format("  mislabel AUC {:.3f}", bm.detection.roc_auc) : "",
                     std::isfinite(bm.loo) ? fmt::format("  LOO Spearman {:.3f} Pearson {:.3f}", bm.loo, bm.loo_pearson)
                                           : ""));
    if (s_.brittleness > 0) bm.brittle_k = brittleness(v, q.scores, bm);
    out_.methods.push_back(std::move(bm));
  }

  const BenchmarkSettings& s_;
  const BenchmarkHooks& h_;
  BenchmarkResults& out_;
  data::PreparedData data_;
  uint64_t data_fingerprint_ = 0;
  std::unique_ptr<Module> base_;
  data::ImageSet queries_;
  std::vector<std::vector<uint8_t>> masks_;
};

}  // namespace

std::vector<std::string> default_benchmark_methods() {
  return {"ewc", "kfac-ewc", "linear:diag", "linear:kfac", "ekfac", "linear:cg", "tracin", "trak", "gradcos", "loss",
          "random"};
}

void validate(const BenchmarkSettings& s) {
  data::validate_values(s.spec);  // before --subset is compared with anything
  if (s.methods.empty()) throw UsageError("--methods: at least one method");
  for (const auto& label : s.methods) {
    const MethodVariant v = parse_method_variant(label);
    IdentifyOptions io = s.identify;
    io.method = v.method;
    if (!v.solver.empty()) io.solve.solver = v.solver;
    validate(io, std::max<int64_t>(s.spec.subset, 1), 1);
  }
  if (s.subsets < 2) throw UsageError(fmt::format("--subsets {}: must be >= 2 (a correlation needs two models)", s.subsets));
  if (!(s.alpha > 0 && s.alpha < 1)) throw UsageError(fmt::format("--alpha {}: must be in (0, 1)", s.alpha));
  if (s.queries < 1) throw UsageError(fmt::format("--queries {}: must be >= 1", s.queries));
  if (s.queries_from != "test" && s.queries_from != "failures")
    throw UsageError(fmt::format("--queries-from {}: must be test or failures", s.queries_from));
  validate(s.optimizer);
  if (s.bootstrap < 1) throw UsageError(fmt::format("--bootstrap {}: must be >= 1", s.bootstrap));
  if (s.loo < 0 || s.loo == 1 || (s.spec.subset > 0 && s.loo >= s.spec.subset))
    throw UsageError(fmt::format("--loo {}: must be 0 (off) or in [2, the training set size)", s.loo));
  if (s.brittleness < 0) throw UsageError(fmt::format("--brittleness {}: must be >= 0", s.brittleness));
  for (size_t i = 0; i < s.brittleness_ks.size(); ++i)
    if (s.brittleness_ks[i] < 1 || (i > 0 && s.brittleness_ks[i] <= s.brittleness_ks[i - 1]))
      throw UsageError("--brittleness-ks: positive and increasing");
  if (s.brittleness > 0 && s.brittleness_ks.empty()) throw UsageError("--brittleness-ks: at least one k");
  if (s.epochs < 1) throw UsageError(fmt::format("--epochs {}: must be >= 1", s.epochs));
  if (s.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", s.batch));
  if (!(s.lr > 0)) throw UsageError(fmt::format("--lr {}: must be > 0", s.lr));
  if (s.out_dir.empty()) throw UsageError("--out-dir: required");
  data::validate_spec(s.spec);
}

Lds linear_datamodeling_score(const std::vector<std::vector<double>>& scores,
                              const std::vector<std::vector<uint8_t>>& masks,
                              const std::vector<std::vector<double>>& measured, int bootstrap, uint64_t seed) {
  const size_t q = scores.size(), m = masks.size();
  if (measured.size() != m) fail("lds: {} subsets but outputs of {}", m, measured.size());
  if (m < 2) fail("lds: {} subsets (a correlation needs two)", m);
  Lds out;
  out.queries = static_cast<int64_t>(q);
  if (q == 0) {
    out.mean = out.lo = out.hi = NAN;
    return out;
  }
  std::vector<std::vector<double>> predicted(q, std::vector<double>(m, 0.0)), actual(q, std::vector<double>(m));
  for (size_t j = 0; j < q; ++j) {
    for (size_t s = 0; s < m; ++s) {
      if (masks[s].size() != scores[j].size())
        fail("lds: a mask of {} examples for scores of {}", masks[s].size(), scores[j].size());
      if (measured[s].size() != q) fail("lds: {} outputs for {} queries", measured[s].size(), q);
      for (size_t i = 0; i < masks[s].size(); ++i)
        if (masks[s][i]) predicted[j][s] += scores[j][i];
      actual[j][s] = measured[s][j];
    }
    out.per_query.push_back(spearman(predicted[j], actual[j]));
  }
  out.mean = std::accumulate(out.per_query.begin(), out.per_query.end(), 0.0) / static_cast<double>(q);
  // The interval resamples the subset models as well as the queries: the queries share the
  // models, so a part of every query's correlation (a model better or worse on all of them) is
  // common to all, and resampling the queries alone would take M models' worth of evidence for Q
  // independent ones.
  Rng rng(seed);
  std::vector<double> means(static_cast<size_t>(bootstrap)), p(m), a(m);
  std::vector<size_t> models(m);
  for (auto& b : means) {
    for (auto& x : models) x = rng.below(m);
    double sum = 0;
    for (size_t t = 0; t < q; ++t) {
      const size_t j = rng.below(q);
      for (size_t s = 0; s < m; ++s) p[s] = predicted[j][models[s]], a[s] = actual[j][models[s]];
      sum += spearman(p, a);
    }
    b = sum / static_cast<double>(q);
  }
  std::sort(means.begin(), means.end());
  auto percentile = [&](double f) {
    const double pos = f * static_cast<double>(means.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos)), hi = std::min(lo + 1, means.size() - 1);
    return means[lo] + (pos - static_cast<double>(lo)) * (means[hi] - means[lo]);
  };
  out.lo = percentile(0.025);
  out.hi = percentile(0.975);
  return out;
}

BenchmarkResults run_benchmark(const BenchmarkSettings& settings, const BenchmarkHooks& hooks) {
  validate(settings);
  const auto t0 = Clock::now();
  BenchmarkResults out;
  out.settings = settings;
  if (out.settings.model.empty()) out.settings.model = default_model(settings.spec.dataset);
  Benchmark b(out.settings, hooks, out);
  b.run();
  out.seconds_total = since(t0);
  return out;
}

}  // namespace lethe::repair
