#include <catch2/catch.hpp>

#include <initializer_list>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter reshape_param(std::initializer_list<int64_t> dims, int axis = 0, int num_axes = -1) {
  LayerParameter p;
  p.set_name("rs");
  p.set_type("Reshape");
  auto* rp = p.mutable_reshape_param();
  for (int64_t d : dims) rp->mutable_shape()->add_dim(d);
  rp->set_axis(axis);
  rp->set_num_axes(num_axes);
  return p;
}

static std::vector<int> top_shape(const LayerParameter& p, const std::vector<int>& in) {
  auto layer = create_layer(p);
  Tensor x(in), y;
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  return y.shape();
}

TEST_CASE("Reshape keeps the data in order", "[layer][reshape]") {
  auto layer = create_layer(reshape_param({0, -1}));
  Tensor x({2, 3, 2}), y;
  for (int i = 0; i < 12; ++i) x.mutable_data()[i] = float(i) * 0.5f;
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  REQUIRE(y.shape() == std::vector<int>{2, 6});
  for (int i = 0; i < 12; ++i) CHECK(y.data()[i] == float(i) * 0.5f);
}

TEST_CASE("Reshape follows Caffe's 0 / -1 / axis / num_axes rules", "[layer][reshape]") {
  CHECK(top_shape(reshape_param({-1}), {2, 3, 4}) == std::vector<int>{24});
  CHECK(top_shape(reshape_param({0, 0, 2, 2}), {2, 3, 4}) == std::vector<int>{2, 3, 2, 2});
  CHECK(top_shape(reshape_param({6, -1}), {2, 3, 4}) == std::vector<int>{6, 4});
  CHECK(top_shape(reshape_param({2, 2}, 2), {2, 3, 4}) == std::vector<int>{2, 3, 2, 2});
  CHECK(top_shape(reshape_param({1, 1}, -1), {2, 3, 4}) == std::vector<int>{2, 3, 4, 1, 1});
  CHECK(top_shape(reshape_param({1}, 0, 0), {2, 3, 4}) == std::vector<int>{1, 2, 3, 4});
  CHECK(top_shape(reshape_param({-1}, 1, 2), {2, 3, 4, 5}) == std::vector<int>{2, 12, 5});
  CHECK(top_shape(reshape_param({0, -1}, 1, 2), {2, 3, 4, 5}) == std::vector<int>{2, 3, 4, 5});
}

TEST_CASE("Reshape gradient check", "[layer][reshape][gradient]") {
  auto layer = create_layer(reshape_param({-1, 4}));
  Tensor x({2, 3, 4}), y;
  test::fill_uniform(x, -1, 1, 3);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  REQUIRE(y.shape() == std::vector<int>{6, 4});
  test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
}

TEST_CASE("Reshape rejects impossible shapes", "[layer][reshape]") {
  std::mt19937_64 rng(1);
  Tensor x({2, 3, 4}), y;
  REQUIRE_THROWS_AS(create_layer(reshape_param({-1, -1}))->setup({&x}, {&y}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(reshape_param({5, -1}))->setup({&x}, {&y}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(reshape_param({5, 5}))->setup({&x}, {&y}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(reshape_param({-2, 12}))->setup({&x}, {&y}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(reshape_param({0, 0, 0, 0}))->setup({&x}, {&y}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(reshape_param({24}, 4))->setup({&x}, {&y}, rng), dsg::Error);
  REQUIRE_THROWS_AS(create_layer(reshape_param({24}, 0, 5))->setup({&x}, {&y}, rng), dsg::Error);
}
