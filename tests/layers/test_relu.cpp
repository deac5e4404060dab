#include <catch2/catch.hpp>

#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter relu_param(float slope) {
  LayerParameter p;
  p.set_name("relu");
  p.set_type("ReLU");
  p.mutable_relu_param()->set_negative_slope(slope);
  return p;
}

TEST_CASE("ReLU forward clamps negatives and leaks with slope", "[layer][relu]") {
  for (float slope : {0.0f, 0.1f}) {
    auto layer = create_layer(relu_param(slope));
    Tensor x({2, 3}), y;
    const float in[] = {-2, -0.5f, 0, 0.5f, 1, 3};
    for (int i = 0; i < 6; ++i) x.mutable_data()[i] = in[i];
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    layer->forward({&x}, {&y}, Context{});
    REQUIRE(y.shape() == std::vector<int>{2, 3});
    for (int i = 0; i < 6; ++i) CHECK(y.data()[i] == Approx(in[i] > 0 ? in[i] : slope * in[i]));
  }
}

TEST_CASE("ReLU gradient check", "[layer][relu][gradient]") {
  for (float slope : {0.0f, 0.2f}) {
    auto layer = create_layer(relu_param(slope));
    Tensor x({2, 3, 4, 5}), y;
    test::fill_uniform(x, -1, 1, 3);
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    test::GradientCheckOptions opt;
    opt.kink_range = 0.02f;
    test::check_layer_gradient(*layer, {&x}, {&y}, Context{}, opt);
  }
}
