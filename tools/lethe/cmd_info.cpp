// `lethe info`: what lethe runs on and with which kernels, so a figure can name its machine and a
// slow or wrong run can be traced to its BLAS core, threads or GPU.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

#include "kernels/cpu/runtime_info.h"
#include "parallel/comm.h"
#include "tools/lethe/cli.h"

namespace lethe::cli {
namespace {

// One row a core of the table from features to OpenBLAS cores (kernels/cpu/blas.h), with whether
// this CPU runs it, whether the linked OpenBLAS carries it and whether it is lethe's pick here.
struct CoreRow {
  std::string core, needs;
  bool runs_here, in_library, pick;
};
std::vector<CoreRow> core_rows(const cpu::CpuFeatures& c) {
  const auto& lib = cpu::blas_library_cores();
  const std::string pick = cpu::blas_core_for(c);
  std::vector<CoreRow> rows;
  for (const auto& rule : cpu::blas_core_table())
    rows.push_back({rule.core, rule.needs, rule.runs_on(c),
                    std::find(lib.begin(), lib.end(), rule.core) != lib.end(), pick == rule.core});
  return rows;
}

std::string core_table_text(const cpu::CpuFeatures& c) {
  std::string out = "blas core table (features -> OpenBLAS core, best first):\n";
  for (const CoreRow& row : core_rows(c))
    out += fmt::format("  {:<15} {:<55} {}\n", row.core, row.needs,
                       !row.in_library ? "not in this OpenBLAS"
                       : row.pick      ? "this CPU: lethe's pick"
                       : row.runs_here ? "this CPU: selectable"
                                       : "");
  return out;
}

nlohmann::json to_json(const cpu::RuntimeInfo& r) {
  nlohmann::json j;
  j["version"] = LETHE_VERSION;
  j["commit"] = git_commit();
  const cpu::CpuFeatures& c = r.cpu;
  j["cpu"] = {{"vendor", c.vendor},         {"brand", c.brand},
              {"family", c.family},         {"model", c.model},
              {"stepping", c.stepping},     {"hypervisor", c.hypervisor},
              {"logical_cpus", r.logical_cpus}, {"features", c.names()}};
  j["blas"] = {{"library", r.blas.library},   {"threading", r.blas.parallel}, {"detected_core", r.blas.detected},
               {"core", r.blas.core},         {"chosen_by", r.blas.chosen_by}, {"reason", r.blas.reason},
               {"core_for_features", cpu::blas_core_for(c)}, {"selectable_cores", cpu::blas_cores_for(c)},
               {"warning", r.blas.warning}};
  nlohmann::json table = nlohmann::json::array();
  for (const CoreRow& row : core_rows(c))
    table.push_back({{"core", row.core}, {"needs", row.needs}, {"runs_here", row.runs_here},
                     {"in_library", row.in_library}, {"pick", row.pick}});
  j["blas"]["core_table"] = table;
  j["convolutions"] = r.convolutions;
  j["threads"] = r.threads;
  j["openmp"] = r.openmp;
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& g : r.cuda.devices)
    devices.push_back({{"name", g.name},
                       {"compute_capability", std::to_string(g.major) + "." + std::to_string(g.minor)},
                       {"multiprocessors", g.multiprocessors},
                       {"memory_bytes", g.memory_bytes}});
  j["cuda"] = {{"built", r.cuda.built},
               {"runtime_version", r.cuda.runtime_version},
               {"driver_version", r.cuda.driver_version},
               {"cublas_version", r.cuda.cublas_version},
               {"cudnn_version", r.cuda.cudnn_version},
               {"available", device::cuda_available()},
               {"unavailable_reason", device::cuda_available() ? "" : device::cuda_unavailable_reason()},
               {"devices", devices}};
  const auto& world = parallel::comm();
  j["parallel"] = {{"mpi_built", parallel::built_with_mpi()},
                   {"nccl_built", parallel::built_with_nccl()},
                   {"backend", world.backend()},
                   {"rank", world.rank()},
                   {"ranks", world.size()},
                   {"local_rank", world.local_rank()}};
  return j;
}

void print_info(const GlobalOptions& global, bool json) {
  setup(global);
  const cpu::RuntimeInfo r = cpu::runtime_info();
  if (json) {
    print_result(to_json(r).dump(2) + "\n");
    return;
  }
  std::string out = fmt::format("lethe {} (commit {})\n", LETHE_VERSION, git_commit());
  for (const auto& [key, value] : cpu::runtime_summary(r)) out += fmt::format("{:<15} {}\n", key + ":", value);
  const auto& c = parallel::comm();
  out += fmt::format("{:<15} {} ({} of {} ranks); built with MPI: {}, NCCL: {}\n", "parallel:", c.backend(), c.rank(),
                     c.size(), parallel::built_with_mpi() ? "yes" : "no", parallel::built_with_nccl() ? "yes" : "no");
  out += core_table_text(r.cpu);
  print_result(out);
}

}  // namespace

void add_info_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand(
      "info",
      "What lethe runs on: version and commit, the CPU and its features, the BLAS kernels chosen and why, threads, "
      "the CPU convolutions' library and ISA, the OpenMP runtime, and the CUDA libraries and devices");
  auto json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *json, "Print one JSON document on stdout instead of the table");
  cmd->footer(
      "Environment: LETHE_BLAS_CORE=<core> (one of the selectable cores; default: chosen from the CPU's features), "
      "OPENBLAS_CORETYPE (kept when it names a core of the features' level, replaced otherwise), LETHE_BLAS_SIMULATE_DETECTED=<core> (tests: act as if OpenBLAS had "
      "detected that core), LETHE_CONV=im2col (convolutions through im2col + BLAS instead of oneDNN).");
  cmd->callback([&global, json] { print_info(global, *json); });
}

}  // namespace lethe::cli
