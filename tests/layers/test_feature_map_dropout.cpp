// FeatureMapDropout: k = round(p C) channels dropped per pass and shared by the batch, UNIFORM
// drop rates k / C (statistics), TAYLOR dropping low-sensitivity channels more often, the
// numerical gradient for a fixed pattern, and the next convolution reading only kept channels.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include <google/protobuf/text_format.h>

#include "runtime/net.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

namespace {

LayerParameter fm_param(float ratio, FeatureMapDropoutParameter::Sensitivity s) {
  LayerParameter p;
  p.set_name("fm");
  p.set_type("FeatureMapDropout");
  p.mutable_dropout_param()->set_dropout_ratio(ratio);
  p.mutable_feature_map_dropout_param()->set_sensitivity(s);
  return p;
}

Context train_at(int64_t iteration) {
  Context ctx;
  ctx.phase = TRAIN;
  ctx.seed = 5;
  ctx.iteration = iteration;
  return ctx;
}

}  // namespace

TEST_CASE("FeatureMapDropout drops k channels per pass, uniformly without sensitivity", "[layer][fmdrop]") {
  auto layer = create_layer(fm_param(0.25f, FeatureMapDropoutParameter::UNIFORM));
  Tensor x({2, 16, 3, 3}), y;
  x.set_data(1.0f);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  const int passes = 4000;
  std::vector<int> dropped(16, 0);
  for (int it = 0; it < passes; ++it) {
    Context ctx = train_at(it);
    layer->sample_dynamic_structure(ctx);
    REQUIRE(layer->dynamic_kept().size() == 12);  // round(0.25 * 16) = 4 dropped
    layer->forward({&x}, {&y}, ctx);
    for (int c = 0; c < 16; ++c) {
      const float v = y.data()[c * 9];
      dropped[size_t(c)] += v == 0.0f;
      if (v != 0.0f) REQUIRE(v == Approx(16.0 / 12.0));
      for (int j = 0; j < 9; ++j) REQUIRE(y.data()[16 * 9 + c * 9 + j] == v);  // same for both samples
    }
  }
  // Each channel: dropped with probability 1/4 per pass, independently across passes.
  const double se = std::sqrt(0.25 * 0.75 / passes);
  for (int c = 0; c < 16; ++c) CHECK(std::fabs(double(dropped[size_t(c)]) / passes - 0.25) <= 4 * se);
}

TEST_CASE("FeatureMapDropout with Taylor sensitivity drops low-sensitivity channels more often", "[layer][fmdrop]") {
  auto layer = create_layer(fm_param(0.25f, FeatureMapDropoutParameter::TAYLOR));
  Tensor x({4, 8, 2, 2}), y;
  x.set_data(1.0f);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  std::vector<int> dropped(8, 0);
  const int passes = 3000;
  for (int it = 0; it < passes; ++it) {
    Context ctx = train_at(it);
    layer->sample_dynamic_structure(ctx);
    layer->forward({&x}, {&y}, ctx);
    // Gradient magnitude grows with the channel index: channel c has sensitivity ~ (c + 1).
    for (int n = 0; n < 4; ++n)
      for (int c = 0; c < 8; ++c)
        for (int j = 0; j < 4; ++j) y.mutable_diff()[(n * 8 + c) * 4 + j] = float(c + 1);
    layer->backward({&y}, {true}, {&x}, ctx);
    if (it >= 100)
      for (int c = 0; c < 8; ++c) dropped[size_t(c)] += std::find(layer->dynamic_kept().begin(), layer->dynamic_kept().end(), c) == layer->dynamic_kept().end();
  }
  INFO("drops per channel: " << dropped[0] << " " << dropped[3] << " " << dropped[7]);
  CHECK(dropped[0] > 2 * dropped[7]);
  CHECK(dropped[0] + dropped[1] + dropped[2] + dropped[3] > dropped[4] + dropped[5] + dropped[6] + dropped[7]);
  int total = 0;
  for (int d : dropped) total += d;
  CHECK(total == 2 * (passes - 100));  // exactly 2 of 8 channels every pass
}

TEST_CASE("FeatureMapDropout gradient for a fixed pattern, and the next convolution skips dropped channels",
          "[layer][fmdrop][gradient]") {
  auto layer = create_layer(fm_param(0.5f, FeatureMapDropoutParameter::UNIFORM));
  Tensor x({2, 6, 3, 3}), y;
  test::fill_uniform(x, -1.0f, 1.0f, 2);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  Context ctx = train_at(3);
  layer->sample_dynamic_structure(ctx);
  test::check_layer_gradient(*layer, {&x}, {&y}, ctx);

  NetParameter p;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(
      "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 6 dim: 5 dim: 5 } } }\n"
      "layer { name: 'fm' type: 'FeatureMapDropout' bottom: 'x' top: 'x' dropout_param { dropout_ratio: 0.5 } }\n"
      "layer { name: 'conv' type: 'Convolution' bottom: 'x' top: 'y' convolution_param { num_output: 4 kernel_size: 3 "
      "weight_filler { type: 'gaussian' std: 0.3 } } }\n",
      &p));
  std::mt19937_64 r2(3);
  Net net(p, TRAIN, r2);
  test::fill_uniform(net.blob("x"), -1.0f, 1.0f, 4);
  net.forward(train_at(0));
  const auto& kept = net.layer_by_name("fm")->dynamic_kept();
  REQUIRE(kept.size() == 3);
  CHECK(net.layer_by_name("conv")->active_inputs() == kept);
}
