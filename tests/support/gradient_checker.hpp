// Numerical gradient check for any layer (Caffe's oracle, adapted): the objective is
// L = sum_t <w_t, top_t> with fixed random weights w_t, so one backward pass gives dL/dx for
// every input and parameter, which is compared with central differences
//   (L(x + h) - L(x - h)) / 2h
// at up to `max_checks` sampled positions per tensor. Tolerance is relative, floored at 1:
//   |analytic - numeric| <= threshold * max(|analytic|, |numeric|, 1).
// Points whose input lies within kink_range of `kink` (ReLU's 0, say) are skipped.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <algorithm>
#include <random>
#include <vector>

#include "runtime/layer.hpp"
#include "runtime/net.hpp"

namespace dsg::test {

struct GradientCheckOptions {
  float step = 1e-2f;
  float threshold = 1e-2f;
  int max_checks = 150;       // sampled positions per tensor
  float kink = 0.0f;
  float kink_range = -1.0f;   // < 0: no kink skipping
  bool check_params = true;
  std::vector<int> bottoms;   // bottoms to check; empty = every bottom the layer allows
  uint64_t seed = 1701;
};

// n uniform values in [lo, hi) from seed.
inline std::vector<float> uniform_vector(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

// Fills a tensor with uniform values in [lo, hi) (the values uniform_vector gives).
inline void fill_uniform(Tensor& t, float lo, float hi, uint64_t seed) {
  const std::vector<float> v = uniform_vector(size_t(t.count()), seed, lo, hi);
  std::copy(v.begin(), v.end(), t.mutable_data());
}

// The layer must be set up already (layer.setup(bottom, top, rng)). Runs forward/backward with
// `ctx` each time, so stochastic layers see the same random pattern in every evaluation.
inline void check_layer_gradient(Layer& layer, const TensorVec& bottom, const TensorVec& top,
                                 const Context& ctx, const GradientCheckOptions& opt = {}) {
  // Fixed random projection weights per top.
  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  layer.forward(bottom, top, ctx);
  std::vector<std::vector<float>> weights(top.size());
  for (size_t t = 0; t < top.size(); ++t) {
    weights[t].resize(top[t]->count());
    for (auto& w : weights[t]) w = u(rng);
  }
  auto objective = [&]() {
    layer.forward(bottom, top, ctx);
    double s = 0;
    for (size_t t = 0; t < top.size(); ++t) {
      const float* d = top[t]->data();
      for (int64_t i = 0; i < top[t]->count(); ++i) s += double(weights[t][i]) * d[i];
    }
    return s;
  };

  // Analytic gradients.
  objective();
  for (size_t t = 0; t < top.size(); ++t) {
    float* g = top[t]->mutable_diff();
    for (int64_t i = 0; i < top[t]->count(); ++i) g[i] = weights[t][i];
  }
  std::vector<bool> propagate(bottom.size(), false);
  std::vector<int> bottoms = opt.bottoms;
  if (bottoms.empty())
    for (size_t b = 0; b < bottom.size(); ++b)
      if (layer.allow_backward_to(int(b))) bottoms.push_back(int(b));
  for (int b : bottoms) propagate[b] = true;
  for (auto* b : bottom) b->zero_diff();
  for (auto& p : layer.blobs()) p->zero_diff();
  layer.backward(top, propagate, bottom, ctx);

  struct Target { Tensor* tensor; std::string label; std::vector<float> analytic; };
  std::vector<Target> targets;
  for (int b : bottoms) {
    const float* g = bottom[b]->diff();
    targets.push_back({bottom[b], "bottom " + std::to_string(b), std::vector<float>(g, g + bottom[b]->count())});
  }
  if (opt.check_params) {
    for (size_t p = 0; p < layer.blobs().size(); ++p) {
      if (!layer.param_propagate_down(int(p))) continue;
      Tensor* t = layer.blobs()[p].get();
      const float* g = t->diff();
      targets.push_back({t, "param " + std::to_string(p), std::vector<float>(g, g + t->count())});
    }
  }

  std::mt19937_64 pick(opt.seed + 7);
  for (auto& target : targets) {
    int64_t n = target.tensor->count();
    std::vector<int64_t> positions;
    if (n <= opt.max_checks) {
      for (int64_t i = 0; i < n; ++i) positions.push_back(i);
    } else {
      std::uniform_int_distribution<int64_t> any(0, n - 1);
      for (int k = 0; k < opt.max_checks; ++k) positions.push_back(any(pick));
    }
    int failures = 0;
    for (int64_t i : positions) {
      float* x = target.tensor->mutable_data() + i;
      float original = *x;
      if (opt.kink_range > 0 && std::fabs(original - opt.kink) < opt.kink_range) continue;
      *x = original + opt.step;
      double plus = objective();
      x = target.tensor->mutable_data() + i;
      *x = original - opt.step;
      double minus = objective();
      x = target.tensor->mutable_data() + i;
      *x = original;
      double numeric = (plus - minus) / (2.0 * opt.step);
      double analytic = target.analytic[i];
      double scale = std::max({std::fabs(analytic), std::fabs(numeric), 1.0});
      bool ok = std::fabs(analytic - numeric) <= opt.threshold * scale;
      if (!ok && failures++ < 5) {
        INFO(layer.type() << " " << target.label << " index " << i << ": analytic " << analytic
                          << " numeric " << numeric);
        CHECK(ok);
      }
    }
    INFO(layer.type() << " " << target.label << " mismatches: " << failures);
    CHECK(failures == 0);
  }
  objective();  // leave tops consistent with the unperturbed inputs
}

// Central differences of a whole net's loss against the parameter diffs of one forward_backward
// (which the caller has run with `ctx` after zeroing the diffs), for every element of every
// learnable parameter: |diff - (L(w + step) - L(w - step)) / 2 step| <= margin. Returns the number
// of elements checked.
inline int check_net_param_gradients(Net& net, const Context& ctx, float step = 1e-2f, double margin = 2e-3) {
  int checked = 0;
  for (const auto& p : net.learnable_params()) {
    for (int64_t i = 0; i < p.tensor->count(); ++i) {
      const float orig = p.tensor->mutable_data()[i];
      p.tensor->mutable_data()[i] = orig + step;
      const double plus = net.forward(ctx);
      p.tensor->mutable_data()[i] = orig - step;
      const double minus = net.forward(ctx);
      p.tensor->mutable_data()[i] = orig;
      INFO(p.layer << "[" << p.index << "] element " << i);
      CHECK(p.tensor->diff()[i] == Approx((plus - minus) / (2 * step)).margin(margin));
      ++checked;
    }
  }
  return checked;
}

}  // namespace dsg::test
