// `lethe experiment`: the paper's evaluation protocol (shared/docs/method.md) in one command.
// For each seed: build the noisy D, train the base model, derive Fq/Fh/R, score D with every
// method, remove the top k for each k and fine-tune, apply the other treatments at the largest
// k, and write results.json, results.csv, report.md and the figures.
#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include <nlohmann/json.hpp>

#include "datasets/transforms.h"
#include "kernels/cpu/blas.h"
#include "nn/models.h"
#include "learning/train.h"
#include "repair/identify.h"
#include "repair/metrics.h"
#include "repair/params.h"
#include "repair/treat.h"
#include "report/svg.h"
#include "tools/lethe/cli.h"
#include "tools/lethe/experiment_config.h"
#include "tools/lethe/scores_io.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/streams.h"

namespace lethe::cli {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct ExperimentArgs {
  std::string config, out_dir;
  data::DataSpec spec;
  std::string model;  // empty: the dataset's default
  AugmentFlags augment;
  int epochs = 20;
  int64_t batch = 64;
  double lr = 1e-3;
  std::vector<std::string> methods = {"ewc", "kfac-ewc", "linear", "tracin", "gradcos", "loss", "random"};
  std::vector<int64_t> ks = {250, 500, 1000};
  std::vector<std::string> treatments = {"newton", "ewc-delete"};
  int seeds = 1;
  bool json = false;
};

// Settings from a JSON config file; flags given on the command line win.
void apply_config(ExperimentArgs& a, const CLI::App& cmd) {
  if (a.config.empty()) return;
  const ExperimentConfig c = parse_experiment_config(read_file(a.config), a.config);
  auto take = [&](const auto& value, const char* flag, auto& field) {
    if (value && cmd.count(flag) == 0) field = *value;
  };
  take(c.dataset, "--dataset", a.spec.dataset);
  take(c.data, "--data", a.spec.dir);
  take(c.subset, "--subset", a.spec.subset);
  take(c.noise, "--noise", a.spec.noise);
  take(c.noise_fraction, "--noise-fraction", a.spec.noise_fraction);
  take(c.noise_amount, "--noise-amount", a.spec.noise_amount);
  take(c.victim_epochs, "--victim-epochs", a.spec.victim_epochs);
  take(c.model, "--model", a.model);
  take(c.epochs, "--epochs", a.epochs);
  take(c.batch, "--batch", a.batch);
  take(c.lr, "--lr", a.lr);
  take(c.methods, "--methods", a.methods);
  take(c.ks, "--ks", a.ks);
  take(c.treatments, "--treatments", a.treatments);
  take(c.seeds, "--seeds", a.seeds);
}

void validate_settings(const ExperimentArgs& a) {
  const auto& methods = repair::identify_methods();
  if (a.methods.empty()) throw UsageError("--methods: at least one method");
  for (const auto& m : a.methods)
    if (std::find(methods.begin(), methods.end(), m) == methods.end())
      throw UsageError(fmt::format("--methods: unknown method '{}' (known: ewc, kfac-ewc, linear, tracin, gradcos, loss, random)", m));
  for (const auto& t : a.treatments)
    if (t != "newton" && t != "ewc-delete" && t != "retrain" && t != "finetune")
      throw UsageError(fmt::format("--treatments: unknown treatment '{}' (known: newton, ewc-delete, retrain)", t));
  if (a.ks.empty()) throw UsageError("--ks: at least one k");
  const int64_t n = a.spec.subset;
  for (int64_t k : a.ks)
    if (k < 1 || (n > 0 && k >= n))
      throw UsageError(fmt::format("--ks: k = {} must be in [1, {}) (the training set size)", k, n));
  if (a.seeds < 1) throw UsageError(fmt::format("--seeds {}: must be >= 1", a.seeds));
  if (a.epochs < 1) throw UsageError(fmt::format("--epochs {}: must be >= 1", a.epochs));
  if (a.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", a.batch));
  if (!(a.lr > 0)) throw UsageError(fmt::format("--lr {}: must be > 0", a.lr));
  data::validate_spec(a.spec);
  check_model_fits(a.model, a.spec.dataset);
  data::check_data_folder(a.spec);
  if (std::filesystem::exists(a.out_dir) && !std::filesystem::is_directory(a.out_dir))
    fail("--out-dir '{}' exists and is not a folder", a.out_dir);
}

struct Row {  // one (method, k, treatment) outcome of one seed
  uint64_t seed;
  std::string method, treatment;
  int64_t k;
  double fq, fh, r, seconds;
};

struct MethodScore {
  uint64_t seed;
  std::string method;
  double recall_at_k = NAN, roc_auc = NAN, precision_positive = NAN, seconds = 0;
  int64_t n_positive = 0;
  std::vector<repair::CurvePoint> curve;
};

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? NAN : s / static_cast<double>(v.size());
}
double stdev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}
// The removal sizes a method was fine-tuned at, in the order first run.
std::vector<int64_t> sizes_of(const std::vector<Row>& rows, const std::string& method) {
  std::vector<int64_t> out;
  for (const auto& r : rows)
    if (r.method == method && r.treatment == "finetune" && std::find(out.begin(), out.end(), r.k) == out.end())
      out.push_back(r.k);
  return out;
}

