#include "datasets/noise.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "datasets/transforms.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace lethe::data {
namespace {

void check_class(const ImageSet& set, int c, const char* what) {
  if (c < 0 || c >= set.num_classes)
    fail("{}: class {} is outside 0..{}", what, c, set.num_classes - 1);
}

void check_probability(double p, const char* what, const char* name) {
  if (!(p >= 0.0 && p <= 1.0)) fail("{}: {} must be in [0, 1], got {}", what, name, p);
}

// Image noise assumes [0,1] pixels: after mean subtraction, clamping to [0,1] and setting
// values to 0/1 would silently produce a different corruption than the one documented.
void require_unit_pixels(const ImageSet& set, const char* what) {
  for (size_t i = 0; i < set.pixels.size(); ++i)
    if (!(set.pixels[i] >= 0.0f && set.pixels[i] <= 1.0f))
      fail("{}: pixel value {} at flat index {} is outside [0, 1]; apply noise before mean "
           "subtraction",
           what, set.pixels[i], i);
}

}  // namespace

std::vector<int64_t> choose_images(const ImageSet& set, const std::vector<int>& classes,
                                   double fraction, Rng& rng, const char* what) {
  check_probability(fraction, what, "fraction");
  std::vector<bool> in_scope(static_cast<size_t>(set.num_classes), false);
  for (int c : classes) {
    check_class(set, c, what);
    in_scope[static_cast<size_t>(c)] = true;
  }
  std::vector<int64_t> eligible;
  for (int64_t i = 0; i < set.n; ++i) {
    const int32_t y = set.labels[static_cast<size_t>(i)];
    if (y >= 0 && y < set.num_classes && in_scope[static_cast<size_t>(y)]) eligible.push_back(i);
  }
  const auto m = static_cast<int64_t>(eligible.size());
  const auto k = static_cast<int64_t>(std::llround(fraction * static_cast<double>(m)));
  for (int64_t i = 0; i < k; ++i) {
    const auto j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(m - i)));
    std::swap(eligible[static_cast<size_t>(i)], eligible[static_cast<size_t>(j)]);
  }
  eligible.resize(static_cast<size_t>(k));
  std::sort(eligible.begin(), eligible.end());
  return eligible;
}

std::vector<LabelFlip> mnist_label_flips() { return {{1, 7, 0.4}, {6, 9, 0.3}}; }

std::vector<LabelMap> cifar10_label_maps() {
  return {{0, 2, 0.4}, {2, 0, 0.4}, {3, 5, 0.4}, {5, 3, 0.3}};
}

std::vector<LabelMap> both_directions(const std::vector<LabelFlip>& flips) {
  std::vector<LabelMap> maps;
  for (const auto& f : flips) {
    maps.push_back({f.a, f.b, f.p});
    maps.push_back({f.b, f.a, f.p});
  }
  return maps;
}

std::vector<uint8_t> map_labels(ImageSet& set, const std::vector<LabelMap>& maps, Rng& rng) {
  constexpr const char* what = "label noise";
  if (static_cast<int64_t>(set.labels.size()) != set.n)
    fail("{}: {} labels for {} examples", what, set.labels.size(), set.n);
  std::vector<int> map_of_class(static_cast<size_t>(set.num_classes), -1);
  for (size_t m = 0; m < maps.size(); ++m) {
    const LabelMap& map = maps[m];
    check_class(set, map.from, what);
    check_class(set, map.to, what);
    check_probability(map.p, what, "probability");
    if (map.from == map.to) fail("{}: class {} is mapped to itself", what, map.from);
    int& slot = map_of_class[static_cast<size_t>(map.from)];
    if (slot >= 0) fail("{}: class {} is listed to change more than once", what, map.from);
    slot = static_cast<int>(m);
  }

  std::vector<uint8_t> mask(static_cast<size_t>(set.n), 0);
  for (size_t i = 0; i < mask.size(); ++i) {
    const int32_t y = set.labels[i];
    if (y < 0 || y >= set.num_classes) continue;
    const int m = map_of_class[static_cast<size_t>(y)];
    if (m < 0) continue;
    // One draw per in-scope example, so the draws of one class never depend on another's.
    if (rng.uniform() < maps[static_cast<size_t>(m)].p) {
      set.labels[i] = maps[static_cast<size_t>(m)].to;
      mask[i] = 1;
    }
  }
  return mask;
}

std::vector<uint8_t> flip_labels(ImageSet& set, const std::vector<LabelFlip>& flips, Rng& rng) {
  return map_labels(set, both_directions(flips), rng);
}

std::vector<uint8_t> salt_and_pepper(ImageSet& set, const std::vector<int>& classes,
                                     double fraction, double amount, Rng& rng) {
  constexpr const char* what = "salt-and-pepper noise";
  check_probability(amount, what, "amount");
  require_unit_pixels(set, what);
  const auto chosen = choose_images(set, classes, fraction, rng, what);
  std::vector<uint8_t> mask(static_cast<size_t>(set.n), 0);
  const int64_t size = set.image_size();
  for (int64_t i : chosen) {
    mask[static_cast<size_t>(i)] = 1;
    float* image = set.image(i);
    for (int64_t p = 0; p < size; ++p)
      if (rng.uniform() < amount) image[p] = rng.uniform() < 0.5 ? 0.0f : 1.0f;
  }
  return mask;
}

