// The `lethe` binary as users and scripts meet it: exit codes (0 success, 1 runtime failure,
// 2 usage error), one-line errors naming what is at fault, results on stdout and progress on
// stderr, and outputs that appear complete or not at all.
#include <algorithm>
#include <filesystem>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kernels/device.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "nn/safetensors.h"
#include "tools/cli_harness.h"
#include "util/rng.h"

namespace lethe::cli_test {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;
using Json = nlohmann::json;

constexpr const char* kPrecious = "an earlier result that a failed run must not touch\n";

// The arguments of a tiny training run on `data` (no --out, no global options).
Args train_args(const std::string& data) {
  return {"train", "--data", data, "--subset", "200", "--epochs", "2", "--batch", "32"};
}

Args concat(Args a, const Args& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// A freshly initialised mnist-cnn checkpoint written in-process (no training), for the tests
// that damage a checkpoint. The metadata matches what `lethe train --subset 200` records.
void write_untrained_checkpoint(const std::string& path) {
  Rng rng(11);
  auto model = make_mnist_cnn(rng);
  save_checkpoint(path, *model, "mnist-cnn",
                  {{"lethe.data.dataset", "mnist"},
                   {"lethe.data.subset", "200"},
                   {"lethe.data.noise", "none"},
                   {"lethe.data.seed", "0"},
                   {"lethe.data.mean", "0.1"}});
}

// Parses stdout as the single JSON document `--json` promises; fails the test if it is not.
Json parse_json(const CliResult& r) {
  try {
    return Json::parse(r.out);
  } catch (const Json::exception& e) {
    ADD_FAILURE() << "stdout is not one JSON document: " << e.what() << "\n" << describe(r);
    return Json();
  }
}

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared_ = new TempDir;
    write_synthetic_mnist(data_dir());
  }
  static void TearDownTestSuite() {
    trained_.reset();
    delete shared_;
    shared_ = nullptr;
  }

  static std::string data_dir() { return shared_->file("mnist"); }

  // One tiny quiet training run with --json, shared by the tests that need a trained model. One
  // thread: on a shared 2-core machine OpenMP threads contend and the run takes three times longer.
  struct Trained {
    TempDir dir;
    std::string checkpoint;
    CliResult result;
  };
  static const Trained& trained() {
    if (!trained_) {
      trained_ = std::make_unique<Trained>();
      trained_->checkpoint = trained_->dir.file("model.safetensors");
      trained_->result = run_lethe(concat(concat({"--quiet", "--threads", "1", "--seed", "3"}, train_args(data_dir())),
                                          {"--out", trained_->checkpoint, "--json"}),
                                   trained_->dir.str());
    }
    return *trained_;
  }

  // A private copy of the good data, for tests that damage one file.
  std::string data_copy() {
    const std::string dir = work_.file("data");
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(data_dir()))
      fs::copy_file(e.path(), fs::path(dir) / e.path().filename());
    return dir;
  }

  // Runs `args --out OUT` twice, expecting the error each time: once with no OUT (none may
  // appear, nor a temporary file beside it) and once with an existing OUT, which must survive
  // byte for byte.
  void expect_failure_keeps_out(const Args& args, int code, std::initializer_list<std::string_view> needles) {
    const std::string out_dir = work_.file("out-" + std::to_string(out_dirs_++));
    fs::create_directories(out_dir);
    const std::string out = out_dir + "/model.safetensors";
    const Args with_out = concat(args, {"--out", out});
    {
      SCOPED_TRACE("no existing --out file");
      const CliResult r = run_lethe(with_out, work_.str());
      expect_error(r, code, needles);
      EXPECT_TRUE(list_dir(out_dir).empty()) << "a failed run left files in " << out_dir;
    }
    {
      SCOPED_TRACE("existing --out file");
      write_bytes(out, kPrecious);
      const CliResult r = run_lethe(with_out, work_.str());
      expect_error(r, code, needles);
      EXPECT_EQ(read_all(out), kPrecious) << "a failed run changed the existing " << out;
      EXPECT_EQ(list_dir(out_dir), std::set<std::string>{"model.safetensors"})
          << "a failed run left files in " << out_dir;
    }
  }

  TempDir work_;
  int out_dirs_ = 0;
  static TempDir* shared_;
  static std::unique_ptr<Trained> trained_;
};

