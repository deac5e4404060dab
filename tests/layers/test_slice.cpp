// Slice and Silence (Caffe's layers), alone and in a net taking the last step of a sequence.
#include <catch2/catch.hpp>

#include <cmath>

#include "datasets/synthetic_data.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/net.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter slice_param(int axis, std::vector<int> points = {}) {
  LayerParameter p;
  p.set_name("slice");
  p.set_type("Slice");
  p.mutable_slice_param()->set_axis(axis);
  for (int s : points) p.mutable_slice_param()->add_slice_point(uint32_t(s));
  return p;
}

static LayerParameter silence_param() {
  LayerParameter p;
  p.set_name("silence");
  p.set_type("Silence");
  return p;
}

TEST_CASE("Slice at slice points cuts along the axis and copies diffs back", "[layer][slice]") {
  auto layer = create_layer(slice_param(1, {1, 3}));
  Tensor x({2, 4, 2}), a, b, c;
  for (int i = 0; i < x.count(); ++i) x.mutable_data()[i] = float(i);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&a, &b, &c}, rng);
  layer->forward({&x}, {&a, &b, &c}, Context{});
  REQUIRE(a.shape() == std::vector<int>{2, 1, 2});
  REQUIRE(b.shape() == std::vector<int>{2, 2, 2});
  REQUIRE(c.shape() == std::vector<int>{2, 1, 2});
  const float ea[] = {0, 1, 8, 9}, eb[] = {2, 3, 4, 5, 10, 11, 12, 13}, ec[] = {6, 7, 14, 15};
  for (int i = 0; i < 4; ++i) CHECK(a.data()[i] == ea[i]);
  for (int i = 0; i < 8; ++i) CHECK(b.data()[i] == eb[i]);
  for (int i = 0; i < 4; ++i) CHECK(c.data()[i] == ec[i]);

  for (Tensor* t : {&a, &b, &c})
    for (int i = 0; i < t->count(); ++i) t->mutable_diff()[i] = -t->data()[i];
  layer->backward({&a, &b, &c}, {true}, {&x}, Context{});
  for (int i = 0; i < x.count(); ++i) CHECK(x.diff()[i] == -x.data()[i]);
}

TEST_CASE("Slice without slice points cuts equal parts; legacy slice_dim; one top", "[layer][slice]") {
  std::mt19937_64 rng(1);
  Tensor x({6, 2}), a, b, c;
  for (int i = 0; i < x.count(); ++i) x.mutable_data()[i] = float(i);
  auto layer = create_layer(slice_param(0));
  layer->setup({&x}, {&a, &b, &c}, rng);
  layer->forward({&x}, {&a, &b, &c}, Context{});
  for (Tensor* t : {&a, &b, &c}) REQUIRE(t->shape() == std::vector<int>{2, 2});
  CHECK(b.data()[0] == 4.0f);
  CHECK(c.data()[3] == 11.0f);

  LayerParameter legacy;
  legacy.set_name("slice");
  legacy.set_type("Slice");
  legacy.mutable_slice_param()->set_slice_dim(1);
  auto cols = create_layer(legacy);
  cols->setup({&x}, {&a, &b}, rng);
  cols->forward({&x}, {&a, &b}, Context{});
  REQUIRE(a.shape() == std::vector<int>{6, 1});
  CHECK(a.data()[5] == 10.0f);
  CHECK(b.data()[5] == 11.0f);

  auto whole = create_layer(slice_param(1));
  whole->setup({&x}, {&a}, rng);
  whole->forward({&x}, {&a}, Context{});
  REQUIRE(a.shape() == x.shape());
  for (int i = 0; i < x.count(); ++i) CHECK(a.data()[i] == x.data()[i]);
}

TEST_CASE("Slice gradient check", "[layer][slice][gradient]") {
  for (int axis : {0, 1, -1}) {
    auto layer = create_layer(slice_param(axis, {1}));
    Tensor x({3, 4, 5}), a, b;
    test::fill_uniform(x, -1, 1, 1);
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&a, &b}, rng);
    test::check_layer_gradient(*layer, {&x}, {&a, &b}, Context{});
  }
}

