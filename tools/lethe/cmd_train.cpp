#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "learning/train.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "tools/lethe/cli.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace lethe::cli {
namespace {

struct TrainArgs {
  data::DataSpec spec;
  std::string model;  // empty: the dataset's default model
  AugmentFlags augment;
  int epochs = 20;
  int64_t batch = 64;
  float lr = 1e-3f;
  float weight_decay = 0.0f;
  std::string optimizer = "adam";
  double momentum = 0;
  std::string out, save_dtype = "f32";
  bool json = false;
  std::optional<uint64_t> init_seed;  // the initialisation's and batch order's seed; default --seed
  std::string keep_epochs;            // folder for a checkpoint of every --keep-every'th epoch
  int keep_every = 1;
};

// The recipe's numbers, and --keep-epochs' folder made: usage errors before any work.
void check_recipe(const TrainArgs& a) {
  if (a.epochs < 0) throw UsageError(fmt::format("--epochs {}: must be >= 0", a.epochs));
  if (a.batch < 1) throw UsageError(fmt::format("--batch {}: must be >= 1", a.batch));
  if (!(a.lr > 0)) throw UsageError(fmt::format("--lr {}: must be > 0", a.lr));
  if (a.keep_every < 1) throw UsageError(fmt::format("--keep-every {}: must be >= 1", a.keep_every));
  if (a.keep_epochs.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(a.keep_epochs, ec);
  if (ec || !std::filesystem::is_directory(a.keep_epochs))
    throw UsageError(fmt::format("--keep-epochs {}: cannot make a folder there ({})", a.keep_epochs,
                                 ec ? ec.message() : "a file is in the way"));
}

void run_train(const GlobalOptions& global, TrainArgs& a) {
  const Device device = setup(global);
  a.spec.seed = global.seed;
  data::dataset_geometry(a.spec.dataset);  // unknown dataset: usage error before any work
  if (a.model.empty()) a.model = default_model(a.spec.dataset);
  check_model_fits(a.model, a.spec.dataset);
  check_recipe(a);
  const OptimizerChoice optimizer{parse_optimizer_kind(a.optimizer), a.momentum};
  validate(optimizer);
  const DType save_dtype = parse_save_dtype(a.save_dtype);
  Progress progress(global.quiet);
  const auto t0 = Clock::now();
  data::PreparedData d = load_data(a.spec, device, progress);
  progress.line(fmt::format("data: {} training examples (noise: {}, {} corrupted), {} test examples", d.train.n,
                            a.spec.noise, std::count(d.noisy.begin(), d.noisy.end(), 1), d.test.n));

  const ModelSpec spec = model_spec(a.model);
  if (spec.channels != d.train.channels || spec.height != d.train.height || spec.width != d.train.width)
    throw UsageError(fmt::format("--model {} takes {}x{}x{} images but the data's are {}x{}x{}", a.model, spec.channels,
                                 spec.height, spec.width, d.train.channels, d.train.height, d.train.width));
  // --seed picks D (its subset and noise); --init-seed, when given, the initialisation and the
  // batch order apart from it, so models trained from several of them share D (TRAK's ensembles).
  const uint64_t init_seed = a.init_seed.value_or(global.seed);
  auto model = init_base_model(a.model, init_seed);
  model->to(device);
  progress.line(fmt::format("model: {} ({} parameters) on {}; optimiser {}", a.model, model->parameter_count(),
                            device_name(device), describe(optimizer)));

  const bool augment = a.augment.resolve(a.spec.dataset);
  TrainOptions opt = base_training(init_seed, a.epochs, a.batch, a.lr,
                                   augment ? std::optional(data::training_augmentation(d)) : std::nullopt, optimizer);
  set_weight_decay(opt, a.weight_decay);
  opt.on_batch = [&](int64_t done, int64_t total) { progress.update("train", done, total); };
  auto meta = data_metadata(a.spec, d.mean, d.stddev);
  meta["lethe.train.augment"] = augment ? "1" : "0";
  meta["lethe.train.epochs"] = std::to_string(a.epochs);
  meta["lethe.train.batch"] = std::to_string(a.batch);
  meta["lethe.train.lr"] = fmt::format("{}", a.lr);
  meta["lethe.train.weight_decay"] = fmt::format("{}", a.weight_decay);
  record_optimizer(optimizer, meta);
  if (a.init_seed) meta["lethe.train.init_seed"] = std::to_string(*a.init_seed);
  // Every finished epoch replaces --out (atomically), so a run that is interrupted, diverges or
  // fails later keeps its last good model; "lethe.train.epochs_done" says how far it got.
  int saved_epoch = 0;
  opt.on_epoch = [&](const EpochStats& s) {
    progress.line(fmt::format("epoch {:>3}/{}  loss {:.4f}  train acc {:.4f}  {:.2f}s", s.epoch, s.epochs, s.loss,
                              s.accuracy, s.seconds));
    if (!a.keep_epochs.empty() && (s.epoch % a.keep_every == 0 || s.epoch == s.epochs)) {
      // The trajectory, for TracIn over checkpoints (identify/benchmark --checkpoints).
      auto kept_meta = meta;
      kept_meta["lethe.train.epochs_done"] = std::to_string(s.epoch);
      save_checkpoint(fmt::format("{}/epoch-{:04d}.safetensors", a.keep_epochs, s.epoch), *model, a.model, kept_meta,
                      save_dtype);
    }
    if (s.epoch == s.epochs) return;  // the last one is saved below, with its test accuracy
    meta["lethe.train.epochs_done"] = std::to_string(s.epoch);
    save_checkpoint(a.out, *model, a.model, meta, save_dtype);
    saved_epoch = s.epoch;
  };
  const auto kept = [&] {
    return saved_epoch > 0 ? fmt::format("kept '{}' from epoch {} of {}", a.out, saved_epoch, a.epochs)
                           : std::string("no epoch of this run was saved");
  };
  std::vector<EpochStats> history;
  EvalResult test;
  try {
    history = train_classifier(*model, d.train, opt);
    test = evaluate(*model, d.test);
    meta["lethe.train.epochs_done"] = std::to_string(a.epochs);
    meta["lethe.train.test_accuracy"] = fmt::format("{:.6f}", test.accuracy);
    save_checkpoint(a.out, *model, a.model, meta, save_dtype);
  } catch (const Interrupted& e) {
    throw Interrupted(e.signal(), fmt::format("{}; {}", e.what(), kept()));
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    fail("{}; {}", e.what(), kept());
  }
  const double seconds = since(t0);

  if (a.json) {
    nlohmann::json j = report::provenance_json(run_info(global, device, data::data_dir(a.spec)));
    j["model"] = spec.name;
    j["normalisation"] = normalisation_json(a.spec, d.mean, d.stddev);
    j["out"] = a.out;
    j["n_train"] = d.train.n;
    j["epochs"] = a.epochs;
    j["test_accuracy"] = test.accuracy;
    j["train_loss"] = history.empty() ? 0.0 : history.back().loss;
    j["seconds"] = seconds;
    j["epoch_seconds"] = nlohmann::json::array();
    for (const auto& h : history) j["epoch_seconds"].push_back(h.seconds);
    print_result(j.dump(2) + "\n");
  } else {
    print_result(fmt::format("test accuracy {:.4f} ({} examples)\nsaved {}\n", test.accuracy, test.n, a.out));
  }
}

}  // namespace

void add_train_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = app.add_subcommand("train", "Train a model on the training set D (seeded subset, optional noise)");
  auto a = std::make_shared<TrainArgs>();
  add_data_options(cmd, a->spec);
  cmd->add_option("--model", a->model,
                  "Architecture: mnist-cnn | cifar-cnn | resnet18 (CIFAR form) | resnet18-w<k> (first-stage width k, "
                  "e.g. resnet18-w8) | FILE.json (a model spec, see models/ and docs/models.md; the checkpoint "
                  "records it) (default: the dataset's, mnist-cnn or cifar-cnn)");
  add_save_dtype_option(cmd, a->save_dtype);
  add_augment_options(cmd, a->augment);
  cmd->add_option("--epochs", a->epochs, "Passes over D")->capture_default_str();
  cmd->add_option("--batch", a->batch, "Examples per optimiser step")->capture_default_str();
  cmd->add_option("--lr", a->lr, "Learning rate of the optimiser")->capture_default_str();
  add_optimizer_options(cmd, a->optimizer, a->momentum);
  cmd->add_option("--weight-decay", a->weight_decay, "L2 weight decay")->capture_default_str();
  cmd->add_option("--keep-epochs", a->keep_epochs,
                  "Also write the model after every --keep-every'th epoch (and the last) to "
                  "FOLDER/epoch-NNNN.safetensors: the training trajectory, for TracIn over checkpoints");
  cmd->add_option("--keep-every", a->keep_every, "Epochs between the checkpoints --keep-epochs writes")
      ->capture_default_str();
  cmd->add_option("--init-seed", a->init_seed,
                  "Seed of the initialisation and the batch order only (default: --seed, which also picks D's "
                  "subset and noise): models of one --seed and several --init-seed share D, as the members of "
                  "TRAK's ensembles do");
  cmd->add_option("--out", a->out,
                  "Checkpoint to write (safetensors; replaced atomically after every epoch, so an interrupted "
                  "run keeps its last complete epoch)")
      ->required();
  cmd->add_flag("--json", a->json, "Print one JSON document on stdout instead of text");
  cmd->callback([&global, a] { run_train(global, *a); });
}

}  // namespace lethe::cli