TempDir* Cli::shared_ = nullptr;
std::unique_ptr<Cli::Trained> Cli::trained_;

// ---- usage errors: exit 2 ----

TEST_F(Cli, NoSubcommandIsAUsageError) {
  expect_error(run_lethe({}, work_.str()), 2, {});
  expect_error(run_lethe({"--quiet"}, work_.str()), 2, {});
}

TEST_F(Cli, UnknownSubcommandIsAUsageError) {
  // The error names the word at fault, not only "a subcommand is required".
  expect_error(run_lethe({"trian"}, work_.str()), 2, {"trian"});
  expect_error(run_lethe({"--bogus-global"}, work_.str()), 2, {"--bogus-global"});
}

TEST_F(Cli, UnknownFlagIsAUsageError) {
  expect_failure_keeps_out(concat(train_args(data_dir()), {"--bogus-flag"}), 2, {"--bogus-flag"});
  expect_failure_keeps_out(concat({"--bogus-global"}, train_args(data_dir())), 2, {"--bogus-global"});
}

TEST_F(Cli, MalformedValuesAreUsageErrors) {
  Args args = train_args(data_dir());
  auto with = [&](const std::string& flag, const std::string& value) {
    Args a = args;
    const auto it = std::find(a.begin(), a.end(), flag);
    if (it != a.end()) *(it + 1) = value;
    else a.insert(a.end(), {flag, value});
    return a;
  };
  {
    SCOPED_TRACE("--epochs abc");
    expect_failure_keeps_out(with("--epochs", "abc"), 2, {"--epochs", "abc"});
  }
  {
    SCOPED_TRACE("--batch 1.5x");
    expect_failure_keeps_out(with("--batch", "1.5x"), 2, {"--batch", "1.5x"});
  }
  {
    SCOPED_TRACE("--lr fast");
    expect_failure_keeps_out(with("--lr", "fast"), 2, {"--lr", "fast"});
  }
  {
    SCOPED_TRACE("--epochs -1");
    expect_failure_keeps_out(with("--epochs", "-1"), 2, {"--epochs", "-1"});
  }
  {
    SCOPED_TRACE("--batch 0");
    expect_failure_keeps_out(with("--batch", "0"), 2, {"--batch", "0"});
  }
  {
    SCOPED_TRACE("--lr 0");
    expect_failure_keeps_out(with("--lr", "0"), 2, {"--lr"});
  }
  {
    SCOPED_TRACE("--threads -1");
    expect_failure_keeps_out(concat({"--threads", "-1"}, args), 2, {"--threads", "-1"});
  }
  {
    SCOPED_TRACE("--seed minus");
    expect_failure_keeps_out(concat({"--seed", "minus"}, args), 2, {"--seed", "minus"});
  }
}

TEST_F(Cli, UnknownNamesAreUsageErrors) {
  {
    SCOPED_TRACE("--model");
    expect_failure_keeps_out(concat(train_args(data_dir()), {"--model", "resnet999"}), 2, {"resnet999"});
  }
  {
    SCOPED_TRACE("--noise");
    expect_failure_keeps_out(concat(train_args(data_dir()), {"--noise", "gaussian"}), 2, {"--noise", "gaussian"});
  }
  {
    SCOPED_TRACE("--dataset");
    expect_failure_keeps_out(concat(train_args(data_dir()), {"--dataset", "imagenet"}), 2, {"--dataset", "imagenet"});
  }
  {
    SCOPED_TRACE("--device");
    expect_failure_keeps_out(concat({"--device", "tpu"}, train_args(data_dir())), 2, {"--device", "tpu"});
  }
  {
    SCOPED_TRACE("fetch-data dataset");
    expect_error(run_lethe({"fetch-data", "imagenet", "--data", work_.file("fetched")}, work_.str()), 2, {"imagenet"});
    EXPECT_FALSE(fs::exists(work_.file("fetched"))) << "a usage error created the --data folder";
  }
}

TEST_F(Cli, SubsetLargerThanTheDataIsAUsageError) {
  Args args = train_args(data_dir());
  *(std::find(args.begin(), args.end(), "--subset") + 1) = "1000";
  expect_failure_keeps_out(args, 2, {"--subset", "1000"});
}

