#include "influence/quantities.h"

#include <algorithm>
#include <cmath>

#include "datasets/transforms.h"
#include "nn/autograd.h"
#include "nn/eigenbasis.h"
#include "nn/grad_sum.h"
#include "nn/linalg.h"
#include "learning/batches.h"
#include "learning/train.h"
#include "influence/factored_queries.h"
#include "influence/jvp.h"
#include "influence/kfac.h"
#include "influence/layer_walk.h"
#include "influence/params.h"
#include "influence/per_example.h"
#include "util/error.h"
#include "util/interrupt.h"
#include "util/rng.h"

namespace lethe::repair {
namespace {

// The walk a pass over the whole of a set takes: interruptible between batches, with progress,
// and sharded across ranks (learning/batches.h): each pass below then adds its sums over ranks
// (sum_over_ranks) or gathers its per-example rows (share_rows), both no-ops for one process.
BatchWalk whole_set(const PassOptions& opt) {
  BatchWalk walk;
  walk.interruptible_as = "dataset pass";
  walk.progress = opt.progress;
  walk.sharded = true;
  return walk;
}

// Runs `body(idx, logits, labels)` for every batch of `set`, the logits from the engine's
// capturing forward pass.
template <typename Body>
void for_each_batch(Module& model, const data::ImageSet& set, const PassOptions& opt, PerExampleEngine& engine,
                    Body&& body) {
  for_each_image_batch(
      set, opt.batch, model.device(),
      [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) { body(idx, engine.forward(x), labels); },
      whole_set(opt));
}

}  // namespace

Labels sample_labels(const Tensor& logits, Rng& rng) {
  const auto z = logits.to_vector();
  const int64_t n = logits.size(0), k = logits.size(1);
  std::vector<int32_t> y(static_cast<size_t>(n));
  std::vector<double> p(static_cast<size_t>(k));
  for (int64_t i = 0; i < n; ++i) {
    double zmax = z[i * k];
    for (int64_t j = 1; j < k; ++j) zmax = std::max<double>(zmax, z[i * k + j]);
    double total = 0;
    for (int64_t j = 0; j < k; ++j) total += p[j] = std::exp(z[i * k + j] - zmax);
    double u = rng.uniform() * total;
    int32_t pick = static_cast<int32_t>(k - 1);
    for (int64_t j = 0; j < k; ++j) {
      u -= p[j];
      if (u < 0) {
        pick = static_cast<int32_t>(j);
        break;
      }
    }
    y[i] = pick;
  }
  return Labels(std::move(y));
}

std::string fisher_kind_name(FisherKind kind) { return kind == FisherKind::Sampled ? "sampled" : "empirical"; }

FisherKind parse_fisher_kind(const std::string& name) {
  if (name == "empirical") return FisherKind::Empirical;
  if (name == "sampled") return FisherKind::Sampled;
  throw UsageError(fmt::format("--fisher: unknown kind '{}' (known: empirical, sampled)", name));
}

std::vector<float> per_example_losses(Module& model, const data::ImageSet& set, const PassOptions& opt) {
  NoGradGuard no_grad;
  ModeGuard evaluation_mode(model, false);
  std::vector<float> out(static_cast<size_t>(set.n));
  for_each_image_batch(
      set, opt.batch, model.device(),
      [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
        const auto l = cross_entropy(model.forward(x), labels).to_vector();
        for (size_t i = 0; i < idx.size(); ++i) out[static_cast<size_t>(idx[i])] = l[i];
      },
      whole_set(opt));
  share_rows(out, set.n, 1, opt.batch);
  return out;
}

std::vector<double> summed_gradient(Module& model, const data::ImageSet& set, const PassOptions& opt) {
  ModeGuard evaluation_mode(model, false);
  model.zero_grad();
  BatchWalk walk;
  walk.sharded = true;
  for_each_image_batch(
      set, opt.batch, model.device(),
      [&](const std::vector<int64_t>&, Tensor& x, Labels& labels) {
        sum(cross_entropy(model.forward(x), labels)).backward();  // .grad accumulates over batches
      },
      walk);
  const auto g = flatten_grads(model);
  model.zero_grad();
  std::vector<double> out(g.begin(), g.end());
  sum_over_ranks(out);
  return out;
}

QueryRows::QueryRows(int64_t rows, int64_t cols)
    : q(rows), p(cols), values(std::make_unique_for_overwrite<float[]>(static_cast<size_t>(rows * cols))) {}

std::vector<float> per_example_gradients(Module& model, const data::ImageSet& set, int64_t begin, int64_t end,
                                         const PassOptions& opt) {
  if (begin < 0 || end > set.n || begin > end) fail("per_example_gradients: range [{}, {}) outside [0, {})", begin, end, set.n);
  std::vector<float> out(static_cast<size_t>((end - begin) * ParamLayout::of(model).total));
  per_example_gradients(model, set, begin, end, out.data(), opt);
  return out;
}

void per_example_gradients(Module& model, const data::ImageSet& set, int64_t begin, int64_t end, float* out,
                           const PassOptions& opt) {
  if (begin < 0 || end > set.n || begin > end) fail("per_example_gradients: range [{}, {}) outside [0, {})", begin, end, set.n);
  PerExampleEngine engine(model);
  const int64_t p = engine.num_params();
  BatchWalk walk;
  walk.begin = begin, walk.end = end;
  walk.progress = opt.progress;
  for_each_image_batch(
      set, opt.batch, model.device(),
      [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
        engine.backward(engine.forward(x), labels);
        PerExampleRequest req;
        req.grads = out + (idx.front() - begin) * p;
        req.ld_grads = p;
        engine.accumulate(req);
      },
      walk);
}

std::vector<double> per_example_dots(Module& model, const data::ImageSet& set, const std::vector<float>& queries,
                                     int64_t q, const PassOptions& opt) {
  const int64_t p = ParamLayout::of(model).total;
  if (q < 1 || static_cast<int64_t>(queries.size()) != q * p)
    fail("per_example_dots: {} query values for {} queries of {} parameters", queries.size(), q, p);
  return per_example_dots(model, set, queries.data(), q, opt);
}

std::vector<double> per_example_dots(Module& model, const data::ImageSet& set, const float* queries, int64_t q,
                                     const PassOptions& opt) {
  if (q < 1) fail("per_example_dots: {} queries", q);
  PerExampleEngine engine(model);
  const int64_t p = engine.num_params();
  engine.keep_queries(queries, q, p);
  // Linear layers whose query blocks have low rank take the factored path (no gradient formed).
  const FactoredQueries factored(engine, queries, q, p, set.n);
  std::vector<double> out(static_cast<size_t>(set.n * q), 0.0);
  // A batch is a run of consecutive examples, so its rows of `out` are one span: the dots go
  // straight there (on the GPU into out's device twin, brought back once at the end).
  engine.keep_resident(out.data(), set.n * q);
  for_each_batch(model, set, opt, engine, [&](const std::vector<int64_t>& idx, const Tensor& logits, const Labels& labels) {
    engine.backward_on_device(logits, labels);
    PerExampleRequest req;
    req.queries = queries;
    req.q = q;
    req.ld_queries = p;
    req.dots = out.data() + idx.front() * q;
    if (!factored.any()) return engine.accumulate(req);
    engine.accumulate(req, factored.skip());
    factored.accumulate(engine, req.dots);
  });
  engine.flush_resident();
  share_rows(out, set.n, q, opt.batch);
  return out;
}

std::vector<double> per_example_sq_norms(Module& model, const data::ImageSet& set, const PassOptions& opt) {
  PerExampleEngine engine(model);
  std::vector<double> out(static_cast<size_t>(set.n), 0.0);
  engine.keep_resident(out.data(), set.n);  // as per_example_dots does
  for_each_batch(model, set, opt, engine, [&](const std::vector<int64_t>& idx, const Tensor& logits, const Labels& labels) {
    engine.backward_on_device(logits, labels);
    PerExampleRequest req;
    req.sq_norms = out.data() + idx.front();
    engine.accumulate(req);
  });
  engine.flush_resident();
  share_rows(out, set.n, 1, opt.batch);
  return out;
}

std::vector<double> per_example_weighted_sq_norms(Module& model, const data::ImageSet& set, const std::vector<double>& w,
                                                  const PassOptions& opt) {
  int64_t p = 0;
  const std::vector<KfacLayer> layers = kfac_layer_shapes(model, p);
  if (static_cast<int64_t>(w.size()) != p) fail("per_example_weighted_sq_norms: {} weights for {} parameters", w.size(), p);
  const Device dev = model.device();
  std::vector<double> out(static_cast<size_t>(set.n), 0.0);
  SumsWhereTheModelIs sums(dev);
  sums.keep(out);
  // Each layer's weights as its gradients come: a Linear layer's as W [out, in + bias] (the bias
  // a last column) for its capture, any other's its stretch of θ in float where the model lives.
  // Made when the layer is first met.
  std::vector<std::vector<double>> as_matrix(layers.size());
  std::vector<Tensor> as_row(layers.size());
  LayerGradients visit;
  visit.channel_pairs = true;
  visit.linear = [&](size_t k, int64_t first, int64_t n, const LayerCapture& cap) {
    const KfacLayer& l = layers[k];
    const int64_t ad = l.a_dim();
    auto& W = as_matrix[k];
    if (W.empty()) {
      W.resize(static_cast<size_t>(l.out * ad));
      for (int64_t o = 0; o < l.out; ++o) {
        for (int64_t c = 0; c < l.in; ++c) W[o * ad + c] = w[l.offset + o * l.in + c];
        if (l.bias) W[o * ad + l.in] = w[l.offset + l.out * l.in + o];
      }
    }
    const std::vector<float> d = cap.grad_output.to_vector();
    std::vector<double> a2 = bias_augmented(l, n, cap.input.to_vector()), d2(d.size());
    for (auto& x : a2) x *= x;
    for (size_t j = 0; j < d.size(); ++j) d2[j] = static_cast<double>(d[j]) * d[j];
    add_outer_product_weighted_squares(n, l.out, ad, d2, W, a2, out.data() + first);
  };
  visit.materialised = [&](size_t k, int64_t first, int64_t n, const Tensor& g) {
    if (!as_row[k].defined()) {
      const auto from = w.begin() + layers[k].offset;
      as_row[k] = on_device(std::vector<double>(from, from + g.size(1)), dev);
    }
    add_weighted_row_squares(g, as_row[k], sums.at(out.data() + first, n));
  };
  walk_layer_gradients(model, set, layers, FisherOptions{}, opt, "self-influence", visit);
  sums.flush();
  return out;
}

std::vector<double> diagonal_fisher(Module& model, const data::ImageSet& set, const FisherOptions& fisher,
                                    const PassOptions& opt, std::vector<float>* losses) {
  if (set.n == 0) fail("diagonal Fisher of an empty set");
  if (fisher.kind == FisherKind::Sampled && fisher.mc_samples < 1)
    throw UsageError(fmt::format("--mc-samples {}: must be >= 1", fisher.mc_samples));
  PerExampleEngine engine(model);
  std::vector<double> acc(static_cast<size_t>(engine.num_params()), 0.0);
  Rng rng(fisher.seed);
  const int draws = fisher.kind == FisherKind::Sampled ? fisher.mc_samples : 1;
  if (losses) losses->assign(static_cast<size_t>(set.n), 0.0f);
  // A rank's shard starts at example lo: the labels drawn before it (one uniform an example a
  // draw) are skipped, so every example gets the labels a single process draws for it.
  if (fisher.kind == FisherKind::Sampled)
    for (int64_t i = my_shard(0, set.n, opt.batch).lo * draws; i > 0; --i) rng.uniform();
  // The sum of squares stays on the GPU for the whole pass, and so do the batches' losses: with
  // the empirical Fisher nothing comes back until the pass is over. (The sampled Fisher draws its
  // labels on the host from each batch's logits, which must come back.)
  engine.keep_resident(acc.data(), engine.num_params());
  std::vector<std::pair<int64_t, Tensor>> batch_losses;  // first example, losses
  for_each_batch(model, set, opt, engine, [&](const std::vector<int64_t>& idx, const Tensor& logits, const Labels& labels) {
    if (losses && fisher.kind == FisherKind::Sampled) {
      NoGradGuard ng;
      batch_losses.emplace_back(idx.front(), cross_entropy(logits, labels).detach());
    }
    for (int s = 0; s < draws; ++s) {
      if (fisher.kind == FisherKind::Sampled) {
        engine.backward_on_device(logits, sample_labels(logits, rng));
      } else {
        Tensor l = engine.backward_on_device(logits, labels);
        if (losses) batch_losses.emplace_back(idx.front(), l);
      }
      PerExampleRequest req;
      req.sq_sum = acc.data();
      engine.accumulate(req);
    }
  });
  engine.flush_resident();
  if (losses)
    for (const auto& [first, l] : batch_losses) {
      const auto v = l.to_vector();
      std::copy(v.begin(), v.end(), losses->begin() + first);
    }
  sum_over_ranks(acc);
  if (losses) share_rows(*losses, set.n, 1, opt.batch);
  const double norm = 1.0 / (static_cast<double>(set.n) * draws);
  for (auto& v : acc) v *= norm;
  return acc;
}

std::vector<double> fisher_vector_product(Module& model, const data::ImageSet& set, const std::vector<double>& v,
                                          const PassOptions& opt) {
  PerExampleEngine engine(model, /*parameter_gradients=*/true);  // the second backward needs them
  const int64_t p = engine.num_params();
  if (static_cast<int64_t>(v.size()) != p) fail("fisher_vector_product: vector of {} for {} parameters", v.size(), p);
  const std::vector<float> vf(v.begin(), v.end());
  engine.keep_queries(vf.data(), 1, p);
  GradientSum sum(model);  // on the GPU the batches' gradients are summed there
  for_each_batch(model, set, opt, engine, [&](const std::vector<int64_t>& idx, const Tensor& logits, const Labels& labels) {
    engine.backward_on_device(logits, labels);
    std::vector<double> s(idx.size(), 0.0);
    PerExampleRequest req;
    req.queries = vf.data();
    req.q = 1;
    req.ld_queries = p;
    req.dots = s.data();
    engine.accumulate(req);
    // Σ_i s_i g_i is the gradient of Σ_i s_i ℓ_i: a second backward pass with weights s.
    std::vector<float> w(s.begin(), s.end());
    Tensor losses = cross_entropy(logits, labels);
    model.zero_grad();
    losses.backward(Tensor::from_vector(losses.shape(), w, losses.device()));
    sum.add();
    model.zero_grad();
  });
  std::vector<double> out = sum.total();
  sum_over_ranks(out);
  for (auto& x : out) x /= static_cast<double>(set.n);
  return out;
}

std::vector<std::vector<double>> fisher_vector_products(Module& model, const data::ImageSet& set,
                                                        const std::vector<std::vector<double>>& vs,
                                                        const PassOptions& opt) {
  PerExampleEngine engine(model);
  const int64_t p = engine.num_params(), q = static_cast<int64_t>(vs.size());
  std::vector<float> v(static_cast<size_t>(q * p));
  for (int64_t j = 0; j < q; ++j) {
    if (static_cast<int64_t>(vs[j].size()) != p)
      fail("fisher_vector_products: vector {} has {} values for {} parameters", j, vs[j].size(), p);
    std::copy(vs[j].begin(), vs[j].end(), v.begin() + j * p);
  }
  std::vector<double> out(static_cast<size_t>(q * p), 0.0);
  std::vector<float> grads, s, batch_out(static_cast<size_t>(q * p));
  for_each_batch(model, set, opt, engine, [&](const std::vector<int64_t>& idx, const Tensor& logits, const Labels& labels) {
    const int64_t b = static_cast<int64_t>(idx.size());
    engine.backward(logits, labels);
    grads.assign(static_cast<size_t>(b * p), 0.0f);
    PerExampleRequest req;
    req.grads = grads.data();
    req.ld_grads = p;
    engine.accumulate(req);
    s.assign(static_cast<size_t>(b * q), 0.0f);
    matmul_f32(false, true, b, q, p, grads.data(), v.data(), 0.0f, s.data());              // S = G Vᵀ  [b, q]
    matmul_f32(true, false, q, p, b, s.data(), grads.data(), 0.0f, batch_out.data());      // Sᵀ G     [q, p]
    for (size_t j = 0; j < out.size(); ++j) out[j] += batch_out[j];
  });
  sum_over_ranks(out);
  std::vector<std::vector<double>> result(static_cast<size_t>(q));
  const double inv_n = 1.0 / static_cast<double>(set.n);
  for (int64_t j = 0; j < q; ++j) {
    result[j].assign(out.begin() + j * p, out.begin() + (j + 1) * p);
    for (auto& x : result[j]) x *= inv_n;
  }
  return result;
}

std::vector<double> ggn_vector_product(Module& model, const data::ImageSet& set, const std::vector<double>& v,
                                       const PassOptions& opt, std::vector<double>* loss_derivatives) {
  const std::vector<float> vf(v.begin(), v.end());
  const int64_t p = ParamLayout::of(model).total;
  if (static_cast<int64_t>(v.size()) != p) fail("ggn_vector_product: vector of {} for {} parameters", v.size(), p);
  const Device device = model.device();
  ModeGuard evaluation_mode(model, false);
  GradientSum sum(model);  // on the GPU the batches' products are summed there
  if (loss_derivatives) loss_derivatives->assign(static_cast<size_t>(set.n), 0.0);
  BatchWalk walk;
  walk.sharded = true;
  for_each_image_batch(set, opt.batch, device, [&](const std::vector<int64_t>& idx, Tensor& x, Labels& labels) {
    const auto [z, dz] = jvp(model, x, vf);
    // u_i = H_i ż_i = p_i ∘ ż_i − p_i (p_i · ż_i), from the logits in double.
    const auto zv = z.to_vector(), dzv = dz.to_vector();
    const int64_t b = z.size(0), k = z.size(1);
    std::vector<float> u(zv.size());
    for (int64_t i = 0; i < b; ++i) {
      double zmax = zv[i * k], total = 0, pd = 0;
      for (int64_t j = 1; j < k; ++j) zmax = std::max<double>(zmax, zv[i * k + j]);
      std::vector<double> prob(static_cast<size_t>(k));
      for (int64_t j = 0; j < k; ++j) total += prob[j] = std::exp(zv[i * k + j] - zmax);
      for (int64_t j = 0; j < k; ++j) pd += (prob[j] /= total) * dzv[i * k + j];
      for (int64_t j = 0; j < k; ++j) u[i * k + j] = static_cast<float>(prob[j] * (dzv[i * k + j] - pd));
      if (loss_derivatives) (*loss_derivatives)[static_cast<size_t>(idx[i])] = pd - dzv[i * k + labels.host()[i]];
    }
    model.zero_grad();
    Tensor logits = model.forward(x);
    logits.backward(Tensor::from_vector(logits.shape(), u, device));  // Σ_i J_iᵀ u_i
    sum.add();
    model.zero_grad();
  }, walk);
  std::vector<double> out = sum.total();
  sum_over_ranks(out);
  if (loss_derivatives) share_rows(*loss_derivatives, set.n, 1, opt.batch);
  for (auto& x : out) x /= static_cast<double>(set.n);
  return out;
}

}  // namespace lethe::repair
