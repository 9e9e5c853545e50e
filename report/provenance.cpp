#include "report/provenance.h"

namespace lethe::report {

nlohmann::json provenance_json(const RunInfo& run) {
  return {{"device", run.device},
          {"tf32", run.tf32},
          {"threads", run.threads},
          {"git_commit", run.git_commit},
          {"version", run.version}};
}

}  // namespace lethe::report
