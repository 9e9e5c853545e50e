// Run alone and under mpirun by tests/parallel/test_passes.cpp: repair's dataset-wide passes on
// a seeded mnist-cnn and 300 seeded random images (batches of 32: 10 batches, the last short, so
// two ranks take 5 and 5), written by rank 0 as raw little-endian doubles, one block a pass:
//   passes_check OUT
// Blocks, in order: per-example losses, per-example dots with two queries, squared norms, the
// empirical and the sampled (2 draws) diagonal Fisher, the summed gradient, the Fisher- and
// GGN-vector products, and every KFAC factor (A then G, layer by layer).
#include <omp.h>

#include <cstdio>
#include <string>
#include <vector>

#include "nn/models.h"
#include "parallel/comm.h"
#include "influence/kfac.h"
#include "influence/params.h"
#include "influence/quantities.h"
#include "util/atomic_file.h"
#include "util/rng.h"

using namespace lethe;

int main(int argc, char** argv) {
  try {
    parallel::start(argc, argv);
    if (argc < 2) fail("usage: passes_check OUT");
    auto& comm = parallel::comm();
    if (comm.rank() != 0) set_file_writes(false);
    // One thread everywhere: a GEMM's float rounding may depend on how many threads split it,
    // and the comparison is of ranks, not of thread counts.
    omp_set_num_threads(1);
    Rng rng(11);
    auto model = make_mnist_cnn(rng);
    data::ImageSet set;
    set.n = 300, set.height = 28, set.width = 28;
    set.pixels.resize(static_cast<size_t>(set.n * 28 * 28));
    for (auto& p : set.pixels) p = static_cast<float>(rng.uniform());
    for (int64_t i = 0; i < set.n; ++i) set.labels.push_back(static_cast<int32_t>(rng.below(10)));
    for (int64_t i = 0; i < set.n; ++i) set.source_index.push_back(i);

    repair::PassOptions pass;
    pass.batch = 32;
    const int64_t p = repair::ParamLayout::of(*model).total;
    std::vector<double> out;
    auto put = [&](const auto& v) {
      out.push_back(static_cast<double>(v.size()));
      out.insert(out.end(), v.begin(), v.end());
    };
    put(repair::per_example_losses(*model, set, pass));
    std::vector<float> queries(static_cast<size_t>(2 * p));
    for (auto& q : queries) q = static_cast<float>(rng.normal());
    put(repair::per_example_dots(*model, set, queries, 2, pass));
    put(repair::per_example_sq_norms(*model, set, pass));
    repair::FisherOptions empirical, sampled;
    sampled.kind = repair::FisherKind::Sampled;
    sampled.mc_samples = 2;
    sampled.seed = 3;
    put(repair::diagonal_fisher(*model, set, empirical, pass));
    put(repair::diagonal_fisher(*model, set, sampled, pass));
    put(repair::summed_gradient(*model, set, pass));
    std::vector<double> v(static_cast<size_t>(p));
    for (auto& x : v) x = rng.normal();
    put(repair::fisher_vector_product(*model, set, v, pass));
    put(repair::ggn_vector_product(*model, set, v, pass));
    for (const auto& l : repair::kfac_factors(*model, set, sampled, pass).layers) {
      put(l.A);
      put(l.G);
      put(l.pairs);
    }
    comm.finish();
    write_file_atomic(argv[1], std::string_view(reinterpret_cast<const char*>(out.data()), out.size() * sizeof(double)));
    comm.close();
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "passes_check: %s\n", e.what());
    return 1;
  }
}
