#include "repair/treat.h"

#include <algorithm>
#include <cmath>

#include "datasets/transforms.h"
#include "nn/finite.h"
#include "influence/params.h"
#include "repair/registry.h"
#include "util/clock.h"
#include "util/error.h"

namespace lethe::repair {

std::vector<std::string> treatment_list() {
  std::vector<std::string> names;
  for (const TreatmentInfo* t : treatments()) names.push_back(t->name);
  return names;
}

void validate(const TreatOptions& o) {
  find_treatment(o.treatment);
  // Every treatment's options are checked whatever the treatment, as identify's are.
  for (const auto& use : treatment_options())
    if (use.option->check) use.option->check(o);
}

data::ImageSet without_examples(const data::ImageSet& train, const std::vector<int64_t>& causes) {
  std::vector<uint8_t> drop(static_cast<size_t>(train.n), 0);
  for (int64_t i : causes) {
    if (i < 0 || i >= train.n) fail("cause index {} outside the training set of {}", i, train.n);
    drop[static_cast<size_t>(i)] = 1;
  }
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < train.n; ++i)
    if (!drop[static_cast<size_t>(i)]) keep.push_back(i);
  return data::take(train, keep);
}

TreatResult treat(Module& model, const data::ImageSet& train, const std::vector<int64_t>& causes,
                  const data::ImageSet& fq, const TreatOptions& o) {
  validate(o);
  require_finite_parameters(model, o.treatment, "in the model to repair (before step II)");
  TreatResult result;
  result.treatment = o.treatment;
  const auto t0 = Clock::now();
  // Newton removal and EWC-deletion move the evaluated model (BatchNorm on its running
  // statistics); fine-tuning and retraining train in training mode (train_classifier sets it),
  // which updates the running statistics as any training does.
  ModeGuard evaluation_mode(model, false);
  const ModelSnapshot before = snapshot(model);
  try {
    const data::ImageSet kept = without_examples(train, causes);
    result.stats["removed"] = static_cast<double>(train.n - kept.n);
    const TreatmentInfo& treatment = find_treatment(o.treatment);
    if (treatment.trains) {
      if (kept.n == 0) fail("{}: the cause set covers the whole training set", o.treatment);
      TreatmentRun run{model, train, kept, fq, o, result};
      treatment.run(run);
    } else {
      if (causes.empty()) fail("{}: the cause set is empty", o.treatment);
      std::vector<int64_t> sorted = causes;
      std::sort(sorted.begin(), sorted.end());
      const data::ImageSet cause_set = data::take(train, sorted);
      TreatmentRun run{model, train, cause_set, fq, o, result};
      treatment.run(run);
    }
  } catch (...) {
    restore(model, before);
    throw;
  }
  result.seconds = since(t0);
  return result;
}

}  // namespace lethe::repair
