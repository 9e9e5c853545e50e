#pragma once
// EWC-influence (the paper's Step I, docs/method.md): a continual-learning update on Fq anchored
// by the Fisher at θ̂ (diagonal for ewc, KFAC for kfac-ewc), r(z) = ℓ(z; θ*) − ℓ(z; θ̂). Its
// options live here, beside the method; IdentifyOptions holds them as `ewc`.
#include <cstdint>

namespace lethe::repair {

struct EwcUpdateOptions {
  double lambda = 0.0;         // extra L2 anchor (paper: 0)
  double lr = 1e-3;            // Adam step size of the update on Fq
  int max_steps = 200;
  int patience = 10;           // steps without a better criterion before stopping (docs/method.md)
  int64_t update_batch = 128;  // Fq examples per update step (an unbiased estimate of ℓ(Fq)); 0: all
  double holdout = 0.1;        // fraction of Fq held out for early stopping
};

}  // namespace lethe::repair
