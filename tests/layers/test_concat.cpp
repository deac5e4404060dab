#include <catch2/catch.hpp>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter concat_param() {
  LayerParameter p;
  p.set_name("cat");
  p.set_type("Concat");
  return p;
}

TEST_CASE("Concat along channels interleaves per sample", "[layer][concat]") {
  auto layer = create_layer(concat_param());
  Tensor a({2, 1, 2}), b({2, 2, 2}), y;
  for (int i = 0; i < 4; ++i) a.mutable_data()[i] = float(100 + i);
  for (int i = 0; i < 8; ++i) b.mutable_data()[i] = float(i);
  std::mt19937_64 rng(1);
  layer->setup({&a, &b}, {&y}, rng);
  layer->forward({&a, &b}, {&y}, Context{});
  REQUIRE(y.shape() == std::vector<int>{2, 3, 2});
  const float expect[] = {100, 101, 0, 1, 2, 3, 102, 103, 4, 5, 6, 7};
  for (int i = 0; i < 12; ++i) CHECK(y.data()[i] == expect[i]);

  for (int i = 0; i < 12; ++i) y.mutable_diff()[i] = expect[i] * 2;
  layer->backward({&y}, {true, true}, {&a, &b}, Context{});
  for (int i = 0; i < 4; ++i) CHECK(a.diff()[i] == 2 * a.data()[i]);
  for (int i = 0; i < 8; ++i) CHECK(b.diff()[i] == 2 * b.data()[i]);
}

TEST_CASE("Concat with legacy concat_dim 0 stacks samples", "[layer][concat]") {
  auto p = concat_param();
  p.mutable_concat_param()->set_concat_dim(0);
  auto layer = create_layer(p);
  Tensor a({1, 3}), b({2, 3}), y;
  a.set_data(1.0f);
  b.set_data(2.0f);
  std::mt19937_64 rng(1);
  layer->setup({&a, &b}, {&y}, rng);
  layer->forward({&a, &b}, {&y}, Context{});
  REQUIRE(y.shape() == std::vector<int>{3, 3});
  CHECK(y.data()[2] == 1.0f);
  CHECK(y.data()[3] == 2.0f);
}

TEST_CASE("Concat gradient check", "[layer][concat][gradient]") {
  for (int axis : {0, 1, 2}) {
    auto p = concat_param();
    p.mutable_concat_param()->set_axis(axis);
    auto layer = create_layer(p);
    Tensor a({2, 3, 2}), b({2, 3, 2}), c({2, 3, 2}), y;
    test::fill_uniform(a, -1, 1, 1);
    test::fill_uniform(b, -1, 1, 2);
    test::fill_uniform(c, -1, 1, 3);
    std::mt19937_64 rng(1);
    layer->setup({&a, &b, &c}, {&y}, rng);
    test::check_layer_gradient(*layer, {&a, &b, &c}, {&y}, Context{});
  }
}

TEST_CASE("Concat rejects mismatched bottoms and bad axes", "[layer][concat]") {
  std::mt19937_64 rng(1);
  Tensor a({2, 3, 4}), b({2, 3, 5}), y;
  REQUIRE_THROWS_AS(create_layer(concat_param())->setup({&a, &b}, {&y}, rng), dsg::Error);
  auto p = concat_param();
  p.mutable_concat_param()->set_axis(3);
  REQUIRE_THROWS_AS(create_layer(p)->setup({&a, &a}, {&y}, rng), dsg::Error);
  p.mutable_concat_param()->set_axis(1);
  p.mutable_concat_param()->set_concat_dim(1);
  REQUIRE_THROWS_AS(create_layer(p)->setup({&a, &a}, {&y}, rng), dsg::Error);
  Tensor flat({2, 12});
  REQUIRE_THROWS_AS(create_layer(concat_param())->setup({&a, &flat}, {&y}, rng), dsg::Error);
}
