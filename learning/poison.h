#pragma once
// Adversarial poisoning (method.md, "Noise"): images made by the fast gradient sign method on a
// victim model trained on clean data, labelled with the victim's prediction. The data layer picks
// the images and keeps the mask (datasets/noise.h adversarial_poison); this is the attack.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "datasets/noise.h"
#include "nn/module.h"

namespace lethe {

// One FGSM step against `model`, which takes mean-subtracted input: for each image x of `images`
// (pixels in [0,1], labels the true classes) x' = clamp(x + epsilon * sign(∇x ℓ(f(x - mean), y)), 0, 1),
// then the label becomes the model's prediction on x'. Returns how many labels that changed.
// With `target` (one entry per class, -1 for none), an image of class y with target t = target[y]
// >= 0 takes a targeted step instead, towards t: x' = clamp(x - epsilon * sign(∇x ℓ(f(x - mean), t)), 0, 1).
int64_t fgsm_relabel(Module& model, data::ImageSet& images, const std::vector<float>& mean, double epsilon,
                     int64_t batch = 256, const std::vector<int>& target = {});

struct VictimOptions {
  std::string model = "mnist-cnn";  // architecture, as make_model names it
  int epochs = data::kDefaultVictimEpochs;
  double epsilon = data::kDefaultFgsmEpsilon;
  uint64_t seed = 0;  // initialisation and batch order of the victim
  std::vector<int> target;  // targeted FGSM: the class each class is pushed towards (-1: untargeted)
  Device device = Device::CPU;
  std::function<void(const std::string&)> log;  // one line per stage, when set
};

// The attack adversarial_poison applies: trains a fresh victim on the clean set (its own mean
// subtracted), then FGSM-relabels the targets against it.
data::Attack fgsm_victim_attack(const VictimOptions& options);

}  // namespace lethe
