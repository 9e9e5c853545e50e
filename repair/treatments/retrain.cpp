// retrain: training on D \ C from a fresh initialisation or the model's own, the reference (and the
// costliest).
#include <fmt/format.h>

#include "influence/params.h"
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
              option<std::string, O>("--retrain-init",
                                     "fresh (a new initialisation from its own stream) | base (the model's own "
                                     "initialisation and batch-order stream, from the recorded recipe)",
                                     [](O& o) -> std::string& { return o.retrain_init; },
                                     [](const O& o) {
                                       if (o.retrain_init != "fresh" && o.retrain_init != "base")
                                         throw lethe::UsageError(
                                             fmt::format("--retrain-init {}: must be fresh or base", o.retrain_init));
                                     }),
              option<int64_t, O>("--treat-batch", "mini-batch size", [](O& o) -> int64_t& { return o.batch; }),
          },
      .run =
          [](TreatmentRun& run) {
            const TreatOptions& o = run.options;
            lethe::TrainOptions options = train_options(o, o.retrain_epochs, o.retrain_lr, "retrain");
            if (o.retrain_init == "base") {
              if (!o.recipe)
                throw lethe::UsageError(
                    "--retrain-init base starts from the model's own initialisation, which this model does not "
                    "record: train it with `lethe train` or use --retrain-init fresh");
              auto start = lethe::init_base_model(o.recipe->architecture, o.recipe->seed);
              start->to(run.model.device());
              restore(run.model, snapshot(*start));
              options.seed = o.recipe->training.seed;
            } else {
              lethe::Rng init = lethe::stream(o.seed, lethe::Stream::kRetrainInit);
              run.model.reset_parameters(init);
            }
            lethe::train_classifier(run.model, run.set, options);
          },
  };
  return t;
}
