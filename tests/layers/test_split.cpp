#include <catch2/catch.hpp>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter split_param() {
  LayerParameter p;
  p.set_name("split");
  p.set_type("Split");
  return p;
}

TEST_CASE("Split tops share the bottom's data and backward sums the diffs", "[layer][split]") {
  auto layer = create_layer(split_param());
  Tensor x({2, 3}), a, b, c;
  for (int i = 0; i < 6; ++i) x.mutable_data()[i] = float(i);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&a, &b, &c}, rng);
  layer->forward({&x}, {&a, &b, &c}, Context{});
  for (Tensor* t : {&a, &b, &c}) {
    REQUIRE(t->shape() == x.shape());
    CHECK(t->data() == x.data());
  }
  for (int i = 0; i < 6; ++i) {
    a.mutable_diff()[i] = 1.0f;
    b.mutable_diff()[i] = float(i);
    c.mutable_diff()[i] = -0.5f;
  }
  layer->backward({&a, &b, &c}, {true}, {&x}, Context{});
  for (int i = 0; i < 6; ++i) CHECK(x.diff()[i] == Approx(0.5f + float(i)));
}

TEST_CASE("Split follows a bottom that grows", "[layer][split]") {
  auto layer = create_layer(split_param());
  Tensor x({2, 3}), a, b;
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&a, &b}, rng);
  layer->forward({&x}, {&a, &b}, Context{});
  x.reshape({4, 5});
  x.set_data(7.0f);
  layer->forward({&x}, {&a, &b}, Context{});
  REQUIRE(a.shape() == std::vector<int>{4, 5});
  CHECK(a.data() == x.data());
  CHECK(b.data()[19] == 7.0f);
}

TEST_CASE("Split gradient check", "[layer][split][gradient]") {
  auto layer = create_layer(split_param());
  Tensor x({2, 3, 4}), a, b;
  test::fill_uniform(x, -1, 1, 3);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&a, &b}, rng);
  test::check_layer_gradient(*layer, {&x}, {&a, &b}, Context{});
}

TEST_CASE("Split needs one bottom and at least one top", "[layer][split]") {
  std::mt19937_64 rng(1);
  Tensor x({2}), y({2}), a;
  REQUIRE_THROWS_AS(create_layer(split_param())->setup({&x}, {}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(split_param())->setup({&x, &y}, {&a}, rng), dsg::Error);
}