std::string pm(const std::vector<double>& v) {
  return v.size() > 1 ? fmt::format("{:.3f} ± {:.3f}", mean(v), stdev(v)) : fmt::format("{:.3f}", mean(v));
}

void run_experiment(const GlobalOptions& global, ExperimentArgs& a, const CLI::App& cmd) {
  apply_config(a, cmd);
  const Device device = setup(global);
  if (a.model.empty()) a.model = default_model(a.spec.dataset);
  validate_settings(a);
  const bool augment = a.augment.resolve(a.spec.dataset);
  std::filesystem::create_directories(a.out_dir);
  Progress progress(global.quiet);
  const auto t_all = Clock::now();
  const bool noisy = a.spec.noise != "none";
  std::vector<Row> rows;
  std::vector<MethodScore> scores;
  std::vector<double> base_test;
  nlohmann::json per_seed = nlohmann::json::array();

  for (int s = 0; s < a.seeds; ++s) {
    data::DataSpec spec = a.spec;
    spec.seed = global.seed + static_cast<uint64_t>(s);
    progress.line(fmt::format("== seed {} ({}/{})", spec.seed, s + 1, a.seeds));
    const auto d = load_data(spec, device, progress);
    auto model = init_base_model(a.model, spec.seed);
    model->to(device);
    std::optional<data::Augmentation> augmentation;
    if (augment) augmentation = data::training_augmentation(d);
    TrainOptions to = base_training(spec.seed, a.epochs, a.batch, a.lr, augmentation);
    to.on_batch = [&](int64_t done, int64_t total) { progress.update("train", done, total); };
    to.on_epoch = [&](const EpochStats& e) {
      if (e.epoch == e.epochs || e.epoch % 5 == 0)
        progress.line(fmt::format("train epoch {}/{}: loss {:.4f}, train acc {:.4f}", e.epoch, e.epochs, e.loss, e.accuracy));
    };
    const auto t_train = Clock::now();
    train_classifier(*model, d.train, to);
    const double train_seconds = since(t_train);
    const auto test_eval = evaluate(*model, d.test);
    base_test.push_back(test_eval.accuracy);
    const auto split = repair::split_failures(test_eval.predictions, d.test.labels, spec.seed);
    const auto fq = data::take(d.test, split.fq), fh = data::take(d.test, split.fh), rest = data::take(d.test, split.remaining);
    progress.line(fmt::format("base model: test accuracy {:.4f}, |Fq| = {}, |Fh| = {}", test_eval.accuracy, fq.n, fh.n));
    const repair::ModelSnapshot trained = repair::snapshot(*model);
    const int64_t n_noisy = std::count(d.noisy.begin(), d.noisy.end(), 1);
    auto accuracies = [&](Module& m) {
      return std::array<double, 3>{fq.n ? evaluate(m, fq).accuracy : 0.0, fh.n ? evaluate(m, fh).accuracy : 0.0,
                                   rest.n ? evaluate(m, rest).accuracy : 0.0};
    };
    const auto base_acc = accuracies(*model);
    rows.push_back({spec.seed, "none", "none", 0, base_acc[0], base_acc[1], base_acc[2], 0});

    // Step I for every method (and the oracle when the corruption is known).
    std::vector<std::pair<std::string, std::vector<double>>> ranked;
    for (const auto& m : a.methods) {
      repair::IdentifyOptions io;
      io.method = m;
      io.seed = spec.seed;
      io.fisher.seed = stream_seed(spec.seed, Stream::kFisherLabels);
      io.progress = [&](const std::string& stage, int64_t done, int64_t total) { progress.update(m + " " + stage, done, total); };
      const auto r = repair::identify(*model, d.train, fq, io);
      MethodScore ms;
      ms.seed = spec.seed;
      ms.method = m;
      ms.seconds = r.seconds;
      ms.n_positive = static_cast<int64_t>(repair::causes_positive(r.scores).size());
      if (noisy) {
        ms.recall_at_k = repair::recall_at_k(r.scores, d.noisy, n_noisy);
        ms.roc_auc = repair::roc_auc(r.scores, d.noisy);
        ms.precision_positive = repair::precision(repair::causes_positive(r.scores), d.noisy);
        ms.curve = repair::recall_curve(r.scores, d.noisy, 50);
      }
      progress.line(fmt::format("{:<9} {:6.2f}s  recall@{} {:.3f}  AUC {:.3f}", m, r.seconds, n_noisy, ms.recall_at_k, ms.roc_auc));
      scores.push_back(ms);
      if (s == 0 && m == a.methods.front())
        write_cause_grid((std::filesystem::path(a.out_dir) / ("causes_" + m + ".png")).string(), d.train, r.scores,
                         noisy ? &d.noisy : nullptr, 48, fmt::format("top causes by {}, seed {}", m, spec.seed));
      ranked.emplace_back(m, r.scores);
    }
    if (noisy) ranked.emplace_back("oracle", std::vector<double>(d.noisy.begin(), d.noisy.end()));

    // Step II: remove the top k and fine-tune, for every method and k.
    for (const auto& [m, sc] : ranked) {
      // The oracle removes at most the corrupted set: each distinct size once.
      std::vector<int64_t> sizes;
      for (int64_t k : a.ks) {
        const int64_t kk = m == "oracle" ? std::min<int64_t>(k, n_noisy) : k;
        if (std::find(sizes.begin(), sizes.end(), kk) == sizes.end()) sizes.push_back(kk);
      }
      for (int64_t k : sizes) {
        repair::restore(*model, trained);
        repair::TreatOptions t;
        t.treatment = "finetune";
        t.seed = spec.seed;
        t.augment = augmentation;
        // A named copy: clang before 16 cannot capture a structured binding (the fuzz build's).
        t.progress = [&, method = m](const std::string& stage, int64_t done, int64_t total) {
          progress.update(fmt::format("{} k={} {}", method, k, stage), done, total);
        };
        const auto tr = repair::treat(*model, d.train, repair::causes_top_k(sc, k), fq, t);
        const auto acc = accuracies(*model);
        rows.push_back({spec.seed, m, "finetune", k, acc[0], acc[1], acc[2], tr.seconds});
      }
      const auto& last = rows.back();
      progress.line(fmt::format("{:<9} remove top {} + finetune: Fq {:.3f}  Fh {:.3f}  R {:.3f}", m, last.k, last.fq, last.fh, last.r));
    }
    // The other treatments at the largest k, on the first method's causes.
    const int64_t kmax = *std::max_element(a.ks.begin(), a.ks.end());
    for (const auto& tname : a.treatments) {
      if (tname == "finetune") continue;
      repair::restore(*model, trained);
      repair::TreatOptions t;
      t.treatment = tname;
      t.seed = spec.seed;
      t.augment = augmentation;
      t.progress = [&](const std::string& stage, int64_t done, int64_t total) { progress.update(tname + " " + stage, done, total); };
      const auto tr = repair::treat(*model, d.train, repair::causes_top_k(ranked.front().second, kmax), fq, t);
      const auto acc = accuracies(*model);
      rows.push_back({spec.seed, ranked.front().first, tname, kmax, acc[0], acc[1], acc[2], tr.seconds});
      progress.line(fmt::format("{} + {} (top {}): Fq {:.3f}  Fh {:.3f}  R {:.3f}  {:.1f}s", ranked.front().first, tname, kmax,
                                acc[0], acc[1], acc[2], tr.seconds));
    }
    per_seed.push_back({{"seed", spec.seed}, {"train_seconds", train_seconds}, {"test_accuracy", test_eval.accuracy},
                        {"n_fq", fq.n}, {"n_fh", fh.n}, {"n_corrupted", n_noisy}});
  }

  // ---- outputs ----
  const auto path = [&](const std::string& name) { return (std::filesystem::path(a.out_dir) / name).string(); };
  nlohmann::json j;
  j["settings"] = {{"dataset", a.spec.dataset}, {"data", data::data_dir(a.spec)}, {"model", a.model},
                   {"augment", augment}, {"subset", a.spec.subset}, {"noise", a.spec.noise},
                   {"noise_fraction", a.spec.noise_fraction}, {"noise_amount", data::noise_amount(a.spec)},
                   {"victim_epochs", a.spec.victim_epochs}, {"epochs", a.epochs}, {"batch", a.batch}, {"lr", a.lr}, {"methods", a.methods}, {"ks", a.ks},
                   {"treatments", a.treatments}, {"seeds", a.seeds}, {"first_seed", global.seed}};
  j["device"] = device_name(device);
  j["tf32"] = global.tf32 && device == Device::CUDA;
  j["threads"] = cpu::num_threads();
  j["git_commit"] = LETHE_GIT_COMMIT;
  j["version"] = LETHE_VERSION;
  j["seconds_total"] = since(t_all);
  j["per_seed"] = per_seed;
  j["identification"] = nlohmann::json::array();
  for (const auto& ms : scores) {
    nlohmann::json e = {{"seed", ms.seed}, {"method", ms.method}, {"seconds", ms.seconds}, {"n_positive", ms.n_positive}};
    if (noisy) {
      e["recall_at_k"] = ms.recall_at_k;
      e["roc_auc"] = ms.roc_auc;
      e["precision_positive"] = ms.precision_positive;
      e["recall_curve"] = nlohmann::json::array();
      for (const auto& p : ms.curve) e["recall_curve"].push_back({p.fraction, p.recall});
    }
    j["identification"].push_back(e);
  }
  j["repair"] = nlohmann::json::array();
  std::string csv = "seed,method,treatment,k,accuracy_fq,accuracy_fh,accuracy_r,seconds,recall_at_k,roc_auc,identify_seconds\n";
  for (const auto& r : rows) {
    j["repair"].push_back({{"seed", r.seed}, {"method", r.method}, {"treatment", r.treatment}, {"k", r.k},
                           {"accuracy_fq", r.fq}, {"accuracy_fh", r.fh}, {"accuracy_r", r.r}, {"seconds", r.seconds}});
    const MethodScore* ms = nullptr;
    for (const auto& m : scores)
      if (m.seed == r.seed && m.method == r.method) ms = &m;
    csv += fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f},{:.3f},{},{},{}\n", r.seed, r.method, r.treatment, r.k, r.fq, r.fh,
                       r.r, r.seconds, ms && noisy ? fmt::format("{:.6f}", ms->recall_at_k) : "",
                       ms && noisy ? fmt::format("{:.6f}", ms->roc_auc) : "", ms ? fmt::format("{:.3f}", ms->seconds) : "");
  }
  write_file_atomic(path("results.json"), j.dump(2) + "\n");
  write_file_atomic(path("results.csv"), csv);

  // Figures.
  std::vector<std::string> figure_methods = a.methods;
  if (noisy) figure_methods.push_back("oracle");
  if (noisy) {
    report::Chart curve{"Detection: recall of the corrupted examples", "fraction of D inspected (in score order)",
                        "recall", 0, 1, 0, 1, {}};
    for (const auto& m : a.methods) {
      report::Series series{m, {}, {}, "", m == "random"};
      // Mean curve over seeds.
      std::vector<const MethodScore*> ms;
      for (const auto& x : scores)
        if (x.method == m) ms.push_back(&x);
      for (size_t p = 0; p < ms.front()->curve.size(); ++p) {
        double r = 0;
        for (const auto* x : ms) r += x->curve[p].recall;
        series.x.push_back(ms.front()->curve[p].fraction);
        series.y.push_back(r / static_cast<double>(ms.size()));
      }
      curve.series.push_back(series);
    }
    write_file_atomic(path("recall_curve.svg"), report::render_svg(curve));
  }
  for (const std::string which : {"Fh", "R"}) {
    report::Chart chart{fmt::format("{} accuracy after removing the top k and fine-tuning", which), "k (examples removed)",
                        fmt::format("{} accuracy", which), report::kAuto, report::kAuto, 0, 1, {}};
    for (const auto& m : figure_methods) {
      report::Series series{m, {}, {}, "", m == "random" || m == "oracle"};
      for (int64_t k : sizes_of(rows, m)) {
        std::vector<double> v;
        for (const auto& r : rows)
          if (r.method == m && r.treatment == "finetune" && r.k == k) v.push_back(which == "Fh" ? r.fh : r.r);
        series.x.push_back(static_cast<double>(k));
        series.y.push_back(mean(v));
      }
      chart.series.push_back(series);
    }
    write_file_atomic(path(which == "Fh" ? "fh_vs_k.svg" : "r_vs_k.svg"), report::render_svg(chart));
  }

  // Report.
  std::string md = "# lethe experiment\n\n";
  md += fmt::format("{} ({} training examples, noise: {}), {} trained {} epochs (Adam {}, batch {}); {} seed(s) "
                    "from {}; device {}, {} threads; lethe {} ({}); {:.0f} s in all.\n\n",
                    a.spec.dataset, a.spec.subset, data::describe_noise(a.spec), a.model, a.epochs, a.lr, a.batch, a.seeds, global.seed,
                    device_name(device) + std::string(global.tf32 && device == Device::CUDA ? " (TF32)" : ""),
                    cpu::num_threads(), LETHE_VERSION, LETHE_GIT_COMMIT, since(t_all));
  md += fmt::format("Base model test accuracy: {}. Values are mean ± std over seeds.\n\n", pm(base_test));
  if (noisy) {
    md += "## Detection of the corrupted examples\n\n| method | recall@K | ROC AUC | precision of r>0 | r>0 | seconds |\n|---|---|---|---|---|---|\n";
    for (const auto& m : a.methods) {
      std::vector<double> rec, auc, prec, pos, sec;
      for (const auto& x : scores)
        if (x.method == m) {
          rec.push_back(x.recall_at_k), auc.push_back(x.roc_auc), prec.push_back(x.precision_positive);
          pos.push_back(static_cast<double>(x.n_positive)), sec.push_back(x.seconds);
        }
      md += fmt::format("| {} | {} | {} | {} | {:.0f} | {:.1f} |\n", m == "linear" ? "linear (diag)" : m, pm(rec), pm(auc), pm(prec), mean(pos), mean(sec));
    }
    md += "\nK = the number of corrupted examples. ![recall curve](recall_curve.svg)\n\n";
  }
  md += "## Repair: remove the top k, fine-tune\n\n| method | k | Fq | Fh | R |\n|---|---|---|---|---|\n";
  for (const auto& m : std::vector<std::string>{"none"}) {
    std::vector<double> f1, f2, f3;
    for (const auto& r : rows)
      if (r.method == m) f1.push_back(r.fq), f2.push_back(r.fh), f3.push_back(r.r);
    md += fmt::format("| original model | 0 | {} | {} | {} |\n", pm(f1), pm(f2), pm(f3));
  }
  for (const auto& m : figure_methods)
    for (int64_t k : sizes_of(rows, m)) {
      std::vector<double> f1, f2, f3;
      for (const auto& r : rows)
        if (r.method == m && r.treatment == "finetune" && r.k == k) f1.push_back(r.fq), f2.push_back(r.fh), f3.push_back(r.r);
      md += fmt::format("| {} | {} | {} | {} | {} |\n", m == "linear" ? "linear (diag)" : m, k, pm(f1), pm(f2), pm(f3));
    }
  md += "\n![Fh against k](fh_vs_k.svg) ![R against k](r_vs_k.svg)\n\n";
  if (!a.treatments.empty()) {
    md += fmt::format("## Treatments of the top {} by {}\n\n| treatment | Fq | Fh | R | seconds |\n|---|---|---|---|---|\n",
                      *std::max_element(a.ks.begin(), a.ks.end()), a.methods.front());
    for (const auto& t : a.treatments) {
      std::vector<double> f1, f2, f3, sec;
      for (const auto& r : rows)
        if (r.treatment == t) f1.push_back(r.fq), f2.push_back(r.fh), f3.push_back(r.r), sec.push_back(r.seconds);
      if (!f1.empty()) md += fmt::format("| {} | {} | {} | {} | {:.1f} |\n", t, pm(f1), pm(f2), pm(f3), mean(sec));
    }
    md += "\n";
  }
  md += fmt::format("Top causes by {} (first seed; red: known corrupted): ![causes](causes_{}.png)\n\nAll numbers: "
                    "`results.json`, `results.csv`.\n", a.methods.front(), a.methods.front());
  write_file_atomic(path("report.md"), md);
  if (a.json) {
    print_result(j.dump(2) + "\n");
  } else {
    print_result(md + fmt::format("\nreport: {}\n", path("report.md")));
  }
}

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

}  // namespace