TEST_F(Cli, MissingRequiredFlagsAreUsageErrors) {
  expect_error(run_lethe(train_args(data_dir()), work_.str()), 2, {"--out"});
  expect_error(run_lethe({"eval", "--data", data_dir()}, work_.str()), 2, {"--model-file"});
}

// ---- runtime failures: exit 1, naming the folder or file ----

TEST_F(Cli, MissingDataFolderNamesIt) {
  const std::string missing = work_.file("no-such-folder");
  expect_failure_keeps_out(train_args(missing), 1, {missing});
}

TEST_F(Cli, MissingDataFileNamesIt) {
  const std::string dir = data_copy();
  fs::remove(train_labels_path(dir));
  expect_failure_keeps_out(train_args(dir), 1, {"train-labels-idx1-ubyte"});
}

TEST_F(Cli, TruncatedImageFileNamesIt) {
  const std::string dir = data_copy();
  const std::string images = read_all(train_images_path(dir));
  write_bytes(train_images_path(dir), images.substr(0, images.size() - 1000));
  expect_failure_keeps_out(train_args(dir), 1, {train_images_path(dir)});
}

TEST_F(Cli, TruncatedTestImageFileNamesIt) {
  const std::string dir = data_copy();
  const std::string images = read_all(test_images_path(dir));
  write_bytes(test_images_path(dir), images.substr(0, 100));
  expect_failure_keeps_out(train_args(dir), 1, {test_images_path(dir)});
}

TEST_F(Cli, WrongMagicNamesTheFile) {
  const std::string dir = data_copy();
  const SyntheticSet train = synthetic_set(kTrainCount, 1);
  write_bytes(train_labels_path(dir), idx_labels(train.labels, /*magic=*/0x00000803));
  expect_failure_keeps_out(train_args(dir), 1, {train_labels_path(dir)});
}

TEST_F(Cli, ImageLabelCountMismatchNamesTheFiles) {
  const std::string dir = data_copy();
  SyntheticSet train = synthetic_set(kTrainCount, 1);
  train.labels.pop_back();
  write_bytes(train_labels_path(dir), idx_labels(train.labels));
  expect_failure_keeps_out(train_args(dir), 1, {train_images_path(dir), train_labels_path(dir)});
}

TEST_F(Cli, UnwritableOutputNamesThePath) {
  // --epochs 0 skips training: the failure comes at the very end, when the checkpoint is saved.
  Args args = train_args(data_dir());
  *(std::find(args.begin(), args.end(), "--epochs") + 1) = "0";
  const std::string out = work_.file("no-such-folder/model.safetensors");
  const CliResult r = run_lethe(concat(concat({"--quiet"}, args), {"--out", out}), work_.str());
  expect_error(r, 1, {out});
  EXPECT_FALSE(fs::exists(work_.file("no-such-folder")));

  // An --out that is a folder: the folder and what is in it survive.
  const std::string folder = work_.file("a-folder");
  fs::create_directories(folder);
  write_bytes(folder + "/keep.txt", kPrecious);
  const CliResult r2 = run_lethe(concat(concat({"--quiet"}, args), {"--out", folder}), work_.str());
  EXPECT_EQ(r2.exit_code, 1) << describe(r2);
  expect_error(r2, 1, {folder});
  EXPECT_TRUE(fs::is_directory(folder));
  EXPECT_EQ(list_dir(folder), std::set<std::string>{"keep.txt"});
  EXPECT_EQ(read_all(folder + "/keep.txt"), kPrecious);
}

TEST_F(Cli, DivergedTrainingFailsWithoutAnOutput) {
  // A failure after work has started (Adam with an absurd rate blows up within two batches).
  Args args = train_args(data_dir());
  *(std::find(args.begin(), args.end(), "--epochs") + 1) = "1";
  expect_failure_keeps_out(concat(concat({"--quiet", "--threads", "1"}, args), {"--lr", "1e30"}), 1, {"epoch"});
}

