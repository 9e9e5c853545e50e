#include "repair/heldout_stop.h"

namespace lethe::repair {

HeldoutStop::HeldoutStop(const StopEvaluation& start, int patience, double tolerance, bool has_heldout)
    : start_(start), patience_(patience), tolerance_(tolerance), has_heldout_(has_heldout) {}

bool HeldoutStop::record(StopEvaluation& e) {
  // Accuracies are ratios of counts; the slack keeps "start − tolerance" from excluding an epoch
  // that sits exactly on it through the rounding of the subtraction.
  constexpr double kSlack = 1e-12;
  e.within = !has_heldout_ || e.heldout >= start_.heldout - tolerance_ - kSlack;
  bool better;
  if (!has_best_) better = true;
  else if (e.within) better = !best_.within || e.fq > best_.fq;
  else better = !best_.within && e.heldout > best_.heldout;
  if (better) {
    best_ = e;
    has_best_ = true;
    since_best_ = 0;
  } else {
    ++since_best_;
  }
  return better;
}

}  // namespace lethe::repair
