#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter tanh_param() {
  LayerParameter p;
  p.set_name("tanh");
  p.set_type("TanH");
  return p;
}

TEST_CASE("TanH forward matches tanh", "[layer][tanh]") {
  auto layer = create_layer(tanh_param());
  Tensor x({2, 3}), y;
  const float in[] = {-3, -1, 0, 0.5f, 2, 40};
  const float expect[] = {-0.9950547537f, -0.7615941560f, 0.0f, 0.4621171573f, 0.9640275801f, 1.0f};
  for (int i = 0; i < 6; ++i) x.mutable_data()[i] = in[i];
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  REQUIRE(y.shape() == x.shape());
  for (int i = 0; i < 6; ++i) CHECK(y.data()[i] == Approx(expect[i]).epsilon(1e-6));
}

TEST_CASE("TanH in place matches out of place", "[layer][tanh]") {
  auto layer = create_layer(tanh_param());
  REQUIRE(layer->allows_in_place());
  Tensor x({3, 4}), y, z({3, 4});
  test::fill_uniform(x, -2, 2, 5);
  z.copy_from(x);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = float(i % 5) - 2;
  layer->backward({&y}, {true}, {&x}, Context{});
  layer->forward({&z}, {&z}, Context{});
  for (int64_t i = 0; i < z.count(); ++i) z.mutable_diff()[i] = float(i % 5) - 2;
  layer->backward({&z}, {true}, {&z}, Context{});
  for (int64_t i = 0; i < z.count(); ++i) {
    CHECK(z.data()[i] == y.data()[i]);
    CHECK(z.diff()[i] == Approx(x.diff()[i]));
  }
}

TEST_CASE("TanH gradient check", "[layer][tanh][gradient]") {
  auto layer = create_layer(tanh_param());
  Tensor x({2, 3, 4, 5}), y;
  test::fill_uniform(x, -3, 3, 3);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
}

TEST_CASE("TanH rejects wrong arity", "[layer][tanh]") {
  auto layer = create_layer(tanh_param());
  Tensor a({2}), b({2}), y;
  std::mt19937_64 rng(1);
  REQUIRE_THROWS_AS(layer->setup({&a, &b}, {&y}, rng), dsg::Error);
  REQUIRE_THROWS_AS(layer->setup({&a}, {}, rng), dsg::Error);
}
