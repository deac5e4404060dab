#include <catch2/catch.hpp>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter input_param(std::initializer_list<std::vector<int64_t>> shapes) {
  LayerParameter p;
  p.set_name("input");
  p.set_type("Input");
  for (const auto& s : shapes) {
    auto* bs = p.mutable_input_param()->add_shape();
    for (int64_t d : s) bs->add_dim(d);
  }
  return p;
}

TEST_CASE("Input shapes one top per shape", "[layer][input]") {
  auto layer = create_layer(input_param({{2, 3, 4, 4}, {2}}));
  Tensor data, label;
  std::mt19937_64 rng(1);
  layer->setup({}, {&data, &label}, rng);
  CHECK(layer->is_data_layer());
  CHECK(data.shape() == std::vector<int>{2, 3, 4, 4});
  CHECK(label.shape() == std::vector<int>{2});
  // Forward leaves the caller's values (and shapes) alone.
  data.set_data(3.0f);
  layer->forward({}, {&data, &label}, Context{});
  CHECK(data.data()[5] == 3.0f);
}

TEST_CASE("Input with one shape shapes every top", "[layer][input]") {
  auto layer = create_layer(input_param({{5, 7}}));
  Tensor a, b, c;
  std::mt19937_64 rng(1);
  layer->setup({}, {&a, &b, &c}, rng);
  for (Tensor* t : {&a, &b, &c}) CHECK(t->shape() == std::vector<int>{5, 7});
}

TEST_CASE("Input has no gradient", "[layer][input][gradient]") {
  auto layer = create_layer(input_param({{2, 3}}));
  Tensor a;
  std::mt19937_64 rng(1);
  layer->setup({}, {&a}, rng);
  REQUIRE(layer->blobs().empty());
  test::check_layer_gradient(*layer, {}, {&a}, Context{});  // nothing to check: no bottoms or params
}

TEST_CASE("Input rejects a shape count that matches neither 1 nor the tops, and bottoms", "[layer][input]") {
  std::mt19937_64 rng(1);
  Tensor a, b, c, x({2});
  REQUIRE_THROWS_AS(create_layer(input_param({{1}, {2}}))->setup({}, {&a, &b, &c}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(input_param({{1}}))->setup({&x}, {&a}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(input_param({{2, -3}}))->setup({}, {&a}, rng), dsg::Error);
}
