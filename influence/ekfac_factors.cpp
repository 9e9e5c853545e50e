#include "influence/ekfac_factors.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "learning/batches.h"
#include "learning/train.h"
#include "nn/eigenbasis.h"
#include "nn/linalg.h"
#include "nn/per_example_kernels.h"
#include "nn/safetensors.h"
#include "influence/layer_walk.h"
#include "influence/params.h"
#include "influence/per_example.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/rng.h"

namespace lethe::repair {
namespace {

// A Linear layer's batch in its eigenbasis, squared: rows (Q_Aᵀ ā_i)² [n, a_dim] and
// (Q_Gᵀ d_i)² [n, out], from its input a [n, in] and output gradient d [n, out]. The rotated
// per-example gradient is their outer product (g_i = d_i āᵢᵀ is rank one).
struct SquaredRotations {
  std::vector<double> a2, d2;
};
SquaredRotations squared_rotations(const KfacLayer& l, int64_t n, const std::vector<float>& a, const std::vector<float>& d) {
  const int64_t ad = l.a_dim();
  std::vector<double> dd(d.begin(), d.end());
  SquaredRotations r{matmul_f64(false, false, n, ad, ad, bias_augmented(l, n, a), l.QA),
                     matmul_f64(false, false, n, l.out, l.out, dd, l.QG)};
  for (auto& x : r.a2) x *= x;
  for (auto& x : r.d2) x *= x;
  return r;
}

// Each Linear/Conv2d layer's eigenbases in float where the model lives (nn/eigenbasis.h): made
// once per pass, not per batch. The rotations are float GEMMs, as the gradients they rotate are
// float; in double they cost twice as long, and they are EK-FAC's costliest step (about 8 GFLOP
// an example for ResNet-9).
std::vector<KroneckerBasis> float_bases(const std::vector<KfacLayer>& layers, Device device) {
  std::vector<KroneckerBasis> out(layers.size());
  for (size_t k = 0; k < layers.size(); ++k) {
    const KfacLayer& l = layers[k];
    if (l.channel_pairs) continue;
    const std::vector<float> qa(l.QA.begin(), l.QA.end()), qg(l.QG.begin(), l.QG.end());
    out[k] = {l.out, l.in, l.bias, Tensor::from_vector({l.a_dim(), l.a_dim()}, qa, device),
              Tensor::from_vector({l.out, l.out}, qg, device)};
  }
  return out;
}

// Λ of every Linear/Conv2d layer of `e.basis`, averaged over `set` (and the label draws).
void refit(Module& model, const data::ImageSet& set, const FisherOptions& fisher, const PassOptions& opt, Ekfac& e) {
  const auto& layers = e.basis.layers;
  e.lambda.assign(layers.size(), {});
  for (size_t k = 0; k < layers.size(); ++k)
    if (!layers[k].channel_pairs) e.lambda[k].assign(static_cast<size_t>(layers[k].out * layers[k].a_dim()), 0.0);
  const Device dev = model.device();
  const auto bases = float_bases(layers, dev);
  SumsWhereTheModelIs sums(dev);
  for (auto& lambda : e.lambda) sums.keep(lambda);
  LayerGradients visit;
  visit.linear = [&](size_t k, int64_t, int64_t, const LayerCapture& cap) {
    add_outer_product_moments(bases[k], cap.input, cap.grad_output, sums.at(e.lambda[k].data(), bases[k].rotated_size()));
  };
  // Λ += Σ_i (Q_Gᵀ g_i Q_A)², the squares summed in double where the model lives.
  visit.materialised = [&](size_t k, int64_t, int64_t n, const Tensor& g) {
    add_column_squares(rotate_into(bases[k], g.data(), n, g.size(1)), sums.at(e.lambda[k].data(), bases[k].rotated_size()));
  };
  walk_layer_gradients(model, set, layers, fisher, opt, "EK-FAC", visit);
  sums.flush();
  const int draws = fisher.kind == FisherKind::Sampled ? fisher.mc_samples : 1;
  const double norm = 1.0 / (static_cast<double>(set.n) * draws);
  for (auto& l : e.lambda)
    for (auto& x : l) x *= norm;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += std::max(0.0, x);
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

}  // namespace

Ekfac ekfac_factors(Module& model, const data::ImageSet& set, const FisherOptions& fisher, const PassOptions& opt) {
  Ekfac e;
  e.basis = kfac_factors(model, set, fisher, opt);
  e.examples = set.n;
  const auto t0 = Clock::now();
  release_idle_host_blocks();  // the covariance pass's blocks: the refit forms gradients of other sizes
  refit(model, set, fisher, opt, e);
  release_idle_host_blocks();  // and its own are not what comes next (the queries, a pass of products)
  e.seconds_lambda = since(t0);
  return e;
}

std::vector<double> ekfac_self_influence(Module& model, const data::ImageSet& set, const Ekfac& e, double damping,
                                         double relative_damping, const PassOptions& opt) {
  if (!(damping > 0)) fail("EK-FAC: damping {} must be > 0", damping);
  const auto& layers = e.basis.layers;
  LETHE_CHECK(e.lambda.size() == layers.size(), "EK-FAC: {} eigenvalue sets for {} layers", e.lambda.size(), layers.size());
  // Per layer, the weights 1 / (Λ + δ_l) of the squared rotated entries (as ekfac_apply divides).
  std::vector<std::vector<double>> w(layers.size());
  std::vector<double> delta(layers.size());
  for (size_t k = 0; k < layers.size(); ++k) {
    delta[k] = damping + relative_damping * mean_of(layers[k].channel_pairs ? layers[k].lP : e.lambda[k]);
    for (double lam : e.lambda[k]) w[k].push_back(1.0 / (std::max(0.0, lam) + delta[k]));
  }
  std::vector<double> out(static_cast<size_t>(set.n), 0.0);
  const Device dev = model.device();
  const auto bases = float_bases(layers, dev);
  std::vector<Tensor> w_on_device(layers.size());
  for (size_t k = 0; k < layers.size(); ++k)
    if (!layers[k].channel_pairs) w_on_device[k] = on_device(w[k], dev);
  SumsWhereTheModelIs sums(dev);
  sums.keep(out);
  LayerGradients visit;
  visit.channel_pairs = true;
  visit.linear = [&](size_t k, int64_t first, int64_t n, const LayerCapture& cap) {
    const KfacLayer& l = layers[k];
    const int64_t ad = l.a_dim();
    const SquaredRotations r = squared_rotations(l, n, cap.input.to_vector(), cap.grad_output.to_vector());
    add_outer_product_weighted_squares(n, l.out, ad, r.d2, w[k], r.a2, out.data() + first);
  };
  visit.materialised = [&](size_t k, int64_t first, int64_t n, const Tensor& g) {
    const KfacLayer& l = layers[k];
    if (l.channel_pairs) {
      // Per channel, gᵀ (B_c + δ)⁻¹ g on its (γ_c, β_c) pair through the pair's eigenvectors.
      const std::vector<float> rows = g.to_vector();
      for (int64_t i = 0; i < n; ++i) {
        const float* row = rows.data() + i * 2 * l.out;
        double s = 0;
        for (int64_t c = 0; c < l.out; ++c) {
          const double gg = row[c], gb = row[l.out + c];
          for (int e2 = 0; e2 < 2; ++e2) {
            const double proj = l.QP[4 * c + e2] * gg + l.QP[4 * c + 2 + e2] * gb;
            s += proj * proj / (std::max(0.0, l.lP[2 * c + e2]) + delta[k]);
          }
        }
        out[static_cast<size_t>(first + i)] += s;
      }
      return;
    }
    // Σ_j (Q_Gᵀ g_i Q_A)_j² w_j per example, summed in double where the model lives.
    add_weighted_row_squares(rotate_into(bases[k], g.data(), n, g.size(1)), w_on_device[k], sums.at(out.data() + first, n));
  };
  walk_layer_gradients(model, set, layers, FisherOptions{}, opt, "self-influence", visit);
  sums.flush();
  return out;
}

Ekfac kfac_as_ekfac(const Kfac& kfac) {
  Ekfac e;
  e.basis = kfac;
  e.lambda.assign(kfac.layers.size(), {});
  for (size_t k = 0; k < kfac.layers.size(); ++k) {
    const KfacLayer& l = kfac.layers[k];
    if (l.channel_pairs) continue;
    for (int64_t o = 0; o < l.out; ++o)
      for (int64_t c = 0; c < l.a_dim(); ++c) e.lambda[k].push_back(std::max(0.0, l.lG[o]) * std::max(0.0, l.lA[c]));
  }
  return e;
}

namespace {

// What ekfac_apply and ekfac_apply_block refuse: a damping that leaves the inverse undefined, a
// vector not laid out as θ, factors without their eigenvalues.
void check_apply(const Ekfac& e, const std::vector<double>* vs, size_t count, double damping, double relative_damping) {
  if (!(damping > 0)) fail("EK-FAC: damping {} must be > 0", damping);
  if (!(relative_damping >= 0)) fail("EK-FAC: relative damping {} must be >= 0", relative_damping);
  for (size_t j = 0; j < count; ++j)
    if (static_cast<int64_t>(vs[j].size()) != e.basis.num_params)
      fail("EK-FAC: vector of {} values for {} parameters", vs[j].size(), e.basis.num_params);
  LETHE_CHECK(e.lambda.size() == e.basis.layers.size(), "EK-FAC: {} eigenvalue sets for {} layers", e.lambda.size(),
              e.basis.layers.size());
}

}  // namespace

std::vector<double> ekfac_apply(const Ekfac& e, const std::vector<double>& v, double damping, double relative_damping) {
  check_apply(e, &v, 1, damping, relative_damping);
  std::vector<double> out(v.size(), 0.0);
  for (size_t k = 0; k < e.basis.layers.size(); ++k) {
    const KfacLayer& l = e.basis.layers[k];
    if (l.channel_pairs) {
      kfac_apply_layer(l, v, damping + relative_damping * mean_of(l.lP), -1.0, out);
      continue;
    }
    const auto& lam = e.lambda[k];
    const double delta = damping + relative_damping * mean_of(lam);
    const int64_t ad = l.a_dim();
    auto t = matmul_f64(true, false, l.out, ad, l.out, l.QG, layer_matrix(l, v));  // Q_Gᵀ V
    t = matmul_f64(false, false, l.out, ad, ad, t, l.QA);                           // Q_Gᵀ V Q_A
    for (size_t j = 0; j < t.size(); ++j) t[j] /= std::max(0.0, lam[j]) + delta;
    t = matmul_f64(false, false, l.out, ad, l.out, l.QG, t);
    t = matmul_f64(false, true, l.out, ad, ad, t, l.QA);
    set_layer_matrix(l, t, out);
  }
  return out;
}

std::vector<std::vector<double>> ekfac_apply_block(const Ekfac& e, const std::vector<std::vector<double>>& vs,
                                                   double damping, double relative_damping, Device device) {
  check_apply(e, vs.data(), vs.size(), damping, relative_damping);
  const int64_t q = static_cast<int64_t>(vs.size()), p = e.basis.num_params;
  QueryRows rows(q, p);
  for (int64_t j = 0; j < q; ++j) std::copy(vs[j].begin(), vs[j].end(), rows.row(j));
  ekfac_apply_rows(e, rows, damping, relative_damping, device);
  std::vector<std::vector<double>> out(vs.size());
  for (int64_t j = 0; j < q; ++j) out[j].assign(rows.row(j), rows.row(j) + p);
  return out;
}

void ekfac_apply_rows(const Ekfac& e, QueryRows& vs, double damping, double relative_damping, Device device) {
  check_apply(e, nullptr, 0, damping, relative_damping);
  const int64_t q = vs.q, p = e.basis.num_params;
  if (vs.p != p) fail("EK-FAC: vectors of {} values for {} parameters", vs.p, p);
  if (q == 0) return;
  const auto bases = float_bases(e.basis.layers, device);
  for (size_t k = 0; k < e.basis.layers.size(); ++k) {
    const KfacLayer& l = e.basis.layers[k];
    if (l.channel_pairs) {
      // BatchNorm's 2×2 blocks on the host, in double: the layer's (γ, β) entries are
      // θ[offset, offset + 2 out), so vectors that long hold them at their own indices.
      const size_t end = static_cast<size_t>(l.offset + 2 * l.out);
      std::vector<double> v(end, 0.0), w(end, 0.0);
      const double delta = damping + relative_damping * mean_of(l.lP);
      for (int64_t j = 0; j < q; ++j) {
        float* r = vs.row(j);
        std::copy(r + l.offset, r + end, v.begin() + l.offset);
        kfac_apply_layer(l, v, delta, -1.0, w);
        std::copy(w.begin() + l.offset, w.end(), r + l.offset);
      }
      continue;
    }
    const auto& lam = e.lambda[k];
    const double delta = damping + relative_damping * mean_of(lam);
    std::vector<double> inv(lam.size());
    for (size_t t = 0; t < lam.size(); ++t) inv[t] = 1.0 / (std::max(0.0, lam[t]) + delta);
    const Tensor inv_there = on_device(inv, device);
    // The layer's segment of a chunk of the block goes where the model lives, is rotated,
    // divided and rotated back there, and comes back into place: four arrays of chunk × out ·
    // a_dim floats, 16 MiB each at most (a quarter of nn's budget for formed gradients in all)
    // whatever the block's size. They are working memory beside the block, which the query
    // budget does not count; a chunk of even one ResNet-9 layer's few vectors is many GEMMs' work.
    const int64_t len = bases[k].params(), m = bases[k].rotated_size();
    const int64_t chunk = examples_within(kMaterialisedGradientBudget / 16, m);
    for (int64_t j0 = 0; j0 < q; j0 += chunk) {
      const int64_t c = std::min(chunk, q - j0);
      Tensor seg = Tensor::empty({c, len});
      for (int64_t j = 0; j < c; ++j) std::copy(vs.row(j0 + j) + l.offset, vs.row(j0 + j) + l.offset + len, seg.data() + j * len);
      seg = seg.to(device);
      Tensor t = rotate_into(bases[k], seg.data(), c, len);
      scale_columns(t, inv_there);
      rotate_out_of(bases[k], t, seg.data(), len);
      seg = seg.to(Device::CPU);
      for (int64_t j = 0; j < c; ++j) std::copy(seg.data() + j * len, seg.data() + (j + 1) * len, vs.row(j0 + j) + l.offset);
    }
  }
}

namespace {

constexpr const char* kKindKey = "lethe.ekfac";
constexpr const char* kChecksumKey = "lethe.ekfac.model_crc32";
constexpr const char* kExamplesKey = "lethe.ekfac.examples";

// The model's layers as the factors describe them: "0.weight Conv2d(1, 32, ...) [32, 25+1]".
std::vector<std::string> layer_descriptions(Module& model, const std::vector<KfacLayer>& layers) {
  const ParamLayout layout = ParamLayout::of(model);
  std::vector<std::string> out;
  for (const auto& l : layers) {
    std::string name = "?";
    for (size_t j = 0; j < layout.offsets.size(); ++j)
      if (layout.offsets[j] == l.offset) name = layout.names[j];
    out.push_back(l.channel_pairs ? fmt::format("{} {} [{} channels]", name, l.name, l.out)
                                  : fmt::format("{} {} [{}, {}{}]", name, l.name, l.out, l.in, l.bias ? "+1" : ""));
  }
  return out;
}

// CRC-32 of the model's parameters and buffers: factors belong to one θ̂ and its statistics.
std::string model_checksum(Module& model) {
  const auto theta = flatten_params(model);
  uint32_t crc = crc32(theta.data(), theta.size() * sizeof(float));
  for (const Tensor& b : snapshot_buffers(model)) {
    const auto v = b.to_vector();
    crc = crc32(v.data(), v.size() * sizeof(float), crc);
  }
  return fmt::format("{:08x}", crc);
}

std::vector<double> read_array(const SafetensorsFile& f, const std::string& path, const std::string& name,
                               const std::vector<int64_t>& shape) {
  const NamedArray* a = f.find(name);
  if (!a) fail("--load-factors {}: no array '{}' (not EK-FAC factors of this model)", path, name);
  if (a->dtype != DType::F64 || a->shape != shape)
    fail("--load-factors {}: array '{}' is {} {}, this model needs F64 {}", path, name, dtype_name(a->dtype),
         fmt::join(a->shape, "x"), fmt::join(shape, "x"));
  const auto v = a->values<double>();
  return {v.begin(), v.end()};
}

}  // namespace

void save_ekfac(const std::string& path, const Ekfac& e, Module& model) {
  SafetensorsFile f;
  const auto& layers = e.basis.layers;
  const auto described = layer_descriptions(model, layers);
  f.metadata[kKindKey] = fmt::format("{} layers, {} parameters", layers.size(), e.basis.num_params);
  f.metadata[kChecksumKey] = model_checksum(model);
  f.metadata[kExamplesKey] = std::to_string(e.examples);
  for (size_t k = 0; k < layers.size(); ++k) {
    const KfacLayer& l = layers[k];
    f.metadata[fmt::format("lethe.ekfac.layer.{}", k)] = described[k];
    auto add = [&](const std::string& what, std::vector<int64_t> shape, const std::vector<double>& v) {
      f.arrays.push_back(NamedArray::from_values<double>(fmt::format("{}.{}", k, what), std::move(shape), v));
    };
    if (l.channel_pairs) {
      add("pairs", {l.out, 2, 2}, l.pairs);
      continue;
    }
    add("QA", {l.a_dim(), l.a_dim()}, l.QA);
    add("QG", {l.out, l.out}, l.QG);
    add("lambda", {l.out, l.a_dim()}, e.lambda[k]);
  }
  save_safetensors(path, f);
}

Ekfac load_ekfac(const std::string& path, Module& model, int64_t examples) {
  const SafetensorsFile f = load_safetensors(path);
  if (!f.metadata.count(kKindKey)) fail("--load-factors {}: not an EK-FAC factors file", path);
  Ekfac e;
  e.basis.layers = kfac_layer_shapes(model, e.basis.num_params);
  auto& layers = e.basis.layers;
  const auto described = layer_descriptions(model, layers);
  const std::string kind = fmt::format("{} layers, {} parameters", layers.size(), e.basis.num_params);
  if (f.metadata.at(kKindKey) != kind)
    fail("--load-factors {}: factors of another model ({}; this model: {})", path, f.metadata.at(kKindKey), kind);
  for (size_t k = 0; k < layers.size(); ++k) {
    const auto it = f.metadata.find(fmt::format("lethe.ekfac.layer.{}", k));
    const std::string theirs = it == f.metadata.end() ? "none" : it->second;
    if (theirs != described[k])
      fail("--load-factors {}: factors of another model (layer {}: {}; this model: {})", path, k, theirs, described[k]);
  }
  const auto crc = f.metadata.find(kChecksumKey);
  if (crc == f.metadata.end() || crc->second != model_checksum(model))
    fail("--load-factors {}: factors of another model (same layers, other parameters or BatchNorm statistics)", path);
  const auto n = f.metadata.find(kExamplesKey);
  const char* n_end = n == f.metadata.end() ? nullptr : n->second.data() + n->second.size();
  if (!n_end || std::from_chars(n->second.data(), n_end, e.examples).ptr != n_end)
    fail("--load-factors {}: no valid example count in the metadata", path);
  if (examples != 0 && e.examples != examples)
    fail("--load-factors {}: factors over {} examples, the training set has {}", path, e.examples, examples);
  e.lambda.assign(layers.size(), {});
  for (size_t k = 0; k < layers.size(); ++k) {
    KfacLayer& l = layers[k];
    const std::string p = std::to_string(k) + ".";
    if (l.channel_pairs) {
      l.pairs = read_array(f, path, p + "pairs", {l.out, 2, 2});
      decompose_pairs(l);
      continue;
    }
    l.QA = read_array(f, path, p + "QA", {l.a_dim(), l.a_dim()});
    l.QG = read_array(f, path, p + "QG", {l.out, l.out});
    e.lambda[k] = read_array(f, path, p + "lambda", {l.out, l.a_dim()});
  }
  return e;
}

}  // namespace lethe::repair
