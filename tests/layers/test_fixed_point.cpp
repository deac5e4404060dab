// Fixed-point simulation (fixed_point_param): the rounding grids (12-bit weights, Q1.15
// activations), the LSTM's forward with rounded weights and h, the straight-through backward, and
// the configuration errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "layers/fixed_point.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

namespace {

LayerParameter lstm_param(int h, int weight_bits, int activation_bits) {
  LayerParameter p;
  p.set_name("lstm");
  p.set_type("LSTM");
  auto* r = p.mutable_recurrent_param();
  r->set_num_output(uint32_t(h));
  r->mutable_weight_filler()->set_type("uniform");
  r->mutable_weight_filler()->set_min(-0.8f);
  r->mutable_weight_filler()->set_max(0.8f);
  r->mutable_bias_filler()->set_type("uniform");
  r->mutable_bias_filler()->set_min(-0.5f);
  r->mutable_bias_filler()->set_max(0.5f);
  if (weight_bits >= 0) {
    p.mutable_fixed_point_param()->set_weight_bits(uint32_t(weight_bits));
    p.mutable_fixed_point_param()->set_activation_bits(uint32_t(activation_bits));
  }
  return p;
}

// An LSTM over x [T, N, D] with every stream continuing after t = 0; blobs from seed 5.
struct Lstm {
  std::unique_ptr<Layer> layer;
  Tensor x, cont, h;
  Lstm(int T, int N, int D, int H, int weight_bits, int activation_bits) {
    layer = create_layer(lstm_param(H, weight_bits, activation_bits));
    x.reshape({T, N, D});
    test::fill_uniform(x, -1.5f, 1.5f, 11);
    cont.reshape({T, N});
    for (int i = 0; i < T * N; ++i) cont.mutable_data()[i] = i < N ? 0.0f : 1.0f;
    std::mt19937_64 rng(5);
    layer->setup({&x, &cont}, {&h}, rng);
  }
  void forward() { layer->forward({&x, &cont}, {&h}, Context{}); }
  // Backward of L = sum(dy .* h) with dy from seed 9; returns the diffs of x, W_xc, b_c, W_hc.
  std::vector<std::vector<float>> gradients() {
    forward();
    Tensor dy(h.shape());
    test::fill_uniform(dy, -1.0f, 1.0f, 9);
    std::copy(dy.data(), dy.data() + dy.count(), h.mutable_diff());
    for (auto& b : layer->blobs()) std::fill(b->mutable_diff(), b->mutable_diff() + b->count(), 0.0f);
    layer->backward({&h}, {true, false}, {&x, &cont}, Context{});
    std::vector<std::vector<float>> out;
    out.emplace_back(x.diff(), x.diff() + x.count());
    for (auto& b : layer->blobs()) out.emplace_back(b->diff(), b->diff() + b->count());
    return out;
  }
};

}  // namespace

TEST_CASE("fixed point: the 12-bit weight grid and the Q1.15 activation grid", "[layer][fixed_point]") {
  const std::vector<float> w = {0.5f, -1.0f, 0.0f, 0.2501f, 1e-5f, -0.3333f};
  const float step = weight_grid_step(w.data(), int64_t(w.size()), 12);
  CHECK(step == Approx(1.0 / 2047));  // max|w| / (2^11 - 1)
  CHECK(weight_grid_step(w.data(), int64_t(w.size()), 0) == 0.0f);
  std::vector<float> q(w.size());
  round_to_step(w.data(), int64_t(w.size()), step, q.data());
  for (size_t i = 0; i < w.size(); ++i) {
    INFO("w " << w[i]);
    const double k = double(q[i]) / double(step);
    CHECK(std::fabs(k - std::round(k)) < 1e-3);  // on the grid
    CHECK(std::fabs(std::round(k)) <= 2047);
    CHECK(std::fabs(q[i] - w[i]) <= 0.5 * step + 1e-7);
  }
  CHECK(q[1] == Approx(-1.0f));  // the largest magnitude is representable
  CHECK(q[2] == 0.0f);           // pruned weights stay pruned
  CHECK(q[4] == 0.0f);           // below half a step
  CHECK(q[0] == Approx(1024.0 / 2047));

  CHECK(activation_step(16) == std::ldexp(1.0f, -15));
  CHECK(activation_step(0) == 0.0f);
  const float s = activation_step(16);
  CHECK(round_activation(0.3f, s) == float(std::round(0.3 * 32768) / 32768));
  CHECK(round_activation(-0.3f, s) == float(-std::round(0.3 * 32768) / 32768));
  CHECK(round_activation(0.99999f, s) == 1.0f - s);  // saturates below +1
  CHECK(round_activation(1.5f, s) == 1.0f - s);
  CHECK(round_activation(-1.5f, s) == -1.0f);
  CHECK(round_activation(0.0f, s) == 0.0f);
}

