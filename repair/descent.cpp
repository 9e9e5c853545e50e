#include "repair/descent.h"

#include <algorithm>
#include <cmath>

#include "datasets/transforms.h"
#include "learning/batches.h"
#include "learning/train.h"
#include "nn/finite.h"
#include "nn/optim.h"
#include "repair/params.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe::repair {

DescentResult anchored_descent(Module& model, const data::ImageSet& set, const AnchoredDescent& d, Rng& rng) {
  const Device device = model.device();
  AdamHyper hyper;
  hyper.lr = static_cast<float>(d.lr);
  Adam adam(model.parameters(), hyper);
  DescentResult out;
  out.best = out.start = d.criterion ? d.criterion() : 0.0;
  out.best_theta = flatten_params(model);
  const int64_t b = std::min(d.batch, set.n);
  ShuffledBatches batches(set.n, b, rng, d.drop_last);
  int since_best = 0, step = 0;
  for (step = 1; step <= d.max_steps; ++step) {
    check_interrupt("at {} step {}", d.who, step);
    const auto& idx = batches.next();
    adam.zero_grad();
    Labels labels;
    Tensor x = batch_images(set, idx, device, &labels);
    Tensor loss = scale(sum(cross_entropy(model.forward(x), labels)),
                        d.sign * static_cast<float>(set.n) / static_cast<float>(idx.size()));
    const float lv = loss.item();
    if (!std::isfinite(lv)) {
      require_finite_parameters(model, d.who, fmt::format("at step {}", step));
      fail("{}: the loss on {} became {} at step {}{}", d.who, d.set_name, lv, step, d.hint);
    }
    loss.backward();
    if (d.add_anchor_gradient) d.add_anchor_gradient(step);
    require_finite_gradients(model, d.who, fmt::format("at step {}", step));
    adam.step();
    if (d.progress) d.progress(step, d.max_steps);
    if (!d.criterion) {
      out.best_theta = flatten_params(model);
      out.best_step = step;
      continue;
    }
    const double v = d.criterion();
    if (!std::isfinite(v)) fail("{}: the stopping criterion became {} at step {}", d.who, v, step);
    if (v < out.best) {
      out.best = v;
      out.best_theta = flatten_params(model);
      out.best_step = step;
      since_best = 0;
    } else if (++since_best >= d.patience) {
      break;
    }
  }
  out.steps = std::min(step, d.max_steps);
  return out;
}

}  // namespace lethe::repair
