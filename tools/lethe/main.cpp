// lethe: find the training examples behind a model's failures and make the model forget them.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include <fmt/format.h>

#include "kernels/cpu/blas.h"
#include "parallel/comm.h"
#include "tools/lethe/cli.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace {

// The end of a run of several ranks (docs/scale-out.md): a rank that failed joins the failure
// agreement, one that went well the last collective, so every rank learns the run's first
// failure; rank 0 alone says it, naming the rank, and every rank exits with its code.
int finish_ranks(int code, const std::string& message, bool remote) {
  auto& comm = lethe::parallel::comm();
  lethe::parallel::FailureReport failure{comm.rank(), code, message};
  bool failed = code != 0 || remote;
  if (remote) {
    failure = comm.failure();
  } else {
    try {
      if (code != 0) failure = comm.fail(message, code);
      else comm.finish();
    } catch (const lethe::parallel::RemoteFailure& f) {
      failure = {f.rank(), f.exit_code(), f.what()};
      failed = true;
    }
  }
  if (failed && comm.rank() == 0)
    std::fprintf(stderr, "lethe: error: rank %d of %d: %s\n", failure.rank, comm.size(), failure.message.c_str());
  comm.close();
  return failed ? failure.exit_code : 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace lethe;
  try {
    // A launcher (mpirun, srun) that started several ranks: MPI, and rank 0 alone writes.
    parallel::start(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lethe: error: %s\n", e.what());
    return 1;
  }
  auto& comm = parallel::comm();
  if (comm.rank() != 0) {
    set_file_writes(false);
    // Progress, results and errors come from rank 0 only (errors of other ranks reach it).
    if (!std::freopen("/dev/null", "w", stdout) || !std::freopen("/dev/null", "w", stderr)) return 1;
  }
  CLI::App app{"lethe " LETHE_VERSION
               " - repairs neural networks: finds the training examples that cause a model's failures "
               "and makes the model forget them.",
               "lethe"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", LETHE_VERSION);
  cli::GlobalOptions global;
  app.add_option("--device", global.device, "Where to run: cpu | cuda | auto (the GPU when one is present)")
      ->capture_default_str();
  app.add_option("--threads", global.threads, "CPU threads for OpenMP and BLAS (0 = all cores)")->capture_default_str();
  app.add_option("--seed", global.seed, "Seed for every random choice (subset, noise, init, batch order)")
      ->capture_default_str();
  app.add_flag("--quiet", global.quiet, "No progress on stderr");
  app.add_flag("--tf32", global.tf32,
               "On the GPU, let matrix products and convolutions use TF32 tensor cores: a ResNet-18 training step "
               "ran 2.5x faster on an H200, with products rounded to 10-bit mantissas, so results stray further "
               "from the CPU's (no effect on the CPU)");
  app.footer("Run `lethe <command> --help` for a command's options. Results go to stdout, progress to stderr.");

  cli::add_fetch_data_command(app, global);
  cli::add_make_data_command(app, global);
  cli::add_train_command(app, global);
  cli::add_eval_command(app, global);
  cli::add_identify_command(app, global);
  cli::add_treat_command(app, global);
  cli::add_repair_command(app, global);
  cli::add_experiment_command(app, global);
  cli::add_benchmark_command(app, global);
  cli::add_attribute_command(app, global);
  cli::add_predict_command(app, global);
  cli::add_info_command(app, global);

  int code = 0;
  std::string message;
  bool remote = false;
  try {
    // SIGINT/SIGTERM stop a long job between steps; the job says what it kept and exits 130/143.
    install_interrupt_handlers();
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      const int shown = app.exit(e);
      return comm.multi() ? finish_ranks(shown, "", false) : shown;
    }
    std::string what = e.what();
    // With no subcommand recognised, CLI11 only says one is required; name the word at fault.
    if (app.get_subcommands().empty() && !app.remaining().empty()) {
      const std::string word = app.remaining().front();
      std::string known;
      for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) known += (known.empty() ? "" : ", ") + sub->get_name();
      what = word.rfind('-', 0) == 0 ? fmt::format("unknown option '{}'", word)
                                     : fmt::format("unknown command '{}' (known: {})", word, known);
    }
    message = what + " (see `lethe --help`)";
    code = 2;
  } catch (const parallel::RemoteFailure& e) {  // another rank failed; this one learnt it in a collective
    message = e.what();
    code = e.exit_code();
    remote = true;
  } catch (const Interrupted& e) {
    message = e.what();
    code = e.exit_code();
  } catch (const UsageError& e) {
    message = e.what();
    code = 2;
  } catch (const std::exception& e) {
    message = e.what();
    code = 1;
  }
  if (comm.multi()) return finish_ranks(code, message, remote);
  if (code != 0) std::fprintf(stderr, "lethe: error: %s\n", message.c_str());
  return code;
}
