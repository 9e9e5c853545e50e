// lethe_bench's entry point: Google Benchmark's, with the machine and the kernels in the header
// (the CPU and its features, the BLAS core and why, threads, OpenMP, CUDA), so that every figure
// printed names what it ran on.
#include <benchmark/benchmark.h>

#include "kernels/cpu/runtime_info.h"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  for (const auto& [key, value] : lethe::cpu::runtime_summary(lethe::cpu::runtime_info()))
    benchmark::AddCustomContext("lethe " + key, value);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