TEST_F(Cli, CudaDeviceWithoutAGpuFailsClearly) {
  if (device::cuda_available()) GTEST_SKIP() << "a GPU is present: --device cuda is expected to work here";
  const CliResult r = run_lethe(concat(concat({"--device", "cuda"}, train_args(data_dir())),
                                       {"--out", work_.file("m.safetensors")}),
                                work_.str());
  EXPECT_NE(r.exit_code, 0) << describe(r);
  if (r.exit_code != 0) expect_error(r, r.exit_code, {"--device", "cuda"});
  EXPECT_FALSE(fs::exists(work_.file("m.safetensors")));
}

// --tf32 changes only the GPU's arithmetic: on the CPU the same seed gives the same bits.
TEST_F(Cli, Tf32LeavesTheCpuAlone) {
  const std::string plain = work_.file("plain.safetensors"), tf32 = work_.file("tf32.safetensors");
  const Args base = concat({"--quiet", "--device", "cpu", "--threads", "1", "--seed", "5"}, train_args(data_dir()));
  const CliResult a = run_lethe(concat(base, {"--out", plain}), work_.str());
  const CliResult b = run_lethe(concat(concat({"--tf32"}, base), {"--out", tf32}), work_.str());
  ASSERT_EQ(a.exit_code, 0) << describe(a);
  ASSERT_EQ(b.exit_code, 0) << describe(b);
  EXPECT_TRUE(read_all(plain) == read_all(tf32)) << "--tf32 changed a CPU training run";
}

// ---- help ----

