// Faults provoked on purpose against the real binary: a signal sent mid-run, a file size limit
// that truncates a checkpoint write, a folder the process may not write, a NaN in a model's
// parameters. Each test checks both the one-line message and that no good file was lost.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "nn/checkpoint.h"
#include "nn/models.h"
#include "nn/safetensors.h"
#include "tools/cli_harness.h"
#include "tools/lethe/scores_io.h"
#include "util/rng.h"

namespace lethe::cli_test {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;

// A child started in `folder`.
LaunchOptions in_folder(const std::string& folder) {
  LaunchOptions options;
  options.cwd = folder;
  return options;
}

constexpr const char* kPrecious = "an earlier result that a failed run must not touch\n";

// The names in `dir` that look like a temporary file of an atomic write.
std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& name : list_dir(dir))
    if (name.find(".tmp-") != std::string::npos) out.push_back(name);
  return out;
}

// An untrained mnist-cnn checkpoint with the data spec of `--subset 200` on the synthetic set.
void write_checkpoint(const std::string& path, float poison = 0.0f, const std::string& poisoned = "") {
  Rng rng(5);
  auto model = make_mnist_cnn(rng);
  for (auto& p : model->named_parameters())
    if (p.name == poisoned) p.tensor.data()[0] = poison;
  save_checkpoint(path, *model, "mnist-cnn",
                  {{"lethe.data.dataset", "mnist"},
                   {"lethe.data.subset", "200"},
                   {"lethe.data.noise", "none"},
                   {"lethe.data.seed", "0"},
                   {"lethe.data.mean", "0.1"}});
}

class Faults : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared_ = new TempDir;
    write_synthetic_mnist(data_dir());
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
  }
  static std::string data_dir() { return shared_->file("mnist"); }

  // A training run long enough (hundreds of epochs) to be interrupted at leisure.
  Args long_training(const std::string& out) {
    return {"--quiet", "--threads", "1", "train", "--data", data_dir(), "--subset", "200", "--epochs", "500",
            "--batch", "50", "--out", out};
  }

  TempDir work_;
  static TempDir* shared_;
};

TempDir* Faults::shared_ = nullptr;

// A signal mid-training ends the run between steps with 128 + the signal, one line saying what
// was kept, and the last finished epoch's checkpoint whole on disk.
void expect_clean_stop(const std::string& out, const std::string& dir, const CliResult& r, int signal,
                       const char* name) {
  expect_error(r, 128 + signal, {std::string("interrupted by ") + name, "kept '" + out + "' from epoch"});
  EXPECT_TRUE(temporaries(dir).empty()) << "an interrupted run left a temporary file";
  // The file on disk is a complete checkpoint (its CRC-32 is verified on load) of an epoch the
  // run finished, short of the 500 asked for.
  LoadedModel loaded;
  ASSERT_NO_THROW(loaded = load_checkpoint(out)) << describe(r);
  const int done = std::stoi(loaded.metadata.at("lethe.train.epochs_done"));
  EXPECT_GE(done, 1);
  EXPECT_LT(done, 500);
  EXPECT_NE(r.err.find("from epoch " + std::to_string(done) + " of 500"), std::string::npos)
      << "the message names another epoch than the file holds\n" << describe(r);
}

TEST_F(Faults, SigintMidTrainingKeepsTheLastEpoch) {
  const std::string out = work_.file("model.safetensors");
  RunningLethe child = start_lethe(long_training(out), in_folder(work_.str()));
  ASSERT_TRUE(wait_for_file(out, child));  // the first epoch's checkpoint
  ::kill(child.pid, SIGINT);
  const CliResult r = finish_lethe(child);
  expect_clean_stop(out, work_.str(), r, SIGINT, "SIGINT");
}

TEST_F(Faults, SigtermMidTrainingKeepsTheLastEpoch) {
  const std::string out = work_.file("model.safetensors");
  RunningLethe child = start_lethe(long_training(out), in_folder(work_.str()));
  ASSERT_TRUE(wait_for_file(out, child));
  ::kill(child.pid, SIGTERM);
  const CliResult r = finish_lethe(child);
  expect_clean_stop(out, work_.str(), r, SIGTERM, "SIGTERM");
}

// Interrupted during Step II, `lethe repair` keeps Step I's complete outputs, never touches an
// earlier repaired model in --out-dir, and says so.
TEST_F(Faults, SigtermDuringRepairKeepsEarlierOutputs) {
  const std::string model = work_.file("model.safetensors");
  write_checkpoint(model);
  const std::string out_dir = work_.file("repair");
  fs::create_directories(out_dir);
  const std::string earlier = out_dir + "/repaired.safetensors";
  write_bytes(earlier, kPrecious);
  RunningLethe child = start_lethe({"--quiet", "--threads", "1", "repair", "--model-file", model, "--data", data_dir(),
                                    "--method", "loss", "--top-k", "20", "--treatment", "finetune", "--finetune-stop", "fixed", "--epochs", "500",
                                    "--out-dir", out_dir},
                                   in_folder(work_.str()));
  ASSERT_TRUE(wait_for_file(out_dir + "/causes.png", child));  // Step I done, Step II under way
  ::kill(child.pid, SIGTERM);
  const CliResult r = finish_lethe(child);
  expect_error(r, 128 + SIGTERM, {"interrupted by SIGTERM", "scores.csv", "input model '" + model + "' is untouched"});
  EXPECT_EQ(read_all(earlier), kPrecious) << "the interrupted repair replaced the earlier repaired model";
  EXPECT_TRUE(temporaries(out_dir).empty()) << "an interrupted run left a temporary file";
  // What it reports as written is whole: the scores cover every example of D.
  EXPECT_NO_THROW(cli::read_scores_csv(out_dir + "/scores.csv", 200));
}