std::vector<uint8_t> gaussian_noise(ImageSet& set, const std::vector<int>& classes,
                                    double fraction, double sigma, Rng& rng) {
  constexpr const char* what = "gaussian noise";
  if (!(sigma >= 0.0 && std::isfinite(sigma)))
    fail("{}: sigma must be finite and non-negative, got {}", what, sigma);
  require_unit_pixels(set, what);
  const auto chosen = choose_images(set, classes, fraction, rng, what);
  std::vector<uint8_t> mask(static_cast<size_t>(set.n), 0);
  const int64_t size = set.image_size();
  for (int64_t i : chosen) {
    mask[static_cast<size_t>(i)] = 1;
    float* image = set.image(i);
    for (int64_t p = 0; p < size; ++p) {
      const double noisy = image[p] + sigma * rng.normal();
      image[p] = static_cast<float>(std::clamp(noisy, 0.0, 1.0));
    }
  }
  return mask;
}

std::vector<ClassPattern> draw_class_patterns(const std::vector<int>& classes, int64_t image_size, double amount,
                                              Rng& rng) {
  constexpr const char* what = "structured input noise";
  check_probability(amount, what, "amount");
  if (image_size < 1) fail("{}: images of {} values", what, image_size);
  std::vector<ClassPattern> patterns;
  for (int c : classes) {
    for (const auto& p : patterns)
      if (p.cls == c) fail("{}: class {} is listed twice", what, c);
    ClassPattern p{c, {}, {}};
    for (int64_t i = 0; i < image_size; ++i)
      if (rng.uniform() < amount) {
        p.index.push_back(i);
        p.value.push_back(rng.uniform() < 0.5 ? 0.0f : 1.0f);
      }
    patterns.push_back(std::move(p));
  }
  return patterns;
}

void stamp(float* image, const ClassPattern& pattern) {
  for (size_t j = 0; j < pattern.index.size(); ++j) image[pattern.index[j]] = pattern.value[j];
}

namespace {
void check_patterns(const ImageSet& set, const std::vector<ClassPattern>& patterns, const char* what) {
  require_unit_pixels(set, what);
  for (const auto& p : patterns) {
    check_class(set, p.cls, what);
    if (p.index.size() != p.value.size()) fail("{}: class {}'s pattern has {} indices and {} values", what, p.cls,
                                               p.index.size(), p.value.size());
    for (int64_t i : p.index)
      if (i < 0 || i >= set.image_size()) fail("{}: class {}'s pattern sets value {} of a {}-value image", what, p.cls, i,
                                               set.image_size());
  }
}
}  // namespace

std::vector<uint8_t> class_pattern_noise(ImageSet& set, const std::vector<ClassPattern>& patterns, double fraction,
                                         Rng& rng) {
  constexpr const char* what = "structured input noise";
  check_patterns(set, patterns, what);
  std::vector<int> classes;
  for (const auto& p : patterns) classes.push_back(p.cls);
  const auto chosen = choose_images(set, classes, fraction, rng, what);
  std::vector<uint8_t> mask(static_cast<size_t>(set.n), 0);
  for (int64_t i : chosen) {
    const int32_t y = set.labels[static_cast<size_t>(i)];
    for (const auto& p : patterns)
      if (p.cls == y) stamp(set.image(i), p);
    mask[static_cast<size_t>(i)] = 1;
  }
  return mask;
}

std::vector<uint8_t> stamp_other_classes(ImageSet& set, const std::vector<ClassPattern>& patterns, double fraction,
                                         Rng& rng) {
  constexpr const char* what = "structured input noise (queries)";
  check_patterns(set, patterns, what);
  std::vector<int> all(static_cast<size_t>(set.num_classes));
  for (int c = 0; c < set.num_classes; ++c) all[static_cast<size_t>(c)] = c;
  const auto chosen = choose_images(set, all, fraction, rng, what);
  std::vector<uint8_t> mask(static_cast<size_t>(set.n), 0);
  std::vector<const ClassPattern*> others;
  for (int64_t i : chosen) {
    const int32_t y = set.labels[static_cast<size_t>(i)];
    others.clear();
    for (const auto& p : patterns)
      if (p.cls != y) others.push_back(&p);
    if (others.empty()) continue;
    stamp(set.image(i), *others[rng.below(others.size())]);
    mask[static_cast<size_t>(i)] = 1;
  }
  return mask;
}