TEST_F(Cli, EveryCommandHasHelp) {
  struct Case {
    Args args;
    std::vector<std::string> mentions;
  };
  const std::vector<Case> cases = {
      {{"--help"}, {"train", "eval", "fetch-data", "--device", "--seed", "--quiet", "--threads"}},
      {{"train", "--help"},
       {"--dataset", "--data", "--subset", "--noise", "--model", "--epochs", "--batch", "--lr", "--out", "--json"}},
      {{"eval", "--help"}, {"--model-file", "--dataset", "--data", "--subset", "--noise", "--json"}},
      {{"fetch-data", "--help"}, {"mnist", "--data"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args[0] + (c.args.size() > 1 ? " " + c.args[1] : ""));
    const CliResult r = run_lethe(c.args, work_.str());
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    EXPECT_TRUE(r.err.empty()) << describe(r);
    for (const auto& m : c.mentions) EXPECT_NE(r.out.find(m), std::string::npos) << "help does not mention " << m;
  }
  const CliResult v = run_lethe({"--version"}, work_.str());
  EXPECT_EQ(v.exit_code, 0) << describe(v);
  EXPECT_NE(v.out.find(LETHE_VERSION), std::string::npos) << describe(v);
  EXPECT_TRUE(list_dir(work_.str()).empty()) << "--help wrote files";
}

// ---- a real run: train, then eval ----

TEST_F(Cli, TinyTrainWritesACheckpointQuietly) {
  const Trained& t = trained();
  ASSERT_EQ(t.result.exit_code, 0) << describe(t.result);
  EXPECT_TRUE(t.result.err.empty()) << "--quiet run wrote to stderr\n" << describe(t.result);
  ASSERT_TRUE(fs::is_regular_file(t.checkpoint));
  EXPECT_EQ(list_dir(t.dir.str()), std::set<std::string>{"model.safetensors"}) << "train left other files";

  const Json j = parse_json(t.result);
  ASSERT_TRUE(j.is_object()) << describe(t.result);
  EXPECT_EQ(j.value("n_train", -1), 200);
  EXPECT_EQ(j.value("epochs", -1), 2);
  EXPECT_EQ(j.value("model", ""), "mnist-cnn");
  ASSERT_TRUE(j.contains("test_accuracy") && j["test_accuracy"].is_number());
  EXPECT_GE(j["test_accuracy"].get<double>(), 0.0);
  EXPECT_LE(j["test_accuracy"].get<double>(), 1.0);

  // The file is a complete checkpoint of the model, with the data spec that defines D.
  const LoadedModel loaded = load_checkpoint(t.checkpoint);
  EXPECT_EQ(loaded.model_name, "mnist-cnn");
  EXPECT_EQ(loaded.metadata.at("lethe.data.subset"), "200");
  EXPECT_EQ(loaded.metadata.at("lethe.data.noise"), "none");
  EXPECT_EQ(loaded.metadata.at("lethe.data.seed"), "3");
}

TEST_F(Cli, EvalJsonReportsAccuracyAndConfusion) {
  const Trained& t = trained();
  ASSERT_EQ(t.result.exit_code, 0) << describe(t.result);
  const CliResult r = run_lethe({"eval", "--model-file", t.checkpoint, "--data", data_dir(), "--json"}, work_.str());
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(r.err.empty()) << describe(r);
  const Json j = parse_json(r);
  ASSERT_TRUE(j.is_object()) << describe(r);

  ASSERT_TRUE(j.contains("accuracy") && j["accuracy"].is_number()) << describe(r);
  const double accuracy = j["accuracy"].get<double>();
  EXPECT_GE(accuracy, 0.0);
  EXPECT_LE(accuracy, 1.0);
  EXPECT_EQ(j.value("n", -1), static_cast<int>(kTestCount));

  ASSERT_TRUE(j.contains("confusion") && j["confusion"].is_array()) << describe(r);
  const Json& cm = j["confusion"];
  ASSERT_EQ(cm.size(), 10u);
  int64_t total = 0, diagonal = 0;
  std::vector<int64_t> row_sums(10, 0);
  for (size_t t_label = 0; t_label < 10; ++t_label) {
    ASSERT_TRUE(cm[t_label].is_array());
    ASSERT_EQ(cm[t_label].size(), 10u);
    for (size_t p = 0; p < 10; ++p) {
      const int64_t v = cm[t_label][p].get<int64_t>();
      EXPECT_GE(v, 0);
      total += v;
      row_sums[t_label] += v;
      if (p == t_label) diagonal += v;
    }
  }
  EXPECT_EQ(total, static_cast<int64_t>(kTestCount));
  // Rows are true labels: they count the test set's labels (10 of each here).
  const SyntheticSet test = synthetic_set(kTestCount, 2);
  for (int label = 0; label < 10; ++label)
    EXPECT_EQ(row_sums[static_cast<size_t>(label)], std::count(test.labels.begin(), test.labels.end(), label))
        << "confusion row " << label;
  EXPECT_NEAR(accuracy, static_cast<double>(diagonal) / static_cast<double>(kTestCount), 1e-9);
  ASSERT_TRUE(j.contains("per_class_accuracy") && j["per_class_accuracy"].is_array());
  EXPECT_EQ(j["per_class_accuracy"].size(), 10u);

  // The same model on the same test set: eval agrees with what train measured.
  const Json trained_json = parse_json(t.result);
  EXPECT_NEAR(accuracy, trained_json.value("test_accuracy", -1.0), 1e-9);
  // The bars are trivially separable: two epochs on 200 examples are far above chance (0.1).
  EXPECT_GT(accuracy, 0.5) << "the tiny model learned nothing from the synthetic data";
}

TEST_F(Cli, EvalOnBadDataNamesTheFolderOrFile) {
  const Trained& t = trained();
  ASSERT_EQ(t.result.exit_code, 0) << describe(t.result);
  const std::string missing = work_.file("no-such-folder");
  expect_error(run_lethe({"eval", "--model-file", t.checkpoint, "--data", missing, "--json"}, work_.str()), 1,
               {missing});
  const std::string dir = data_copy();
  const std::string images = read_all(test_images_path(dir));
  write_bytes(test_images_path(dir), images.substr(0, images.size() - 1));
  expect_error(run_lethe({"eval", "--model-file", t.checkpoint, "--data", dir, "--json"}, work_.str()), 1,
               {test_images_path(dir)});
}

TEST_F(Cli, EvalTableGoesToStdout) {
  const Trained& t = trained();
  ASSERT_EQ(t.result.exit_code, 0) << describe(t.result);
  const CliResult r = run_lethe({"eval", "--model-file", t.checkpoint, "--data", data_dir()}, work_.str());
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("accuracy"), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find("confusion"), std::string::npos) << describe(r);
  EXPECT_EQ(r.err.find("accuracy"), std::string::npos) << "results leaked to stderr\n" << describe(r);
  EXPECT_FALSE(Json::accept(r.out)) << "the human table should not be JSON";
}