TEST_CASE("fixed point LSTM: forward uses the rounded weights and rounds h", "[layer][fixed_point][lstm]") {
  const int T = 4, N = 3, D = 5, H = 6;
  Lstm fixed(T, N, D, H, 6, 0);  // coarse 6-bit weights so the rounding matters; h unrounded
  Lstm plain(T, N, D, H, -1, 0);
  // plain gets the rounded weights by hand; the fixed-point layer keeps float master weights.
  for (size_t b = 0; b < 3; ++b) {
    const Tensor& src = *fixed.layer->blobs()[b];
    Tensor& dst = *plain.layer->blobs()[b];
    round_to_step(src.data(), src.count(), weight_grid_step(src.data(), src.count(), 6), dst.mutable_data());
  }
  const std::vector<float> master(fixed.layer->blobs()[0]->data(),
                                  fixed.layer->blobs()[0]->data() + fixed.layer->blobs()[0]->count());
  fixed.forward();
  plain.forward();
  for (int64_t i = 0; i < fixed.h.count(); ++i) REQUIRE(fixed.h.data()[i] == Approx(plain.h.data()[i]).margin(1e-6));
  // The master weights are untouched.
  for (size_t i = 0; i < master.size(); ++i) REQUIRE(fixed.layer->blobs()[0]->data()[i] == master[i]);

  // 16-bit activations: every h is a multiple of 2^-15, close to the float result.
  Lstm act(T, N, D, H, 0, 16);
  Lstm ref(T, N, D, H, -1, 0);
  act.forward();
  ref.forward();
  bool any_rounded = false;
  for (int64_t i = 0; i < act.h.count(); ++i) {
    const double k = double(act.h.data()[i]) * 32768.0;
    REQUIRE(k == std::round(k));
    REQUIRE(std::fabs(act.h.data()[i] - ref.h.data()[i]) < 1e-3);
    any_rounded = any_rounded || act.h.data()[i] != ref.h.data()[i];
  }
  CHECK(any_rounded);
}

TEST_CASE("fixed point LSTM: straight-through backward", "[layer][fixed_point][lstm][gradient]") {
  const int T = 4, N = 2, D = 3, H = 4;
  // 12-bit weights and 16-bit h change the gradients only by the (small) rounding of the forward.
  Lstm on(T, N, D, H, 12, 16);
  Lstm off(T, N, D, H, -1, 0);
  const auto g_on = on.gradients();
  const auto g_off = off.gradients();
  REQUIRE(g_on.size() == 4);
  for (size_t k = 0; k < g_on.size(); ++k) {
    float scale = 0;
    for (float v : g_off[k]) scale = std::max(scale, std::fabs(v));
    REQUIRE(scale > 0);
    for (size_t i = 0; i < g_on[k].size(); ++i) {
      INFO("tensor " << k << " index " << i);
      REQUIRE(std::fabs(g_on[k][i] - g_off[k][i]) <= 5e-3f * scale);
    }
  }
  // With h unrounded, the forward is a smooth function of x for the fixed rounded weights: the
  // data gradient (through the rounded weights) passes the finite-difference check.
  Lstm coarse(T, N, D, H, 5, 0);
  test::GradientCheckOptions opt;
  opt.threshold = 3e-3f;
  opt.check_params = false;
  opt.bottoms = {0};
  test::check_layer_gradient(*coarse.layer, {&coarse.x, &coarse.cont}, {&coarse.h}, Context{}, opt);
}

TEST_CASE("fixed_point_param: configuration errors", "[layer][fixed_point]") {
  auto error_of = [](const LayerParameter& p, const TensorVec& bottom) -> std::string {
    try {
      auto layer = create_layer(p);
      Tensor top;
      std::mt19937_64 rng(1);
      layer->setup(bottom, {&top}, rng);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  Tensor x({2, 3, 4}), cont({2, 3});
  CHECK_THAT(error_of(lstm_param(4, 1, 16), {&x, &cont}), Catch::Contains("lstm") && Catch::Contains("weight_bits"));
  CHECK_THAT(error_of(lstm_param(4, 12, 30), {&x, &cont}), Catch::Contains("[2, 24]"));
  CHECK(error_of(lstm_param(4, 12, 16), {&x, &cont}).empty());
  LayerParameter ip;
  ip.set_name("fc");
  ip.set_type("InnerProduct");
  ip.mutable_inner_product_param()->set_num_output(3);
  ip.mutable_fixed_point_param();
  Tensor in({2, 4});
  CHECK_THAT(error_of(ip, {&in}), Catch::Contains("fc") && Catch::Contains("fixed_point_param is not supported"));
}
