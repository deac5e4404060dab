#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/error.hpp"
#include "runtime/parallel.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter softmax_param(int axis) {
  LayerParameter p;
  p.set_name("prob");
  p.set_type("Softmax");
  p.mutable_softmax_param()->set_axis(axis);
  return p;
}

TEST_CASE("Softmax forward on hand-computed rows, stable for large scores", "[layer][softmax]") {
  auto layer = create_layer(softmax_param(1));
  Tensor x({3, 3}), y;
  const float in[] = {1, 2, 3, 1000, 1000, 0, -5, -5, -5};
  for (int i = 0; i < 9; ++i) x.mutable_data()[i] = in[i];
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  const float expect[] = {0.0900305732f, 0.2447284711f, 0.6652409558f, 0.5f, 0.5f, 0.0f,
                          1.0f / 3, 1.0f / 3, 1.0f / 3};
  for (int i = 0; i < 9; ++i) CHECK(y.data()[i] == Approx(expect[i]).margin(1e-7));
}

TEST_CASE("Softmax over a middle axis normalises across that axis only", "[layer][softmax]") {
  auto layer = create_layer(softmax_param(1));
  Tensor x({1, 2, 2}), y;  // positions (c, i): x[c=0] = {0, ln 3}, x[c=1] = {ln 3, 0}
  const float l3 = std::log(3.0f);
  const float in[] = {0, l3, l3, 0};
  for (int i = 0; i < 4; ++i) x.mutable_data()[i] = in[i];
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  const float expect[] = {0.25f, 0.75f, 0.75f, 0.25f};
  for (int i = 0; i < 4; ++i) CHECK(y.data()[i] == Approx(expect[i]));
}

TEST_CASE("Softmax gradient check", "[layer][softmax][gradient]") {
  for (int axis : {1, 2, -1}) {
    auto layer = create_layer(softmax_param(axis));
    Tensor x({2, 4, 3}), y;
    test::fill_uniform(x, -2, 2, 3);
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
  }
}

TEST_CASE("Softmax gives the same result with several threads", "[layer][softmax]") {
  auto layer = create_layer(softmax_param(1));
  Tensor x({64, 10, 16, 16}), y1, y4;
  test::fill_uniform(x, -5, 5, 4);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y1}, rng);
  const int threads = num_threads();
  set_num_threads(1);
  layer->forward({&x}, {&y1}, Context{});
  set_num_threads(4);
  layer->forward({&x}, {&y4}, Context{});
  set_num_threads(threads);
  int differ = 0;
  for (int64_t i = 0; i < x.count(); ++i) differ += y1.data()[i] != y4.data()[i];
  CHECK(differ == 0);
}

TEST_CASE("Softmax rejects an axis out of range", "[layer][softmax]") {
  auto layer = create_layer(softmax_param(2));
  Tensor x({2, 3}), y;
  std::mt19937_64 rng(1);
  REQUIRE_THROWS_AS(layer->setup({&x}, {&y}, rng), dsg::Error);
}