std::vector<int> partner_classes(const std::string& dataset, int32_t num_classes) {
  // The label noise's pairs: each map's source class is pushed towards its destination.
  std::vector<int> partner(static_cast<size_t>(std::max(num_classes, 0)), -1);
  const auto maps = dataset == "cifar10" ? cifar10_label_maps() : both_directions(mnist_label_flips());
  for (const auto& m : maps)
    if (m.from < num_classes && m.to < num_classes) partner[static_cast<size_t>(m.from)] = m.to;
  return partner;
}

namespace {
// The attack on train targets and query targets together (one victim); only a wholly valid result
// is written back, so on any error both sets are as they were.
void attack_and_write_back(ImageSet& set, const std::vector<int64_t>& chosen, ImageSet* queries,
                           const std::vector<int64_t>& chosen_queries, const Attack& attack, const char* what) {
  ImageSet targets = take(set, chosen);
  const auto n_train = static_cast<int64_t>(chosen.size());
  if (queries && !chosen_queries.empty()) {
    const ImageSet q = take(*queries, chosen_queries);
    if (q.image_size() != set.image_size()) fail("{}: test images differ in shape from D's", what);
    targets.pixels.insert(targets.pixels.end(), q.pixels.begin(), q.pixels.end());
    targets.labels.insert(targets.labels.end(), q.labels.begin(), q.labels.end());
    targets.n += q.n;
  }
  const int64_t total = targets.n;
  if (total == 0) return;
  attack(set, targets);
  if (targets.n != total || targets.image_size() != set.image_size() ||
      static_cast<int64_t>(targets.labels.size()) != total)
    fail("{}: the attack changed the shape of its {} target images", what, total);
  require_unit_pixels(targets, what);
  for (int32_t y : targets.labels)
    if (y < 0 || y >= set.num_classes) fail("{}: the attack gave label {} (classes 0..{})", what, y, set.num_classes - 1);
  const int64_t size = set.image_size();
  for (int64_t t = 0; t < n_train; ++t) {
    const int64_t i = chosen[static_cast<size_t>(t)];
    std::copy_n(targets.image(t), size, set.image(i));
    set.labels[static_cast<size_t>(i)] = targets.labels[static_cast<size_t>(t)];
  }
  // Queries keep their true labels: what the model should say, whatever the attack made of them.
  for (size_t t = 0; t < chosen_queries.size(); ++t)
    std::copy_n(targets.image(n_train + static_cast<int64_t>(t)), size, queries->image(chosen_queries[t]));
}
}  // namespace

std::vector<uint8_t> adversarial_poison(ImageSet& set, const std::vector<int>& classes, double fraction,
                                        const Attack& attack, Rng& rng) {
  constexpr const char* what = "adversarial poisoning";
  if (!attack) fail("{}: no attack given", what);
  require_unit_pixels(set, what);
  const auto chosen = choose_images(set, classes, fraction, rng, what);
  std::vector<uint8_t> mask(static_cast<size_t>(set.n), 0);
  attack_and_write_back(set, chosen, nullptr, {}, attack, what);
  for (int64_t i : chosen) mask[static_cast<size_t>(i)] = 1;
  return mask;
}

std::vector<uint8_t> adversarial_poison(ImageSet& set, const std::vector<int>& classes, double fraction,
                                        const Attack& attack, Rng& rng, ImageSet& queries, double query_fraction,
                                        Rng& query_rng, std::vector<uint8_t>& query_mask) {
  constexpr const char* what = "adversarial poisoning";
  if (!attack) fail("{}: no attack given", what);
  require_unit_pixels(set, what);
  require_unit_pixels(queries, what);
  const auto chosen = choose_images(set, classes, fraction, rng, what);
  const auto chosen_queries = choose_images(queries, classes, query_fraction, query_rng, what);
  std::vector<uint8_t> mask(static_cast<size_t>(set.n), 0);
  attack_and_write_back(set, chosen, &queries, chosen_queries, attack, what);
  for (int64_t i : chosen) mask[static_cast<size_t>(i)] = 1;
  query_mask.assign(static_cast<size_t>(queries.n), 0);
  for (int64_t i : chosen_queries) query_mask[static_cast<size_t>(i)] = 1;
  return mask;
}

void save_mask(const std::string& path, const std::vector<uint8_t>& mask) {
  std::string text;
  text.reserve(mask.size() * 2);
  for (uint8_t m : mask) {
    text += m ? '1' : '0';
    text += '\n';
  }
  write_file_atomic(path, text);
}

std::vector<uint8_t> load_mask(const std::string& path) {
  const std::string text = read_file(path);
  if (text.empty()) fail("mask file '{}' is empty", path);
  std::vector<uint8_t> mask;
  std::string_view rest(text);
  for (size_t line = 1; !rest.empty(); ++line) {
    const size_t end = rest.find('\n');
    const std::string_view value = rest.substr(0, end);
    if (value != "0" && value != "1")
      fail("mask file '{}' line {}: expected 0 or 1, found '{}'", path, line,
           value.substr(0, 20));
    mask.push_back(value == "1" ? 1 : 0);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
  }
  return mask;
}

}  // namespace lethe::data
