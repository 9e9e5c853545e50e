#include "influence/descent.h"

#include <algorithm>
#include <cmath>

#include "datasets/transforms.h"
#include "learning/batches.h"
#include "learning/train.h"
#include "nn/autograd.h"
#include "nn/descent_log.h"
#include "nn/optim.h"
#include "influence/params.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe::repair {
namespace {

using R = DescentRecord;

// Copies of the parameters' values on their device, to be overwritten by snapshots.
std::vector<Tensor> copies_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  out.reserve(params.size());
  for (const auto& p : params) out.push_back(p.clone());
  return out;
}

}  // namespace

DescentResult anchored_descent(Module& model, const data::ImageSet& set, const AnchoredDescent& d, Rng& rng) {
  const Device device = model.device();
  const int check_every = d.check_every > 0 ? d.check_every : (device == Device::CUDA ? 8 : 1);
  AdamHyper hyper;
  hyper.lr = static_cast<float>(d.lr);
  auto params = model.parameters();
  const auto named = model.named_parameters();
  Adam adam(params, hyper);
  DescentResult out;
  if (d.criterion) out.best = out.start = d.criterion().item();
  DescentLog log(device, static_cast<float>(out.start));
  // The best parameters so far and, when the host looks less often than every step, those at
  // the step the rule stopped at: the steps run after it are then undone from this copy.
  std::vector<Tensor> best, at_stop;
  if (d.criterion) best = copies_of(params);
  if (d.criterion && check_every > 1) at_stop = copies_of(params);
  const int64_t b = std::min(d.batch, set.n);
  ShuffledBatches batches(set.n, b, rng, d.drop_last);
  std::vector<Tensor> checked;  // the step's loss, then every parameter's gradient
  DescentLog::Record record{};
  int step = 0;
  for (step = 1; step <= d.max_steps; ++step) {
    check_interrupt("at {} step {}", d.who, step);
    const auto& idx = batches.next();
    adam.zero_grad();
    Labels labels;
    Tensor x = batch_images(set, idx, device, &labels);
    Tensor loss = scale(sum(cross_entropy(model.forward(x), labels)),
                        d.sign * static_cast<float>(set.n) / static_cast<float>(idx.size()));
    loss.backward();
    if (d.add_anchor_gradient) d.add_anchor_gradient(step);
    // One check of the loss and every gradient, before Adam can spread a NaN into θ.
    checked.assign(1, loss.detach());
    for (const auto& p : params) checked.push_back(p.grad());
    log.check_finite(checked, step);
    adam.step();
    if (d.progress) d.progress(step, d.max_steps);
    if (d.criterion) {
      log.track(d.criterion(), step, d.patience);
      log.copy_if(R::kImproved, params, best);
      if (!at_stop.empty()) log.copy_if(R::kStoppedNow, params, at_stop);
    }
    if (step % check_every != 0 && step != d.max_steps) continue;  // the last step is always read
    record = log.read();
    ++out.host_reads;
    if (record[R::kBadStep] != 0 || record[R::kCriterionBadStep] != 0 || record[R::kStopStep] != 0) break;
  }
  if (const int bad = static_cast<int>(record[R::kBadStep])) {
    const int which = static_cast<int>(record[R::kBadArray]);
    if (which == 0)
      fail("{}: the loss on {} became {} at step {}{}", d.who, d.set_name, record[R::kBadValue], bad, d.hint);
    fail("{}: the gradient of '{}' is not finite (NaN or Inf) at step {}", d.who, named.at(static_cast<size_t>(which - 1)).name,
         bad);
  }
  if (const int bad = static_cast<int>(record[R::kCriterionBadStep]))
    fail("{}: the stopping criterion became {} at step {}", d.who, record[R::kCriterionBadValue], bad);
  const int stop = static_cast<int>(record[R::kStopStep]);
  out.steps = stop ? stop : d.max_steps;
  // Steps the device ran past the stopping point (the host had not looked yet) are undone.
  if (stop && step > stop) {
    LETHE_CHECK(!at_stop.empty(), "{}: ran {} steps past the stopping point with no copy of it", d.who, step - stop);
    NoGradGuard ng;
    for (size_t k = 0; k < params.size(); ++k) params[k].copy_(at_stop[k]);
  }
  if (d.criterion) {
    out.best = record[R::kBest];
    out.best_step = static_cast<int>(record[R::kBestStep]);
    out.best_theta = concatenated(best);
  } else {
    out.best_step = out.steps;
    out.best_theta = flatten_params(model);
  }
  return out;
}

}  // namespace lethe::repair
