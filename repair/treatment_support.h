#pragma once
// What the Step II treatments of repair/treatments/ share.
#include <string>

#include "learning/train.h"
#include "repair/registry.h"
#include "repair/treat.h"

namespace lethe::repair {

// Adam on D \ C for `epochs` at `lr`, batches of options.batch in the finetune-order stream,
// augmented as the base model was; progress and epoch lines reported as `stage`.
TrainOptions train_options(const TreatOptions& options, int epochs, double lr, const std::string& stage);
double accuracy(Module& model, const data::ImageSet& set);  // 0 for an empty set
double sum_loss(Module& model, const data::ImageSet& set);
void log(const TreatOptions& options, const std::string& line);

}  // namespace lethe::repair