TEST_CASE("Slice rejects bad axes, slice points and part counts", "[layer][slice][errors]") {
  std::mt19937_64 rng(1);
  Tensor x({2, 6, 3}), a, b, c, d;
  // Axis out of range.
  REQUIRE_THROWS_AS(create_layer(slice_param(3, {1}))->setup({&x}, {&a, &b}, rng), dsg::Error);
  // axis and slice_dim together.
  auto both = slice_param(1, {2});
  both.mutable_slice_param()->set_slice_dim(1);
  REQUIRE_THROWS_AS(create_layer(both)->setup({&x}, {&a, &b}, rng), dsg::Error);
  // Slice points do not match the tops.
  CHECK(test::error_text([&] { create_layer(slice_param(1, {2, 4}))->setup({&x}, {&a, &b}, rng); })
            .find("need 3 tops") != std::string::npos);
  // Not increasing, zero, at or past the end.
  REQUIRE_THROWS_AS(create_layer(slice_param(1, {4, 2}))->setup({&x}, {&a, &b, &c}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(slice_param(1, {0}))->setup({&x}, {&a, &b}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(slice_param(1, {6}))->setup({&x}, {&a, &b}, rng), dsg::Error);
  // 6 is not divisible into 4 equal parts.
  CHECK(test::error_text([&] { create_layer(slice_param(1))->setup({&x}, {&a, &b, &c, &d}, rng); })
            .find("4 equal parts") != std::string::npos);
  // No tops.
  REQUIRE_THROWS_AS(create_layer(slice_param(1))->setup({&x}, {}, rng), dsg::Error);
}

TEST_CASE("Silence takes any bottoms, no tops, and writes zero diffs", "[layer][slice][silence]") {
  std::mt19937_64 rng(1);
  Tensor a({2, 3}), b({4}), y;
  for (Tensor* t : {&a, &b})
    for (int i = 0; i < t->count(); ++i) t->mutable_diff()[i] = 7.0f;
  auto layer = create_layer(silence_param());
  layer->setup({&a, &b}, {}, rng);
  CHECK(layer->forward({&a, &b}, {}, Context{}) == 0.0f);
  layer->backward({}, {true, false}, {&a, &b}, Context{});
  for (int i = 0; i < a.count(); ++i) CHECK(a.diff()[i] == 0.0f);
  for (int i = 0; i < b.count(); ++i) CHECK(b.diff()[i] == 7.0f);  // not asked for: untouched
  REQUIRE_THROWS_AS(create_layer(silence_param())->setup({&a}, {&y}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(silence_param())->setup({}, {}, rng), dsg::Error);
}

// A sequence model's head: a per-step projection of x [T, N, D], then Slice on axis 0 keeps the
// last step for the classifier; the other steps go to Silence (or, without it, stay unconsumed).
// Either way, the gradients of the whole net match finite differences.
static const char* kLastStepNet = R"(
  name: "last-step"
  layer { name: "in" type: "Input" top: "x" top: "label"
          input_param { shape { dim: 3 dim: 2 dim: 4 } shape { dim: 2 } } }
  layer { name: "proj" type: "InnerProduct" bottom: "x" top: "y"
          inner_product_param { num_output: 5 axis: 2 weight_filler { type: "uniform" min: -1 max: 1 }
                                bias_filler { type: "uniform" min: -1 max: 1 } } }
  layer { name: "act" type: "TanH" bottom: "y" top: "y" }
  layer { name: "last" type: "Slice" bottom: "y" top: "y_early" top: "y_last" slice_param { axis: 0 slice_point: 2 } }
  SILENCE
  layer { name: "flat" type: "Flatten" bottom: "y_last" top: "feat" flatten_param { axis: 0 end_axis: 1 } }
  layer { name: "out" type: "InnerProduct" bottom: "feat" top: "scores"
          inner_product_param { num_output: 3 weight_filler { type: "uniform" min: -1 max: 1 } } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "loss" }
)";

TEST_CASE("Slice + Silence in a net: the last step's gradient only, checked numerically", "[layer][slice][silence][net]") {
  for (bool silence : {true, false}) {
    std::string text = kLastStepNet;
    const std::string layer = silence ? R"(layer { name: "silence" type: "Silence" bottom: "y_early" })" : "";
    text.replace(text.find("SILENCE"), 7, layer);
    NetParameter net_param;
    parse_text_proto(text, "last-step-net", &net_param);
    std::mt19937_64 rng(3);
    Net net(net_param, TRAIN, rng);
    INFO("with Silence: " << silence);
    CHECK(net.has_blob("y_early"));
    test::fill_uniform(net.blob("x"), -1, 1, 9);
    net.blob("label").mutable_data()[0] = 2;
    net.blob("label").mutable_data()[1] = 0;
    Context ctx;
    for (int pass = 0; pass < 2; ++pass) {  // a second pass must not pick up stale diffs
      net.zero_param_diffs();
      CHECK(std::isfinite(net.forward_backward(ctx)));
    }
    // Steps 0 and 1 feed nothing: their part of y's diff is zero.
    const Tensor& y = net.blob("y");
    for (int i = 0; i < 2 * 2 * 5; ++i) CHECK(y.diff()[i] == 0.0f);
    const int checked = test::check_net_param_gradients(net, ctx);
    CHECK(checked == 20 + 5 + 15 + 3);
  }
}
