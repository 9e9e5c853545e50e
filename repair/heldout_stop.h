#pragma once
// Fine-tuning's held-out stopping rule (finetune --finetune-stop heldout; docs/method.md,
// "Fine-tuning's stopping rule"), as decisions on a sequence of evaluations, apart from training.
//
// Fine-tuning on D \ C repairs the failures while it moves the model, and at some point starts
// to cost what the model got right. The rule watches the two sides with what a user has: the
// accuracy on Fq (the failures it knows; Fh is never looked at) and on the examples of a
// held-out slice of D \ C that the model got right before fine-tuning, a stand-in for R. An
// epoch is admissible when that accuracy has not fallen more than `tolerance` below its value
// before fine-tuning (1, unless the caller measures otherwise); the best epoch is the admissible one of
// highest Fq accuracy (the earliest on ties: the least moved). The rule stops after `patience`
// evaluations without a new best. If no epoch is admissible, the best is the one of highest
// held-out accuracy (the least harm), and an admissible epoch always replaces it.
#include "repair/treat.h"

namespace lethe::repair {

class HeldoutStop {
 public:
  // `start`: the evaluation before fine-tuning (epoch 0); `tolerance` < 0 would admit nothing, so
  // it must be >= 0; a rule without a held-out slice passes has_heldout = false (all admissible).
  HeldoutStop(const StopEvaluation& start, int patience, double tolerance, bool has_heldout = true);

  // Records the evaluation after epoch e >= 1, setting e.within; true when it becomes the best
  // (the caller keeps a snapshot of the model as it is).
  bool record(StopEvaluation& e);
  // `patience` evaluations in a row without a new best.
  bool done() const { return since_best_ >= patience_; }
  bool has_best() const { return has_best_; }
  const StopEvaluation& best() const { return best_; }
  const StopEvaluation& start() const { return start_; }

 private:
  StopEvaluation start_, best_;
  int patience_;
  double tolerance_;
  bool has_heldout_;
  bool has_best_ = false;
  int since_best_ = 0;
};

}  // namespace lethe::repair
