// The CIFAR-10 data path: reading the full training split (five generated 10,000-record batches,
// the real format and size) and augmenting a training batch.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <unistd.h>

#include "datasets/cifar10.h"
#include "datasets/transforms.h"
#include "util/rng.h"

namespace {

namespace fs = std::filesystem;

// A generated CIFAR-10 binary folder, written once per process and removed at exit.
class GeneratedCifar {
 public:
  GeneratedCifar() : dir_(fs::temp_directory_path() / ("lethe-bench-cifar-" + std::to_string(::getpid()))) {
    fs::create_directories(dir_);
    std::mt19937 gen(1);
    std::string batch(static_cast<size_t>(10000 * lethe::data::kCifar10RecordBytes), '\0');
    for (const auto& name : lethe::data::cifar10_files(lethe::data::Split::Train)) {
      for (size_t r = 0; r < 10000; ++r) {
        char* record = batch.data() + r * lethe::data::kCifar10RecordBytes;
        record[0] = static_cast<char>(r % 10);
        for (int64_t p = 1; p < lethe::data::kCifar10RecordBytes; ++p) record[p] = static_cast<char>(gen());
      }
      std::ofstream((dir_ / name).string(), std::ios::binary).write(batch.data(), static_cast<std::streamsize>(batch.size()));
    }
  }
  ~GeneratedCifar() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string dir() const { return dir_.string(); }

 private:
  fs::path dir_;
};

void BM_Cifar10ReadTrainSplit(benchmark::State& state) {
  static const GeneratedCifar data;
  for (auto _ : state) {
    const auto set = lethe::data::read_cifar10(data.dir(), lethe::data::Split::Train);
    benchmark::DoNotOptimize(set.pixels.data());
  }
  state.SetItemsProcessed(state.iterations() * 50000);
  state.SetBytesProcessed(state.iterations() * 50000 * lethe::data::kCifar10RecordBytes);
}
BENCHMARK(BM_Cifar10ReadTrainSplit)->Unit(benchmark::kMillisecond)->MinTime(2.0);

void BM_AugmentBatch128(benchmark::State& state) {
  std::vector<float> batch(128 * 3 * 32 * 32, 0.5f);
  lethe::Rng rng(0);
  const lethe::data::Augmentation augmentation{4, true, {-1.0f, -1.0f, -1.0f}};
  for (auto _ : state) {
    lethe::data::augment_images(batch.data(), 128, 3, 32, 32, augmentation, rng);
    benchmark::DoNotOptimize(batch.data());
  }
  state.SetItemsProcessed(state.iterations() * 128);
}
BENCHMARK(BM_AugmentBatch128)->Unit(benchmark::kMicrosecond);

}  // namespace