// A write that runs into the file size limit (RLIMIT_FSIZE, as `ulimit -f` sets) fails with one
// line naming the file, removes its temporary file and leaves the existing checkpoint as it was.
TEST_F(Faults, FileSizeLimitLeavesTheOldCheckpoint) {
  const std::string out = work_.file("model.safetensors");
  write_checkpoint(out);
  const std::string before = read_all(out);
  ASSERT_GT(before.size(), 64u * 1024u) << "the limit below must cut the checkpoint short";
  LaunchOptions options;
  options.cwd = work_.str();
  options.file_size_limit = 64 * 1024;
  RunningLethe child = start_lethe({"--quiet", "--threads", "1", "train", "--data", data_dir(), "--subset", "200",
                                    "--epochs", "1", "--batch", "50", "--out", out},
                                   options);
  const CliResult r = finish_lethe(child);
  expect_error(r, 1, {"cannot write '" + out + "'", "File too large", "the existing file is unchanged"});
  EXPECT_EQ(read_all(out), before) << "the failed write changed the existing checkpoint";
  EXPECT_EQ(list_dir(work_.str()), std::set<std::string>{"model.safetensors"}) << "a temporary file was left";
}

// A folder the process may not write in: the same contract. (Run as root, the child drops to
// nobody, for whom the folder's permissions hold.)
// The first folder on the way to `path` (or the file itself) that a user who is neither its owner
// nor in its group cannot pass through (or read); empty when there is none.
std::string closed_to_others(const fs::path& path, bool is_dir) {
  const fs::path full = fs::absolute(path).lexically_normal();
  fs::path walk = full.root_path();
  for (const auto& part : full.relative_path()) {
    walk /= part;
    const bool last = walk == full;
    const auto perms = fs::status(walk).permissions();
    const bool need_read = last && is_dir;
    if ((perms & fs::perms::others_exec) == fs::perms::none && (!last || is_dir)) return walk.string();
    if (last && !is_dir && (perms & (fs::perms::others_exec | fs::perms::others_read)) == fs::perms::none)
      return walk.string();
    if (need_read && (perms & fs::perms::others_read) == fs::perms::none) return walk.string();
  }
  return {};
}

TEST_F(Faults, ReadOnlyFolderLeavesTheOldCheckpoint) {
  // As root the child drops to nobody, for whom the folder is then really read-only; nobody must
  // be able to reach the binary and the data.
  if (::geteuid() == 0) {
    for (const auto& [path, is_dir] : {std::pair<std::string, bool>{LETHE_BINARY, false}, {data_dir(), true}}) {
      const std::string closed = closed_to_others(path, is_dir);
      if (!closed.empty())
        GTEST_SKIP() << "run as root, this test drops to user nobody, who cannot reach " << path << " ("
                     << closed << " is closed to other users)";
    }
  }
  const std::string folder = work_.file("read-only");
  fs::create_directories(folder);
  const std::string out = folder + "/model.safetensors";
  write_checkpoint(out);
  const std::string before = read_all(out);
  fs::permissions(work_.str(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                   fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(folder, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                              fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  LaunchOptions options;
  options.cwd = work_.str();
  options.unprivileged = true;
  RunningLethe child = start_lethe({"--quiet", "--threads", "1", "train", "--data", data_dir(), "--subset", "200",
                                    "--epochs", "1", "--batch", "50", "--out", out},
                                   options);
  const CliResult r = finish_lethe(child);
  fs::permissions(folder, fs::perms::owner_all, fs::perm_options::add);
  expect_error(r, 1, {"cannot write '" + out + "'", "Permission denied", "the existing file is unchanged"});
  EXPECT_EQ(read_all(out), before) << "the failed write changed the existing checkpoint";
  EXPECT_EQ(list_dir(folder), std::set<std::string>{"model.safetensors"});
}

// A NaN in a checkpoint's parameter stops repair as the checkpoint is read, with the tensor
// named, and --out-dir keeps what an earlier run left there.
TEST_F(Faults, NanParameterStopsRepairAndKeepsOutputs) {
  const std::string model = work_.file("poisoned.safetensors");
  write_checkpoint(model, std::numeric_limits<float>::quiet_NaN(), "3.weight");
  const std::string out_dir = work_.file("repair");
  fs::create_directories(out_dir);
  write_bytes(out_dir + "/repaired.safetensors", kPrecious);
  const CliResult r = run_lethe({"--quiet", "--threads", "1", "repair", "--model-file", model, "--data", data_dir(),
                                 "--method", "loss", "--top-k", "20", "--out-dir", out_dir},
                                work_.str());
  expect_error(r, 1, {model, "tensor '3.weight' is not finite"});
  EXPECT_EQ(list_dir(out_dir), std::set<std::string>{"repaired.safetensors"});
  EXPECT_EQ(read_all(out_dir + "/repaired.safetensors"), kPrecious);
}

}  // namespace
}  // namespace lethe::cli_test
