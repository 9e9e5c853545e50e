// identify, treat, repair and experiment through the lethe binary, on a small synthetic
// MNIST-format folder: outputs complete and well-formed, bad settings refused before any work.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <algorithm>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tools/cli_harness.h"

namespace lethe::cli_test {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;
using Json = nlohmann::json;

Args with(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

size_t count_lines(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  std::string line;
  while (std::getline(in, line)) ++n;
  return n;
}

class Pipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir;
    write_synthetic_mnist(data());
    // A label-noise model: 200 examples, 3 quick epochs, one thread (quiet and reproducible).
    const auto r = run_lethe({"--quiet", "--threads", "1", "--seed", "5", "train", "--data", data(), "--subset", "200",
                              "--noise", "label", "--epochs", "3", "--batch", "32", "--out", model()});
    ASSERT_EQ(r.exit_code, 0) << describe(r);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string data() { return dir_->file("mnist"); }
  static std::string model() { return dir_->file("model.safetensors"); }
  static Args base(const std::string& cmd) {
    return {"--quiet", "--threads", "1", cmd, "--model-file", model(), "--data", data()};
  }
  TempDir work_;
  static TempDir* dir_;
};
TempDir* Pipeline::dir_ = nullptr;

TEST_F(Pipeline, IdentifyWritesScoresGridAndSummary) {
  const std::string csv = work_.file("ewc.csv"), grid = work_.file("ewc.png"), array = work_.file("ewc.safetensors");
  const auto r = run_lethe(with(base("identify"), {"--method", "ewc", "--out", csv, "--grid", grid, "--array", array, "--json"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["method"], "ewc");
  EXPECT_EQ(j["n_train"], 200);
  EXPECT_GT(j["n_fq"].get<int>(), 0);
  EXPECT_GE(j["recall_at_k"].get<double>(), 0.0);
  EXPECT_LE(j["roc_auc"].get<double>(), 1.0);
  EXPECT_EQ(count_lines(csv), 201u);  // header + one row per example
  EXPECT_TRUE(fs::file_size(grid) > 100);
  // The method's three phases account for its seconds (what is left between them is flattening
  // the parameters once); the setup before it is timed on its own.
  const double seconds = j["seconds"].get<double>();
  double phases = 0;
  for (const char* phase : {"seconds_fisher", "seconds_update", "seconds_score"}) {
    ASSERT_TRUE(j["stats"].contains(phase)) << phase;
    EXPECT_GT(j["stats"][phase].get<double>(), 0.0) << phase;
    phases += j["stats"][phase].get<double>();
  }
  EXPECT_LE(phases, seconds);
  EXPECT_GE(phases, 0.9 * seconds);
  EXPECT_GT(j["seconds_setup"].get<double>(), 0.0);
  // Peak memory: the whole process's resident set (D alone is 200 x 784 floats), and the GPU's
  // allocator figures only where the run was on the GPU.
  EXPECT_GT(j["host_peak_rss_bytes"].get<double>(), 200.0 * 784 * 4);
  EXPECT_FALSE(j["tf32"].get<bool>());
  if (j["device"] == "cuda") {
    EXPECT_GT(j["device_peak_bytes"].get<double>(), 0.0);
    EXPECT_GE(j["device_peak_reserved_bytes"].get<double>(), j["device_peak_bytes"].get<double>());
  } else {
    EXPECT_FALSE(j.contains("device_peak_bytes"));
  }
  const auto arr = load_safetensors(array);
  ASSERT_NE(arr.find("scores"), nullptr);
  EXPECT_EQ(arr.find("scores")->numel(), 200);
}

TEST_F(Pipeline, IdentifyRefusesBadInputWithoutWritingAnything) {
  const std::string csv = work_.file("s.csv");
  expect_error(run_lethe(with(base("identify"), {"--method", "magic", "--out", csv})), 2, {"--method", "magic"});
  std::ofstream(work_.file("failures.txt")) << "3\n99999\n";
  expect_error(run_lethe(with(base("identify"), {"--failures", work_.file("failures.txt"), "--out", csv})), 1,
               {"failures.txt", "99999"});
  expect_error(run_lethe(with(base("identify"), {"--solver", "qr", "--method", "linear", "--out", csv})), 2, {"--solver"});
  EXPECT_FALSE(fs::exists(csv));
}

// --failures gives Fq whatever the model predicts there; Fh is then the other misclassified
// examples and R the correctly classified ones outside Fq, so no index is in two of the three
// and together they are T (100 examples).
TEST_F(Pipeline, GivenFailuresKeepFqFhAndRApart) {
  const std::string every = work_.file("every.txt"), one = work_.file("one.txt");
  {
    std::ofstream all(every);
    for (int i = 0; i < 100; ++i) all << i << "\n";
    std::ofstream(one) << "0\n";
  }
  const auto all = run_lethe(with(base("identify"), {"--method", "loss", "--failures", every, "--out", work_.file("a.csv"), "--json"}));
  ASSERT_EQ(all.exit_code, 0) << describe(all);
  const Json a = Json::parse(all.out);
  EXPECT_EQ(a["n_fq"], 100);
  EXPECT_EQ(a["n_fh"], 0);
  EXPECT_EQ(a.value("n_r", -1), 0) << "R holds examples that are in Fq";
  EXPECT_GT(a["test_accuracy"].get<double>(), 0.0) << "the check needs some correctly classified examples in Fq";

  const auto single = run_lethe(with(base("identify"), {"--method", "loss", "--failures", one, "--out", work_.file("b.csv"), "--json"}));
  ASSERT_EQ(single.exit_code, 0) << describe(single);
  const Json b = Json::parse(single.out);
  EXPECT_EQ(b["n_fq"], 1);
  EXPECT_EQ(b["n_fq"].get<int>() + b["n_fh"].get<int>() + b.value("n_r", -1000), 100);
}

TEST_F(Pipeline, IdentifyEkfacWritesScoresAndReusesItsFactors) {
  const std::string csv = work_.file("ekfac.csv"), again = work_.file("again.csv"), factors = work_.file("f.safetensors");
  const auto r = run_lethe(with(base("identify"), {"--method", "ekfac", "--damping", "0.01", "--save-factors", factors,
                                                   "--out", csv, "--json"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["method"], "ekfac");
  EXPECT_EQ(j["n_train"], 200);
  EXPECT_EQ(count_lines(csv), 201u);
  const auto f = load_safetensors(factors);
  ASSERT_NE(f.find("0.QA"), nullptr);
  EXPECT_EQ(f.find("0.QA")->shape, (std::vector<int64_t>{26, 26}));  // conv1: 1·5·5 inputs and the bias
  ASSERT_NE(f.find("1.lambda"), nullptr);
  EXPECT_EQ(f.find("1.lambda")->shape, (std::vector<int64_t>{32, 801}));
  // Loaded factors give the same scores as the ones just computed.
  const auto r2 = run_lethe(with(base("identify"), {"--method", "ekfac", "--damping", "0.01", "--load-factors", factors,
                                                    "--out", again}));
  ASSERT_EQ(r2.exit_code, 0) << describe(r2);
  EXPECT_EQ(read_all(again), read_all(csv));
  // Bad input, each refused with one line and nothing written.
  const std::string bad = work_.file("bad.csv");
  expect_error(run_lethe(with(base("identify"), {"--method", "ekfac", "--damping", "0", "--out", bad})), 2, {"--damping"});
  expect_error(run_lethe(with(base("identify"), {"--method", "ekfac", "--load-factors", model(), "--out", bad})), 1,
               {"--load-factors", "not an EK-FAC factors file"});
  EXPECT_FALSE(fs::exists(bad));
}

// sgd-influence replays the run `lethe train` recorded in the checkpoint: on the same thread
// count it ends exactly at the model (distance 0), which checks the recorded recipe (seed, epochs,
// batch, Adam step and weight decay) rebuilds the run. A checkpoint without the record is refused.
TEST_F(Pipeline, IdentifySgdInfluenceReplaysTheRecordedRun) {
  const std::string csv = work_.file("sgd.csv");
  const auto r = run_lethe(with(base("identify"), {"--method", "sgd-influence", "--sgd-epochs", "1", "--out", csv, "--json"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["method"], "sgd-influence");
  EXPECT_EQ(j["stats"]["replay_distance"].get<double>(), 0.0);
  EXPECT_EQ(j["stats"]["steps_read"].get<double>(), 7.0);  // the last epoch's ceil(200 / 32) steps
  EXPECT_EQ(count_lines(csv), 201u);

  SafetensorsFile f = load_safetensors(model());
  for (auto it = f.metadata.begin(); it != f.metadata.end();)
    it = it->first.rfind("lethe.train.", 0) == 0 ? f.metadata.erase(it) : std::next(it);
  const std::string unrecorded = work_.file("unrecorded.safetensors"), bad = work_.file("bad.csv");
  save_safetensors(unrecorded, f);
  Args args = base("identify");
  args[5] = unrecorded;
  expect_error(run_lethe(with(args, {"--method", "sgd-influence", "--out", bad})), 2, {"sgd-influence", "lethe train"});
  expect_error(run_lethe(with(base("identify"), {"--method", "sgd-influence", "--sgd-curvature", "exact", "--out", bad})),
               2, {"--sgd-curvature"});
  EXPECT_FALSE(fs::exists(bad));
}

// A model trained with SGD records its optimiser; the commands that rebuild its run read it back
// (sgd-influence, which can only run Adam's steps backwards, then refuses it by name).
TEST_F(Pipeline, TrainWithSgdRecordsTheOptimiser) {
  const std::string sgd = work_.file("sgd-trained.safetensors");
  const auto t = run_lethe({"--quiet", "--threads", "1", "--seed", "2", "train", "--data", data(), "--subset", "200",
                            "--epochs", "1", "--batch", "32", "--lr", "0.01", "--optimizer", "sgd", "--momentum", "0.9",
                            "--out", sgd});
  ASSERT_EQ(t.exit_code, 0) << describe(t);
  const SafetensorsFile f = load_safetensors(sgd);
  EXPECT_EQ(f.metadata.at("lethe.train.optimizer"), "sgd");
  EXPECT_EQ(f.metadata.at("lethe.train.momentum"), "0.9");
  Args args = base("identify");
  args[5] = sgd;
  expect_error(run_lethe(with(args, {"--method", "sgd-influence", "--out", work_.file("x.csv")})), 1,
               {"sgd-influence", "trained with sgd"});
  expect_error(run_lethe({"--quiet", "train", "--data", data(), "--momentum", "0.5", "--out", work_.file("y")}), 2,
               {"--momentum", "--optimizer sgd"});
  expect_error(run_lethe({"--quiet", "train", "--data", data(), "--optimizer", "rmsprop", "--out", work_.file("y")}), 2,
               {"--optimizer", "rmsprop"});
}

TEST_F(Pipeline, TreatAndRepairProduceARepairedModelAndAReport) {
  const std::string csv = work_.file("scores.csv");
  ASSERT_EQ(run_lethe(with(base("identify"), {"--method", "tracin", "--out", csv})).exit_code, 0);
  const std::string repaired = work_.file("repaired.safetensors");
  const auto t = run_lethe(with(base("treat"), {"--scores", csv, "--top-k", "20", "--treatment", "finetune", "--finetune-stop",
                                                "fixed", "--epochs", "1", "--out", repaired, "--json"}));
  ASSERT_EQ(t.exit_code, 0) << describe(t);
  const Json j = Json::parse(t.out);
  EXPECT_EQ(j["n_causes"], 20);
  for (const char* part : {"before", "after"})
    for (const char* key : {"accuracy_fq", "accuracy_fh", "accuracy_r"}) {
      const double v = j[part][key].get<double>();
      EXPECT_GE(v, 0.0);
      EXPECT_LE(v, 1.0);
    }
  EXPECT_EQ(j["before"]["accuracy_fq"].get<double>(), 0.0);  // Fq are failures by definition
  EXPECT_NO_THROW(load_checkpoint(repaired));

  // The held-out rule says what it did: the kept epoch, and each evaluation with Fh and R beside.
  const auto h = run_lethe(with(base("treat"), {"--scores", csv, "--top-k", "20", "--finetune-stop", "heldout",
                                                "--finetune-max-epochs", "3", "--tradeoff", "--out", repaired}));
  ASSERT_EQ(h.exit_code, 0) << describe(h);
  EXPECT_NE(h.out.find("finetune (held-out rule): kept epoch"), std::string::npos) << h.out;
  EXPECT_NE(h.out.find("epoch   Fq      held-out   Fh      R"), std::string::npos) << h.out;
  // A flag of the rule not chosen is refused rather than ignored.
  expect_error(run_lethe(with(base("treat"), {"--scores", csv, "--top-k", "20", "--finetune-stop", "heldout", "--epochs",
                                              "4", "--out", repaired + "2"})),
               2, {"--epochs", "--finetune-max-epochs"});
  expect_error(run_lethe(with(base("treat"), {"--scores", csv, "--top-k", "20", "--finetune-stop", "fixed",
                                              "--finetune-patience", "4", "--out", repaired + "2"})),
               2, {"--finetune-patience", "fixed"});

  // Cause rules: exactly one, and within D.
  expect_error(run_lethe(with(base("treat"), {"--scores", csv, "--out", repaired + "2"})), 2, {"--top-k"});
  expect_error(run_lethe(with(base("treat"), {"--scores", csv, "--top-k", "5000", "--out", repaired + "2"})), 2, {"--top-k"});
  // Scores made for another D (a different subset) are refused.
  expect_error(run_lethe(with(base("treat"), {"--subset", "150", "--scores", csv, "--top-k", "5", "--out", repaired + "2"})),
               1, {"scores.csv"});
  EXPECT_FALSE(fs::exists(repaired + "2"));

  const std::string out = work_.file("repair");
  const auto r = run_lethe(with(base("repair"), {"--out-dir", out, "--top-k", "20", "--finetune-stop", "fixed", "--epochs", "1"}));
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const char* f : {"report.md", "summary.json", "scores.csv", "causes.png", "repaired.safetensors"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  const Json s = Json::parse(read_all((fs::path(out) / "summary.json").string()));
  EXPECT_EQ(s["n_causes"], 20);
  EXPECT_NE(read_all((fs::path(out) / "report.md").string()).find("| after |"), std::string::npos);
}

// Without a cause rule repair takes the top 1000; on a smaller D it says that this was the
// default and how to choose another rule, rather than naming a flag the user never gave.
TEST_F(Pipeline, RepairWithoutACauseRuleOnASmallDNamesTheDefault) {
  const std::string out = work_.file("repair");
  expect_error(run_lethe(with(base("repair"), {"--method", "loss", "--out-dir", out})), 2,
               {"default", "--top-k 1000", "200 training examples", "--top-fraction", "--positive"});
  EXPECT_FALSE(fs::exists(out));
}

// A cause rule's value out of range is refused as given, never read as "no rule given".
TEST_F(Pipeline, CauseRulesOutOfRangeAreRefusedAsGiven) {
  const std::string csv = work_.file("loss.csv");
  ASSERT_EQ(run_lethe(with(base("identify"), {"--method", "loss", "--out", csv})).exit_code, 0);
  const std::string out = work_.file("out");
  for (const Args& rule : {Args{"--top-k", "-5"}, Args{"--top-fraction", "-0.5"}, Args{"--top-fraction", "1.5"},
                           Args{"--top-fraction", "nan"}}) {
    SCOPED_TRACE(rule[0] + " " + rule[1]);
    expect_error(run_lethe(with(with(base("repair"), {"--method", "loss", "--out-dir", out}), rule)), 2,
                 {rule[0] + " " + rule[1]});
    expect_error(run_lethe(with(with(base("treat"), {"--scores", csv, "--out", out + ".safetensors"}), rule)), 2,
                 {rule[0] + " " + rule[1]});
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".safetensors"));
}

TEST_F(Pipeline, ExperimentRefusesBadSettingsBeforeTraining) {
  const std::string out = work_.file("exp");
  const Args exp = {"--quiet", "--threads", "1", "experiment", "--data", data(), "--subset", "200", "--out-dir", out};
  expect_error(run_lethe(with(exp, {"--methods", "ewc,oracle-of-delphi"})), 2, {"oracle-of-delphi"});
  expect_error(run_lethe(with(exp, {"--ks", "10,500"})), 2, {"--ks", "500"});
  expect_error(run_lethe(with(exp, {"--ks", "10", "--finetune-patience", "0"})), 2, {"--finetune-patience"});
  expect_error(run_lethe(with(exp, {"--ks", "10", "--finetune-stop", "fixed", "--finetune-tolerance", "0.1"})), 2,
               {"--finetune-tolerance", "fixed"});
  expect_error(run_lethe(with(exp, {"--ks", "10", "--fisher", "true"})), 2, {"--fisher", "true"});
  expect_error(run_lethe(with(exp, {"--ks", "10", "--fisher", "sampled", "--mc-samples", "0"})), 2, {"--mc-samples"});
  expect_error(run_lethe({"--quiet", "experiment", "--data", work_.file("nowhere"), "--out-dir", out}), 1, {"nowhere"});
  std::ofstream(work_.file("bad.json")) << "{\"seeds\": 2, \"colour\": \"blue\"}";
  expect_error(run_lethe(with(exp, {"--config", work_.file("bad.json")})), 2, {"colour"});
  std::ofstream(work_.file("fixed.json")) << R"({"finetune_stop": "fixed", "finetune_patience": 2})";
  expect_error(run_lethe(with(exp, {"--config", work_.file("fixed.json")})), 2, {"finetune_patience", "fixed"});
  EXPECT_FALSE(fs::exists(out)) << "a refused experiment created its output folder";
}

TEST_F(Pipeline, AdversarialNoiseIsRecordedAndRebuiltFromTheCheckpoint) {
  const std::string adv = work_.file("adv.safetensors");
  const auto t = run_lethe({"--threads", "1", "--seed", "3", "train", "--data", data(), "--subset", "200", "--noise",
                            "adversarial", "--noise-amount", "0.3", "--victim-epochs", "1", "--epochs", "1", "--batch",
                            "32", "--out", adv});
  ASSERT_EQ(t.exit_code, 0) << describe(t);
  EXPECT_NE(t.err.find("victim mnist-cnn trained 1 epochs"), std::string::npos) << t.err;
  EXPECT_NE(t.err.find("epsilon 0.3"), std::string::npos) << t.err;
  const auto meta = load_checkpoint(adv).metadata;
  EXPECT_EQ(meta.at("lethe.data.noise"), "adversarial");
  EXPECT_EQ(meta.at("lethe.data.noise_amount"), "0.3");
  EXPECT_EQ(meta.at("lethe.data.victim_epochs"), "1");
  // identify rebuilds the same poisoned D from what the checkpoint recorded: 30% of the ~80
  // images of classes 1,7,6,9 in the 200, scored against the mask.
  const auto r = run_lethe({"--quiet", "--threads", "1", "identify", "--model-file", adv, "--data", data(), "--method",
                            "loss", "--out", work_.file("adv.csv"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["noise"], "adversarial");
  EXPECT_GT(j["n_corrupted"].get<int64_t>(), 10);
  EXPECT_LT(j["n_corrupted"].get<int64_t>(), 40);
  expect_error(run_lethe({"--quiet", "train", "--data", data(), "--noise", "adversarial", "--victim-epochs", "0", "--out",
                          work_.file("never.safetensors")}),
               2, {"--victim-epochs"});
  expect_error(run_lethe({"--quiet", "train", "--data", data(), "--noise", "input", "--noise-fraction", "1.5", "--out",
                          work_.file("never.safetensors")}),
               2, {"--noise-fraction"});
  EXPECT_FALSE(fs::exists(work_.file("never.safetensors")));
}

TEST_F(Pipeline, ExperimentWritesResultsReportAndFigures) {
  const std::string out = work_.file("exp");
  std::ofstream(work_.file("config.json")) << R"({"subset": 200, "epochs": 2, "methods": ["ewc", "loss", "random"],
                                                   "ks": [10, 30], "treatments": ["newton"], "finetune_max_epochs": 3})";
  const auto r = run_lethe({"--quiet", "--threads", "1", "--seed", "2", "experiment", "--data", data(), "--config",
                            work_.file("config.json"), "--batch", "32", "--out-dir", out});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const Json j = Json::parse(read_all((fs::path(out) / "results.json").string()));
  EXPECT_EQ(j["settings"]["subset"], 200);
  EXPECT_EQ(j["settings"]["batch"], 32);  // the flag given overrides nothing in the file, and is kept
  EXPECT_EQ(j["settings"]["finetune"]["max_epochs"], 3);
  EXPECT_EQ(j["identification"].size(), 3u);
  // One original row, 3 methods x 2 ks fine-tuned, the oracle once per distinct size (at most
  // the corrupted count), one newton row, and the oracle gate's random removal at the oracle's
  // largest size unless random was already fine-tuned there, and the control that removes nothing.
  size_t oracle_rows = 0;
  int64_t oracle_k = 0;
  for (const auto& r : j["repair"])
    if (r["method"] == "oracle") ++oracle_rows, oracle_k = std::max<int64_t>(oracle_k, r["k"].get<int64_t>());
  EXPECT_GE(oracle_rows, 1u);
  EXPECT_LE(oracle_rows, 2u);
  const size_t control = oracle_k == 10 || oracle_k == 30 ? 0u : 1u;
  // ewc's C = {r > 0} once, when it is neither empty nor nearly all of D (loss scores are all
  // positive; random and the oracle are not asked).
  size_t positive = 0;
  for (const auto& r : j["repair"])
    if (r["cause_set"] == "r>0") {
      ++positive;
      EXPECT_EQ(r["method"], "ewc");
    }
  EXPECT_LE(positive, 1u);
  EXPECT_EQ(j["repair"].size(), 1u + 3u * 2u + oracle_rows + 1u + control + 1u + positive);
  EXPECT_EQ(j["settings"]["removal_treatment"], "finetune");
  ASSERT_TRUE(j.contains("oracle_gate"));
  EXPECT_EQ(j["oracle_gate"]["k"], oracle_k);
  const std::string md = read_all((fs::path(out) / "report.md").string());
  EXPECT_NE(md.find("Oracle gate:"), std::string::npos);
  // Against the paper: ewc's recall and seconds beside the paper's (one seed: the value itself);
  // no Fh row (no k = 1,000 here) and nothing for the methods that did not run.
  const std::string recall = fmt::format(
      "| MNIST, label noise | EWC-influence (`ewc`) | recall of the flipped labels (lethe: recall@K, K = the number flipped) "
      "| about 0.85 | {:.3f} |",
      j["identification"][0]["recall_at_k"].get<double>());
  EXPECT_NE(md.find(recall), std::string::npos) << recall << "\n" << md;
  EXPECT_NE(md.find("| EWC-influence (`ewc`) | identification, seconds | 9.8 (one Tesla K80) |"), std::string::npos);
  for (const char* absent : {"Fh after removing the top 1000", "linear influence", "SGD-influence"})
    EXPECT_EQ(md.find(absent), std::string::npos) << absent;
  for (const auto& e : j["identification"]) {
    EXPECT_GE(e["recall_at_k"].get<double>(), 0.0);
    EXPECT_EQ(e["recall_curve"].size(), 51u);
  }
  for (const char* f : {"results.csv", "report.md", "recall_curve.svg", "fh_vs_k.svg", "r_vs_k.svg", "causes_ewc.png"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  const std::string svg = read_all((fs::path(out) / "recall_curve.svg").string());
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find("ewc"), std::string::npos);
  EXPECT_EQ(count_lines((fs::path(out) / "results.csv").string()), 1u + j["repair"].size());
  // Each row's last two fields: the held-out rule's epochs run and kept epoch, as results.json has
  // them, for the fine-tunes; empty for newton.
  std::istringstream csv(read_all((fs::path(out) / "results.csv").string()));
  std::string line;
  std::getline(csv, line);
  EXPECT_NE(line.find(",finetune_epochs_run,finetune_kept_epoch"), std::string::npos) << line;
  size_t fine_tuned = 0;
  for (const auto& row : j["repair"]) {
    ASSERT_TRUE(std::getline(csv, line));
    const std::string tail = line.substr(line.rfind(',', line.rfind(',') - 1));
    if (row.contains("stopping")) {
      ++fine_tuned;
      EXPECT_EQ(tail, fmt::format(",{},{}", row["stopping"]["epochs_run"].get<double>(),
                                  row["stopping"]["best_epoch"].get<double>()));
      EXPECT_LE(row["stopping"]["epochs_run"].get<double>(), 3.0);  // the config's finetune_max_epochs
    } else {
      EXPECT_EQ(tail, ",,") << line;
    }
  }
  EXPECT_GT(fine_tuned, 0u);
}

}  // namespace
}  // namespace lethe::cli_test
