// The backend harness's perf mode: every case of the table (tests/kernels/backend_ops/ops.h, one
// row per entry of kernels/backend.inc) timed on each backend, one launch per iteration (waiting
// for the GPU after each), with the rate it reaches against the device's measured ceilings
// (bench/peak.h):
//   GFLOP/s and %peak  for the cases that compute (the SGEMM peak: OpenBLAS, cuBLAS FP32)
//   GB/s and %copy     for the memory-bound ones (compulsory traffic: each array read or written
//                      once, against the measured copy bandwidth)
//   build/lethe_bench --benchmark_filter='BackendOps/Cuda'           every entry on the GPU
//   build/lethe_bench --benchmark_filter='BackendOps/Cpu/.*ResNet'   the ResNet-18 shapes on the CPU
// Names are BackendOps/<Cpu|Cuda>/<entry>/<case>, the ResNet-18 cases marked "ResNet". The GPU's
// are skipped without one; an entry that adds to its outputs adds again each iteration, which
// changes its values, not its cost.
#include <benchmark/benchmark.h>

#include <chrono>
#include <string>

#include "kernels/backend_ops/ops.h"
#include "kernels/device.h"
#include "peak.h"

namespace lethe {
namespace {

using backend_ops::Case;
using backend_ops::Row;

void run_case(benchmark::State& state, const Case* c, Device dev) {
  if (dev == Device::CUDA && !device::cuda_available()) {
    state.SkipWithError((std::string("no GPU: ") + device::cuda_unavailable_reason()).c_str());
    return;
  }
  auto wait = [dev] {
    if (dev == Device::CUDA) device::cuda_synchronize();
  };
  backend_ops::Instance ins = c->make(dev);
  ins.launch();  // warm-up: handles, algorithm choices, first touch of scratch
  wait();
  double seconds = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    ins.launch();
    wait();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(dt);
    seconds += dt;
  }
  const double per_second = static_cast<double>(state.iterations()) / seconds;
  if (c->flops > 0) {
    const double gflops = c->flops * per_second * 1e-9, peak = bench::peak_gflops(dev);
    state.counters["GFLOP/s"] = gflops;
    if (peak > 0) state.counters["%peak"] = 100 * gflops / peak;
  }
  if (c->bytes > 0) {
    const double gbps = c->bytes * per_second * 1e-9, peak = bench::copy_peak_gbps(dev);
    state.counters["GB/s"] = gbps;
    if (peak > 0) state.counters["%copy"] = 100 * gbps / peak;
  }
}

// Registered before main() runs, as BENCHMARK does; the table only builds its cases' closures here.
const bool registered = [] {
  for (const Device dev : {Device::CPU, Device::CUDA}) {
    const std::string backend = dev == Device::CPU ? "Cpu" : "Cuda";
    for (const Row& row : backend_ops::table())
      for (const Case& c : row.cases) {
        std::string name = "BackendOps/" + backend + "/" + row.entry + "/" + c.shape + (c.resnet ? " ResNet" : "");
        for (char& ch : name)
          if (ch == ' ') ch = '_';
        benchmark::RegisterBenchmark(name.c_str(), run_case, &c, dev)->Unit(benchmark::kMicrosecond)->UseManualTime();
      }
  }
  return true;
}();

}  // namespace
}  // namespace lethe
