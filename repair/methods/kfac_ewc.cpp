// kfac-ewc: EWC-influence anchored by the KFAC Fisher instead of its diagonal.
#include "repair/method_support.h"

LETHE_METHOD(kfac_ewc) {
  using namespace lethe::repair;
  static const MethodInfo m = {
      .name = "kfac-ewc",
      .summary = "EWC-influence with the KFAC Fisher as the anchor",
      .position = 20,
      .options = ewc_influence_options(),
      .run = [](MethodRun& run) { ewc_influence(run, /*kfac_anchor=*/true); },
      .run_queries = [](QueryRun& run) { ewc_influence_per_query(run, /*kfac_anchor=*/true); },
      .self_influence_note = "its score of z is the loss change of z after an update on the query: one update per training example, N in all",
  };
  return m;
}