TEST_F(Cli, ProgressGoesToStderrAndResultsToStdout) {
  const std::string out = work_.file("model.safetensors");
  const CliResult r = run_lethe(concat(concat({"--threads", "1", "--seed", "3"}, train_args(data_dir())), {"--out", out}), work_.str());
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  // Results: the accuracy and where the model went, on stdout only.
  EXPECT_NE(r.out.find("test accuracy"), std::string::npos) << describe(r);
  EXPECT_NE(r.out.find(out), std::string::npos) << describe(r);
  EXPECT_EQ(r.out.find("epoch"), std::string::npos) << "progress leaked to stdout\n" << describe(r);
  // Progress: one line per epoch, on stderr; never an error line on success.
  EXPECT_NE(r.err.find("epoch   1/2"), std::string::npos) << describe(r);
  EXPECT_NE(r.err.find("epoch   2/2"), std::string::npos) << describe(r);
  EXPECT_EQ(r.err.find("error"), std::string::npos) << describe(r);
  EXPECT_EQ(r.err.find("test accuracy"), std::string::npos) << "results leaked to stderr\n" << describe(r);

  // Same flags and seed as the shared --quiet run: the CPU backend gives the same bits.
  const Trained& t = trained();
  ASSERT_EQ(t.result.exit_code, 0) << describe(t.result);
  if (!device::cuda_available()) {
    EXPECT_TRUE(read_all(out) == read_all(t.checkpoint)) << "same seed and flags gave a different checkpoint";
  }
}

TEST_F(Cli, TrainReplacesAnExistingCheckpointWhole) {
  const std::string out = work_.file("model.safetensors");
  write_bytes(out, kPrecious);
  Args args = train_args(data_dir());
  *(std::find(args.begin(), args.end(), "--epochs") + 1) = "0";
  const CliResult r = run_lethe(concat(concat({"--quiet"}, args), {"--out", out}), work_.str());
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NO_THROW(load_checkpoint(out));
  EXPECT_EQ(list_dir(work_.str()), std::set<std::string>{"model.safetensors"}) << "train left a temporary file";
}

TEST_F(Cli, InitSeedChangesTheInitialisationAndKeepsD) {
  // --epochs 0: the checkpoint is the initialisation itself.
  Args args = train_args(data_dir());
  *(std::find(args.begin(), args.end(), "--epochs") + 1) = "0";
  const auto train = [&](const std::string& name, const Args& extra) {
    const std::string out = work_.file(name);
    const CliResult r = run_lethe(concat(concat(concat({"--quiet", "--threads", "1", "--seed", "3"}, args), extra), {"--out", out}),
                                  work_.str());
    EXPECT_EQ(r.exit_code, 0) << describe(r);
    return load_checkpoint(out);
  };
  const LoadedModel plain = train("plain.safetensors", {});
  const LoadedModel same = train("same.safetensors", {"--init-seed", "3"});
  const LoadedModel other = train("other.safetensors", {"--init-seed", "4"});
  EXPECT_EQ(flatten_params(*plain.model), flatten_params(*same.model)) << "--init-seed equal to --seed changed the model";
  EXPECT_NE(flatten_params(*plain.model), flatten_params(*other.model)) << "--init-seed 4 gave --seed 3's initialisation";
  // D is --seed's in both: the data spec recorded is the same, the initialisation's seed beside it.
  for (const char* key : {"lethe.data.seed", "lethe.data.subset", "lethe.data.noise"})
    EXPECT_EQ(other.metadata.at(key), plain.metadata.at(key)) << key;
  EXPECT_EQ(other.metadata.at("lethe.train.init_seed"), "4");
  EXPECT_EQ(plain.metadata.count("lethe.train.init_seed"), 0u);
}

TEST_F(Cli, KeepEpochsWritesTheTrajectory) {
  Args args = train_args(data_dir());
  *(std::find(args.begin(), args.end(), "--epochs") + 1) = "3";
  const std::string out = work_.file("model.safetensors"), traj = work_.file("traj");
  const CliResult r = run_lethe(
      concat(concat({"--quiet", "--threads", "1"}, args), {"--keep-epochs", traj, "--keep-every", "2", "--out", out}),
      work_.str());
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  // Every second epoch and the last.
  EXPECT_EQ(list_dir(traj), (std::set<std::string>{"epoch-0002.safetensors", "epoch-0003.safetensors"}));
  const LoadedModel second = load_checkpoint(traj + "/epoch-0002.safetensors");
  const LoadedModel last = load_checkpoint(traj + "/epoch-0003.safetensors");
  const LoadedModel final_model = load_checkpoint(out);
  EXPECT_EQ(second.metadata.at("lethe.train.epochs_done"), "2");
  EXPECT_EQ(flatten_params(*last.model), flatten_params(*final_model.model));
  EXPECT_NE(flatten_params(*second.model), flatten_params(*final_model.model));
  expect_error(run_lethe(concat(args, {"--keep-epochs", traj, "--keep-every", "0", "--out", out}), work_.str()), 2,
               {"--keep-every 0"});
}

