#include "tools/lethe/cli.h"

#include <cstdio>
#include <filesystem>

#include "kernels/cpu/blas.h"
#include "kernels/device.h"
#include "learning/recipe.h"
#include "nn/models.h"
#include "util/error.h"

namespace lethe::cli {

Device resolve_device(const std::string& name) {
  if (name == "cpu") return Device::CPU;
  if (name == "cuda") {
    if (!device::cuda_available()) fail("--device cuda: {}", device::cuda_unavailable_reason());
    return Device::CUDA;
  }
  if (name == "auto") return device::cuda_available() ? Device::CUDA : Device::CPU;
  throw UsageError(fmt::format("--device: unknown device '{}' (known: cpu, cuda, auto)", name));
}

Device setup(const GlobalOptions& global) {
  if (global.threads < 0) throw UsageError(fmt::format("--threads {}: must be >= 0", global.threads));
  cpu::ensure_blas_configured();  // a bad LETHE_BLAS_CORE stops here, before any work
  if (!global.quiet && !cpu::blas_info().warning.empty())
    std::fprintf(stderr, "lethe: warning: %s\n", cpu::blas_info().warning.c_str());
  cpu::set_num_threads(global.threads);
  const Device device = resolve_device(global.device);
  device::set_cuda_tf32(global.tf32 && device == Device::CUDA);
  return device;
}

namespace {

// A flag's value >= 0: for the settings whose negative values mean "the default" inside a
// DataSpec, so that a negative one given is refused rather than read as the default.
CLI::Validator non_negative() {
  return CLI::Validator(
      [](std::string& text) {
        double v = -1;
        try {
          v = std::stod(text);
        } catch (const std::exception&) {
        }
        return v >= 0 ? std::string() : "must be >= 0, not " + text + " (leave it out for the default)";
      },
      ">= 0");
}

}  // namespace

void add_data_options(CLI::App* cmd, data::DataSpec& spec) {
  cmd->add_option("--dataset", spec.dataset, "Dataset: mnist | cifar10")->capture_default_str();
  cmd->add_option("--data", spec.dir,
                  "Folder with the dataset's files (default data/<dataset>). MNIST: the four IDX files; CIFAR-10: "
                  "the binary version's data_batch_1.bin ... data_batch_5.bin and test_batch.bin, or the "
                  "cifar-10-batches-bin folder holding them");
  cmd->add_option("--subset", spec.subset, "Training examples drawn (seeded) from the training split; 0 = all")
      ->capture_default_str();
  cmd->add_option("--noise", spec.noise,
                  "Noise injected into D: none | label (MNIST 1<->7 p=0.4, 6<->9 p=0.3; CIFAR-10 plane<->bird "
                  "p=0.4, cat->dog 0.4, dog->cat 0.3) | input (a share of the images of MNIST classes 1,7,6,9 "
                  "salt-and-pepper, labels kept; of CIFAR-10 plane, bird, cat, dog Gaussian; see --noise-design) | "
                  "adversarial (those images replaced "
                  "by FGSM images made on a victim trained on the clean D, labelled with the victim's prediction)")
      ->capture_default_str();
  cmd->add_option("--noise-fraction", spec.noise_fraction,
                  "input/adversarial: share of the images of the noisy classes (MNIST 1,7,6,9; CIFAR-10 plane, "
                  "bird, cat, dog) corrupted")
      ->capture_default_str();
  cmd->add_option("--noise-amount", spec.noise_amount,
                  fmt::format("input: on MNIST the share of each corrupted image's pixels set to 0 or 1 (default {}), "
                              "on CIFAR-10 the Gaussian sigma on the [0,1] pixel scale (default {}); adversarial: "
                              "the FGSM step epsilon on the [0,1] pixel scale (default {})",
                              data::kDefaultSaltPepperAmount, data::kDefaultGaussianSigma, data::kDefaultFgsmEpsilon))
      ->check(non_negative());
  cmd->add_option("--victim-epochs", spec.victim_epochs, "adversarial: epochs the victim model trains on the clean D")
      ->capture_default_str();
  cmd->add_option("--noise-design", spec.design,
                  "How input/adversarial noise is made. input: pattern (MNIST's default; one fixed salt-and-pepper "
                  "pattern per noisy class, labels kept) | random (CIFAR-10's default; each image its own "
                  "salt-and-pepper or Gaussian noise). "
                  "adversarial: untargeted (default; FGSM away from the true class) | partner (targeted FGSM towards "
                  "the partner class, MNIST 1<->7, 6<->9). See docs/noise.md");
  cmd->add_option("--noisy-queries", spec.query_fraction,
                  fmt::format("input/adversarial: share of test images corrupted as queries, their labels kept "
                              "(random, untargeted: of the noisy classes' test images, the same corruption as D's; "
                              "pattern: of all test images, another class's pattern). Default {} for pattern and "
                              "partner, 0 otherwise",
                              data::kDefaultQueryFraction))
      ->check(non_negative());
  cmd->add_option("--mean", spec.mean,
                  "Normalise with this mean instead of D's: one value per channel (or one for all), on the [0,1] "
                  "pixel scale, e.g. 0.4914,0.4822,0.4465 (for a model trained elsewhere; a checkpoint that records "
                  "its normalisation refuses a different one)")
      ->delimiter(',');
  cmd->add_option("--std", spec.stddev,
                  "Divide by this standard deviation after --mean, per channel or one for all (default 1)")
      ->delimiter(',');
}

void add_model_option(CLI::App* cmd, std::string& model) {
  cmd->add_option("--model", model,
                  "Architecture of a checkpoint that records none (e.g. saved by PyTorch): mnist-cnn | cifar-cnn | "
                  "resnet18 | resnet18-w<k> | FILE.json (a model spec, see models/). A checkpoint that records its "
                  "architecture refuses a different one");
}

LoadedModel open_checkpoint(const std::string& path, const std::string& model, const GlobalOptions& global) {
  LoadedModel loaded = load_checkpoint(path, model);
  const std::string note = loaded.conversion_note();
  if (!note.empty() && !global.quiet) std::fprintf(stderr, "lethe: %s\n", note.c_str());
  return loaded;
}

void add_save_dtype_option(CLI::App* cmd, std::string& dtype) {
  cmd->add_option("--save-dtype", dtype,
                  "Dtype of the floating-point tensors in written checkpoints: f32 | f16 | bf16 (rounded to "
                  "nearest-even)")
      ->capture_default_str();
}

void add_optimizer_options(CLI::App* cmd, std::string& optimizer, double& momentum) {
  cmd->add_option("--optimizer", optimizer,
                  "Training optimiser: adam | sgd (SGD with --momentum, PyTorch's form; --lr is its step size)")
      ->capture_default_str();
  cmd->add_option("--momentum", momentum, "SGD's momentum, in [0, 1) (--optimizer sgd only)")->capture_default_str();
}

void add_fisher_options(CLI::App* cmd, std::string& fisher, int& mc_samples) {
  cmd->add_option("--fisher", fisher, "Fisher: empirical (given labels) | sampled (labels from the model)")
      ->capture_default_str();
  cmd->add_option("--mc-samples", mc_samples, "Label draws per example for --fisher sampled")->capture_default_str();
}

DType parse_save_dtype(const std::string& text) {
  if (text == "f32") return DType::F32;
  if (text == "f16") return DType::F16;
  if (text == "bf16") return DType::BF16;
  throw UsageError(fmt::format("--save-dtype: unknown dtype '{}' (known: f32, f16, bf16)", text));
}

nlohmann::json normalisation_json(const data::DataSpec& spec, const std::vector<float>& mean,
                                  const std::vector<float>& stddev) {
  return {{"mean", mean}, {"std", stddev}, {"source", spec.mean.empty() ? "computed from D" : "given"}};
}

data::PreparedData load_data(const data::DataSpec& spec, Device device, Progress& progress) {
  return prepare_data_with_victim(spec, device, [&progress](const std::string& text) { progress.line(text); });
}

void check_model_fits(const std::string& model, const std::string& dataset, const std::string& checkpoint) {
  const data::DatasetGeometry g = data::dataset_geometry(dataset);
  ModelSpec m;
  try {
    m = model_spec(model);
  } catch (const UsageError& e) {
    throw UsageError(fmt::format("--model: {}", e.what()));
  }
  const std::string shown = m.name;
  if (m.channels != g.channels || m.height != g.height || m.width != g.width || m.classes != g.classes)
    throw UsageError(fmt::format("{} takes {}x{}x{} images in {} classes, but --dataset {} has {}x{}x{} in {} "
                                 "(for {} use --model {})",
                                 checkpoint.empty() ? "--model " + shown
                                                    : fmt::format("the model in '{}' ({})", checkpoint, shown),
                                 m.channels, m.height, m.width, m.classes, dataset, g.channels, g.height,
                                 g.width, g.classes, dataset, default_model(dataset)));
}

bool AugmentFlags::resolve(const std::string& dataset) const {
  if (on) return true;
  if (off) return false;
  return data::augments_by_default(dataset);
}

void add_augment_options(CLI::App* cmd, AugmentFlags& flags) {
  auto* on = cmd->add_flag("--augment", flags.on,
                           "Augment training batches: random 32x32 crop of the image padded by 4 (black), random "
                           "horizontal flip, seeded (default: on for cifar10, off for mnist)");
  auto* off = cmd->add_flag("--no-augment", flags.off, "Train without augmentation");
  on->excludes(off);
}

std::map<std::string, std::string> data_metadata(const data::DataSpec& spec, const std::vector<float>& mean,
                                                 const std::vector<float>& stddev) {
  auto join = [](const std::vector<float>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{:.9g}", i ? "," : "", v[i]);
    return s;
  };
  return {{"lethe.data.dataset", spec.dataset},
          {"lethe.data.subset", std::to_string(spec.subset)},
          {"lethe.data.noise", spec.noise},
          {"lethe.data.noise_fraction", fmt::format("{}", spec.noise_fraction)},
          {"lethe.data.noise_amount", fmt::format("{}", data::noise_amount(spec))},
          {"lethe.data.victim_epochs", std::to_string(spec.victim_epochs)},
          {"lethe.data.noise_design", data::noise_design(spec)},
          {"lethe.data.noisy_queries", fmt::format("{}", data::query_fraction(spec))},
          {"lethe.data.seed", std::to_string(spec.seed)},
          {"lethe.data.mean", join(mean)},
          {"lethe.data.std", join(stddev)},
          {"lethe.data.normalisation", spec.mean.empty() ? "computed" : "given"}};
}

bool spec_from_metadata(const std::map<std::string, std::string>& meta, data::DataSpec& spec, std::vector<float>& mean,
                        std::vector<float>* stddev) {
  auto get = [&](const char* key) -> const std::string* {
    auto it = meta.find(key);
    return it == meta.end() ? nullptr : &it->second;
  };
  const std::string *dataset = get("lethe.data.dataset"), *subset = get("lethe.data.subset"),
                    *noise = get("lethe.data.noise"), *seed = get("lethe.data.seed"), *m = get("lethe.data.mean");
  if (!dataset || !subset || !noise || !seed || !m) return false;
  try {
    spec.dataset = *dataset;
    spec.subset = std::stoll(*subset);
    spec.noise = *noise;
    spec.seed = std::stoull(*seed);
    // Checkpoints from before these settings existed were made with the defaults.
    if (const auto* v = get("lethe.data.noise_fraction")) spec.noise_fraction = std::stod(*v);
    if (const auto* v = get("lethe.data.noise_amount")) spec.noise_amount = std::stod(*v);
    if (const auto* v = get("lethe.data.victim_epochs")) spec.victim_epochs = std::stoi(*v);
    // Before designs existed, input noise was the random design and nothing corrupted the queries.
    if (const auto* v = get("lethe.data.noise_design")) spec.design = *v;
    else if (spec.noise == "input") spec.design = "random";
    if (const auto* v = get("lethe.data.noisy_queries")) spec.query_fraction = std::stod(*v);
    else spec.query_fraction = 0;
    auto split = [](const std::string& text) {
      std::vector<float> values;
      size_t pos = 0;
      while (pos < text.size()) {
        size_t end = text.find(',', pos);
        if (end == std::string::npos) end = text.size();
        values.push_back(std::stof(text.substr(pos, end - pos)));
        pos = end + 1;
      }
      return values;
    };
    mean = split(*m);
    if (stddev) {
      const std::string* s = get("lethe.data.std");
      *stddev = s ? split(*s) : std::vector<float>(mean.size(), 1.0f);
      if (stddev->size() != mean.size()) return false;
    }
    if (const auto* n = get("lethe.data.normalisation"); n && *n == "given") {
      spec.mean = mean;
      const std::string* s = get("lethe.data.std");
      spec.stddev = s ? split(*s) : std::vector<float>(mean.size(), 1.0f);
    }
  } catch (const std::exception&) {
    return false;
  }
  return !mean.empty();
}

void check_out_dir(const std::string& dir) {
  if (std::filesystem::exists(dir) && !std::filesystem::is_directory(dir))
    fail("--out-dir '{}' exists and is not a folder", dir);
}

void print_result(const std::string& text) {
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

}  // namespace lethe::cli
