#include <nlohmann/json.hpp>

#include "datasets/synthetic.h"
#include "tools/lethe/cli.h"
#include "util/error.h"

namespace lethe::cli {

void add_make_data_command(CLI::App& app, GlobalOptions& global) {
  // For timing at a dataset's scale: a pass over D costs the same whatever its pixels are.
  auto* cmd = app.add_subcommand("make-data",
                                 "Write a synthetic dataset in its standard format, to measure lethe at that scale");
  auto dataset = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>();
  auto spec = std::make_shared<data::SyntheticCifar10>();
  auto json = std::make_shared<bool>(false);
  cmd->add_option("dataset", *dataset, "Dataset whose format to write: cifar10 (the binary version's batch files)")
      ->required();
  cmd->add_option("--data", *dir,
                  "Folder to write into, created if missing; it must not already hold CIFAR-10 batch files")
      ->required();
  cmd->add_option("--train", spec->n_train, "Training images, split over data_batch_1.bin ... data_batch_5.bin")
      ->capture_default_str();
  cmd->add_option("--test", spec->n_test, "Test images (test_batch.bin)")->capture_default_str();
  cmd->add_option("--blank-fraction", spec->blank_fraction,
                  "Share of each split's images with no class bar, their labels drawn like the others': a trained "
                  "model fails on most of the blank test images, which gives it failures to explain")
      ->capture_default_str();
  cmd->add_flag("--json", *json, "Print one JSON document on stdout instead of text");
  cmd->footer("Each image is dim noise with a bright bar whose row and colour plane name its class (a network "
              "learns them within an epoch); labels are balanced. The global --seed fixes every byte.");
  cmd->callback([&global, dataset, dir, spec, json] {
    if (*dataset != "cifar10")
      throw UsageError(fmt::format("make-data: unknown dataset '{}' (known: cifar10; for MNIST, `lethe fetch-data "
                                   "mnist` downloads the real one)",
                                   *dataset));
    spec->seed = global.seed;
    data::validate(*spec);
    data::write_synthetic_cifar10(*dir, *spec);
    if (*json) {
      nlohmann::json j;
      j["dataset"] = *dataset;
      j["data"] = *dir;
      j["n_train"] = spec->n_train;
      j["n_test"] = spec->n_test;
      j["blank_fraction"] = spec->blank_fraction;
      j["seed"] = spec->seed;
      print_result(j.dump(2) + "\n");
      return;
    }
    print_result(fmt::format("wrote a synthetic CIFAR-10 ({} training and {} test images, {:g}% blank, seed {}) to {}\n",
                             spec->n_train, spec->n_test, 100 * spec->blank_fraction, spec->seed, *dir));
  });
}

}  // namespace lethe::cli