// ---- eval on damaged checkpoints: exit 1, naming the file ----

TEST_F(Cli, EvalOnDamagedCheckpointsNamesTheFile) {
  const std::string good = work_.file("good.safetensors");
  write_untrained_checkpoint(good);
  // The undamaged file evaluates: the failures below are the damage, not the setup.
  const CliResult ok = run_lethe({"eval", "--model-file", good, "--data", data_dir(), "--json"}, work_.str());
  ASSERT_EQ(ok.exit_code, 0) << describe(ok);

  const SafetensorsFile original = load_safetensors(good);
  auto damaged = [&](const std::string& leaf, auto&& change) {
    SafetensorsFile f = original;
    change(f);
    const std::string path = work_.file(leaf);
    save_safetensors(path, f);
    return path;
  };
  auto array = [](SafetensorsFile& f, const std::string& name) -> NamedArray& {
    for (auto& a : f.arrays)
      if (a.name == name) return a;
    throw Error("test setup: no array " + name);
  };

  const std::string renamed = damaged("renamed.safetensors", [&](SafetensorsFile& f) { array(f, "7.weight").name = "7.weights"; });
  const std::string reshaped = damaged("reshaped.safetensors", [&](SafetensorsFile& f) {
    array(f, "7.weight").shape = {1568, 50};  // same bytes, transposed shape
  });
  const std::string truncated = work_.file("truncated.safetensors");
  const std::string bytes = read_all(good);
  write_bytes(truncated, bytes.substr(0, bytes.size() / 2));
  const std::string headless = work_.file("headless.safetensors");
  write_bytes(headless, bytes.substr(0, 5));
  const std::string missing = work_.file("missing.safetensors");
  const std::string unknown_model = damaged("unknown-model.safetensors",
                                            [](SafetensorsFile& f) { f.metadata["lethe.model"] = "resnet50"; });

  struct Case {
    std::string path;
    std::vector<std::string> mentions;
  };
  for (const Case& c : std::vector<Case>{{renamed, {"7.weight"}},
                                         {reshaped, {"7.weight"}},
                                         {truncated, {}},
                                         {headless, {}},
                                         {missing, {}},
                                         {unknown_model, {"resnet50"}}}) {
    SCOPED_TRACE(c.path);
    const CliResult r = run_lethe({"eval", "--model-file", c.path, "--data", data_dir(), "--json"}, work_.str());
    expect_error(r, 1, {c.path});
    for (const auto& m : c.mentions) EXPECT_NE(r.err.find(m), std::string::npos) << "error does not mention " << m;
  }
}

// Weights that hold NaN or Inf (written so, or an F16 file whose values overflowed) are refused
// by every command that loads a checkpoint to use it, in one line naming the file and the tensor,
// before any data is read or any output written; such a model would predict one class for all.
TEST_F(Cli, NonFiniteWeightsAreRefusedNamingTheTensor) {
  const std::string good = work_.file("good.safetensors");
  write_untrained_checkpoint(good);
  const SafetensorsFile original = load_safetensors(good);
  auto with_value = [&](const std::string& leaf, const std::string& tensor, float value, DType dtype) {
    SafetensorsFile f = original;
    for (auto& a : f.arrays)
      if (a.name == tensor) {
        std::vector<float> v = a.to_f32();
        v[v.size() / 2] = value;
        a = NamedArray::from_f32(a.name, a.shape, std::span<const float>(v), dtype);
      }
    const std::string path = work_.file(leaf);
    save_safetensors(path, f);
    return path;
  };
  const std::string nan = with_value("nan.safetensors", "3.weight", std::numeric_limits<float>::quiet_NaN(), DType::F32);
  // 1e6 is past F16's largest finite value (65504): the stored half is +Inf.
  const std::string inf = with_value("inf-f16.safetensors", "7.bias", 1e6f, DType::F16);
  const std::string out = work_.file("out");
  const std::string failures = work_.file("failures.txt");
  write_bytes(failures, "0\n");
  for (const auto& [path, tensor] : {std::pair{nan, std::string("3.weight")}, std::pair{inf, std::string("7.bias")}}) {
    for (const Args& command :
         {Args{"eval"}, Args{"predict", "--out", out + ".safetensors"}, Args{"identify", "--method", "loss", "--out", out + ".csv"},
          Args{"repair", "--method", "loss", "--top-k", "5", "--failures", failures, "--out-dir", out}}) {
      SCOPED_TRACE(command[0] + " on " + path);
      const CliResult r = run_lethe(concat(concat({"--quiet"}, command), {"--model-file", path, "--data", data_dir()}), work_.str());
      expect_error(r, 1, {path, "'" + tensor + "'", "not finite"});
    }
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".csv"));
  EXPECT_FALSE(fs::exists(out + ".safetensors"));
}

