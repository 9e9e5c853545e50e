// finetune: a few epochs of Adam on D \ C from θ̂, the paper's yardstick for the causes.
#include <fmt/format.h>

#include "repair/treatment_support.h"
#include "util/error.h"

LETHE_TREATMENT(finetune) {
  using namespace lethe::repair;
  using O = TreatOptions;
  static const TreatmentInfo t = {
      .name = "finetune",
      .summary = "Adam on D \\ C from θ̂ for a few epochs",
      .position = 10,
      .trains = true,
      .options =
          {
              option<int, O>("--epochs", "epochs on D \\ C", [](O& o) -> int& { return o.epochs; },
                             [](const O& o) {
                               if (o.epochs < 0) throw lethe::UsageError(fmt::format("--epochs {}: must be >= 0", o.epochs));
                             }),
              option<double, O>("--lr", "Adam step size", [](O& o) -> double& { return o.lr; },
                                [](const O& o) {
                                  if (!(o.lr > 0)) throw lethe::UsageError(fmt::format("--lr {}: must be > 0", o.lr));
                                }),
              option<int64_t, O>("--treat-batch", "mini-batch size", [](O& o) -> int64_t& { return o.batch; },
                                 [](const O& o) {
                                   if (o.batch < 1)
                                     throw lethe::UsageError(fmt::format("--treat-batch {}: must be >= 1", o.batch));
                                 }),
          },
      .run = [](TreatmentRun& run) { lethe::train_classifier(run.model, run.set, train_options(run.options, run.options.epochs, run.options.lr, "finetune")); },
  };
  return t;
}
