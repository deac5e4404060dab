#include <catch2/catch.hpp>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter flatten_param() {
  LayerParameter p;
  p.set_name("flat");
  p.set_type("Flatten");
  return p;
}

TEST_CASE("Flatten merges axes 1..end by default and keeps the data", "[layer][flatten]") {
  auto layer = create_layer(flatten_param());
  Tensor x({2, 3, 2, 2}), y;
  for (int i = 0; i < 24; ++i) x.mutable_data()[i] = float(i);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  REQUIRE(y.shape() == std::vector<int>{2, 12});
  for (int i = 0; i < 24; ++i) CHECK(y.data()[i] == float(i));
}

TEST_CASE("Flatten honours axis and end_axis", "[layer][flatten]") {
  auto p = flatten_param();
  p.mutable_flatten_param()->set_axis(1);
  p.mutable_flatten_param()->set_end_axis(2);
  auto layer = create_layer(p);
  Tensor x({2, 3, 4, 5}), y;
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  CHECK(y.shape() == std::vector<int>{2, 12, 5});
  p.mutable_flatten_param()->set_axis(0);
  p.mutable_flatten_param()->set_end_axis(-2);
  auto other = create_layer(p);
  other->setup({&x}, {&y}, rng);
  CHECK(y.shape() == std::vector<int>{24, 5});
}

TEST_CASE("Flatten gradient check", "[layer][flatten][gradient]") {
  auto layer = create_layer(flatten_param());
  Tensor x({2, 3, 2, 2}), y;
  test::fill_uniform(x, -1, 1, 3);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
}

TEST_CASE("Flatten rejects bad axes", "[layer][flatten]") {
  std::mt19937_64 rng(1);
  Tensor x({2, 3, 4}), y;
  auto p = flatten_param();
  p.mutable_flatten_param()->set_axis(3);
  REQUIRE_THROWS_AS(create_layer(p)->setup({&x}, {&y}, rng), dsg::Error);
  p.mutable_flatten_param()->set_axis(2);
  p.mutable_flatten_param()->set_end_axis(1);
  REQUIRE_THROWS_AS(create_layer(p)->setup({&x}, {&y}, rng), dsg::Error);
}
