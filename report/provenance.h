#pragma once
// What a result does not say about the run that made it: the one block every JSON output of
// lethe carries (results.json of experiment and benchmark, identify, treat, repair, train).
#include <string>

#include <nlohmann/json.hpp>

namespace lethe::report {

struct RunInfo {
  std::string device;     // "cpu" | "cuda"
  bool tf32 = false;      // TF32 tensor-core math on (only ever on a GPU)
  int threads = 0;
  std::string git_commit, version;
  std::string data_dir;   // where D and T were read from (reported with the settings)
};

// {"device", "tf32", "threads", "git_commit", "version"}: merge it into a result's JSON.
nlohmann::json provenance_json(const RunInfo& run);

}  // namespace lethe::report
