// retrain: training from a fresh initialisation on D \ C, the reference (and the costliest).
#include <fmt/format.h>

#include "repair/treatment_support.h"
#include "util/error.h"
#include "util/streams.h"

LETHE_TREATMENT(retrain) {
  using namespace lethe::repair;
  using O = TreatOptions;
  static const TreatmentInfo t = {
      .name = "retrain",
      .summary = "retraining from a fresh initialisation on D \\ C",
      .position = 20,
      .trains = true,
      .options =
          {
              option<int, O>("--retrain-epochs", "epochs from scratch on D \\ C", [](O& o) -> int& { return o.retrain_epochs; },
                             [](const O& o) {
                               if (o.retrain_epochs < 1)
                                 throw lethe::UsageError(fmt::format("--retrain-epochs {}: must be >= 1", o.retrain_epochs));
                             }),
              option<double, O>("--retrain-lr", "Adam step size", [](O& o) -> double& { return o.retrain_lr; },
                                [](const O& o) {
                                  if (!(o.retrain_lr > 0))
                                    throw lethe::UsageError(fmt::format("--retrain-lr {}: must be > 0", o.retrain_lr));
                                }),
              option<int64_t, O>("--treat-batch", "mini-batch size", [](O& o) -> int64_t& { return o.batch; }),
          },
      .run =
          [](TreatmentRun& run) {
            lethe::Rng init = lethe::stream(run.options.seed, lethe::Stream::kRetrainInit);
            run.model.reset_parameters(init);
            lethe::train_classifier(run.model, run.set,
                                    train_options(run.options, run.options.retrain_epochs, run.options.retrain_lr, "retrain"));
          },
  };
  return t;
}