void add_experiment_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("experiment", "The paper's evaluation: train, identify with every method, repair, report");
  auto a = std::make_shared<ExperimentArgs>();
  a->spec.noise = "label";
  auto methods = std::make_shared<std::string>(), ks = std::make_shared<std::string>(),
       treatments = std::make_shared<std::string>();
  cmd->add_option("--config", a->config, "JSON file of settings (keys as the flags: subset, noise, epochs, methods, ks, "
                                          "treatments, seeds, ...); flags given override it");
  cmd->add_option("--out-dir", a->out_dir, "Folder for results.json, results.csv, report.md and the figures")->required();
  add_data_options(cmd, a->spec);
  cmd->add_option("--model", a->model, "Base model: mnist-cnn | cifar-cnn (default: the dataset's)");
  add_augment_options(cmd, a->augment);
  cmd->add_option("--epochs", a->epochs, "Base model: training epochs")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Base model: batch size")->capture_default_str();
  cmd->add_option("--lr", a->lr, "Base model: Adam learning rate")->capture_default_str();
  cmd->add_option("--methods", *methods, "Comma-separated Step I methods (default: ewc,kfac-ewc,linear,tracin,gradcos,loss,random)");
  cmd->add_option("--ks", *ks, "Comma-separated numbers of top causes to remove (default: 250,500,1000)");
  cmd->add_option("--treatments", *treatments, "Comma-separated extra treatments at the largest k (default: newton,ewc-delete)");
  cmd->add_option("--seeds", a->seeds, "Number of seeds (the global --seed, then the next ones)")->capture_default_str();
  cmd->add_flag("--json", a->json, "Print results.json on stdout instead of the report");
  cmd->footer("Five seeds: lethe --seed 0 experiment --seeds 5 --out-dir runs/experiment5");
  cmd->callback([&global, a, cmd, methods, ks, treatments] {
    if (cmd->count("--methods")) a->methods = split_list<std::string>(*methods, "--methods");
    if (cmd->count("--ks")) a->ks = split_list<int64_t>(*ks, "--ks");
    if (cmd->count("--treatments")) a->treatments = split_list<std::string>(*treatments, "--treatments");
    run_experiment(global, *a, *cmd);
  });
}

}  // namespace lethe::cli
