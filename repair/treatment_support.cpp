#include "repair/treatment_support.h"

#include <fmt/format.h>

#include "influence/quantities.h"
#include "util/streams.h"

namespace lethe::repair {

TrainOptions train_options(const TreatOptions& o, int epochs, double lr, const std::string& stage) {
  TrainOptions t;
  t.epochs = epochs;
  t.batch = o.batch;
  t.adam.lr = static_cast<float>(lr);
  t.seed = stream_seed(o.seed, Stream::kFinetuneOrder);
  t.augment = o.augment;
  if (o.progress) t.on_batch = [&o, stage](int64_t d, int64_t n) { o.progress(stage, d, n); };
  if (o.log)
    t.on_epoch = [&o, stage](const EpochStats& s) {
      o.log(fmt::format("{} epoch {}/{}: loss {:.4f}, train acc {:.4f}", stage, s.epoch, s.epochs, s.loss, s.accuracy));
    };
  return t;
}

double accuracy(Module& model, const data::ImageSet& set) { return set.n ? evaluate(model, set).accuracy : 0.0; }

double sum_loss(Module& model, const data::ImageSet& set) {
  double total = 0;
  for (float l : per_example_losses(model, set)) total += l;
  return total;
}

void log(const TreatOptions& o, const std::string& line) {
  if (o.log) o.log(line);
}

}  // namespace lethe::repair