// Flags are checked before anything is compared with them: a non-finite normalisation is refused
// even where the checkpoint records its own (a NaN compares equal to nothing, so it never
// "disagreed"), and a negative --subset is refused rather than read as the whole split.
TEST_F(Cli, NonFiniteNormalisationAndNegativeSubsetAreRefused) {
  const std::string model = work_.file("model.safetensors");
  write_untrained_checkpoint(model);  // records its normalisation (mean 0.1)
  for (const Args& flags : {Args{"--mean", "nan"}, Args{"--mean", "inf"}, Args{"--mean", "0.1", "--std", "nan"},
                            Args{"--mean", "0.1", "--std", "0"}, Args{"--std", "-1"}}) {
    SCOPED_TRACE(flags[flags.size() - 2] + " " + flags.back());
    expect_error(run_lethe(concat({"eval", "--model-file", model, "--data", data_dir()}, flags), work_.str()), 2,
                 {flags[flags.size() - 2]});
  }
  expect_error(run_lethe({"eval", "--model-file", model, "--data", data_dir(), "--subset", "-5"}, work_.str()), 2,
               {"--subset", "-5"});
  Args args = train_args(data_dir());
  *(std::find(args.begin(), args.end(), "--subset") + 1) = "-5";
  expect_failure_keeps_out(args, 2, {"--subset", "-5"});
  // A negative --noise-amount or --noisy-queries is the spec's "default" inside: refused when given.
  expect_failure_keeps_out(concat(train_args(data_dir()), {"--noise", "input", "--noise-amount", "-3"}), 2,
                           {"--noise-amount", "-3"});
  expect_failure_keeps_out(concat(train_args(data_dir()), {"--noise", "input", "--noisy-queries", "-1"}), 2,
                           {"--noisy-queries", "-1"});
}

TEST_F(Cli, EvalOnAPyTorchExportUsesTheDataFlags) {
  // No lethe metadata (as torch/safetensors would write): the data flags define D and its mean.
  Rng rng(5);
  auto model = make_mnist_cnn(rng);
  SafetensorsFile f;
  for (auto& p : model->named_parameters()) {
    const auto values = p.tensor.to_vector();
    f.arrays.push_back(NamedArray::from_values<float>(p.name, p.tensor.shape(), std::span<const float>(values)));
  }
  const std::string path = work_.file("torch.safetensors");
  save_safetensors(path, f);
  const CliResult r =
      run_lethe({"eval", "--model-file", path, "--data", data_dir(), "--subset", "200", "--json"}, work_.str());
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  const Json j = parse_json(r);
  EXPECT_EQ(j.value("n", -1), static_cast<int>(kTestCount));
  EXPECT_EQ(j.value("model", ""), "mnist-cnn");

  // Without --subset the default (3000) asks for more than the 300 training examples.
  expect_error(run_lethe({"eval", "--model-file", path, "--data", data_dir(), "--json"}, work_.str()), 2,
               {"--subset"});
  expect_error(run_lethe({"eval", "--model-file", path, "--data", data_dir(), "--subset", "200", "--split", "val"},
                         work_.str()),
               2, {"--split", "val"});
}

}  // namespace
}  // namespace lethe::cli_test
