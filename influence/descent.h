#pragma once
// The anchored descent shared by EWC-influence (ewc, kfac-ewc) and EWC-deletion: Adam from θ̂ on
// sign · (|S|/|B|) Σ_B ℓ over shuffled batches B of a set S, plus the gradient of a quadratic
// anchor at θ̂, early-stopped on a criterion. EWC-influence descends on Fq (sign +1) and stops
// on the held-out Fq loss; EWC-deletion ascends on the causes (sign −1) and stops on Fq
// accuracy. Scaling each batch's loss to the whole set keeps it in proportion to the anchor.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "datasets/mnist.h"
#include "nn/module.h"
#include "util/rng.h"

namespace lethe::repair {

struct AnchoredDescent {
  const char* who = "";      // names the method in errors: "ewc", "ewc-delete"
  const char* set_name = ""; // names S in errors: "Fq", "C"
  const char* hint = "";     // appended to the error when S's loss stops being finite
  float sign = 1.0f;      // +1 minimises S's loss, −1 maximises it
  int64_t batch = 128;    // examples of S per step (at most |S|)
  bool drop_last = false; // drop each pass's short last batch
  double lr = 1e-3;
  int max_steps = 200;
  int patience = 10;      // steps without a better criterion before stopping
  // Adds the anchor's gradient to every parameter's .grad after the loss's backward pass.
  std::function<void(int step)> add_anchor_gradient;
  // Lower is better; evaluated at θ̂ and after every step, as a one-element tensor on the
  // model's device (it is compared there). Empty: no early stopping, the last step is the result.
  std::function<Tensor()> criterion;
  // Steps between the host's looks at the record (nn/descent_log.h): the finiteness checks, the
  // patience rule and the snapshot of the best parameters run on the model's device every step,
  // and the host waits for the device only every this many steps. The result does not depend on
  // it (steps run past the stopping point are undone); 0 chooses: 1 on the CPU, where looking
  // costs nothing, 8 on the GPU.
  int check_every = 0;
  std::function<void(int step, int max_steps)> progress;
};

struct DescentResult {
  std::vector<float> best_theta;  // θ at the best criterion (flattened, ParamLayout order)
  int steps = 0, best_step = 0;   // steps taken (up to where the rule stopped), and the best one
  double start = 0, best = 0;     // the criterion at θ̂ and at best_theta (0 without one)
  int host_reads = 0;             // times the host waited for the record
};

// Runs the descent on `model` from its current parameters, drawing the batches from `rng`.
// Leaves the model at its last step (the one the rule stopped at; not at best_theta). Throws
// naming the step when the loss, a gradient or the criterion stops being finite.
DescentResult anchored_descent(Module& model, const data::ImageSet& set, const AnchoredDescent& d, Rng& rng);

}  // namespace lethe::repair
