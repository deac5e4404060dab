#include <catch2/catch.hpp>

#include "runtime/error.hpp"
#include "runtime/parallel.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter scale_param(bool bias) {
  LayerParameter p;
  p.set_name("scale");
  p.set_type("Scale");
  p.mutable_scale_param()->set_bias_term(bias);
  return p;
}

TEST_CASE("Scale default fillers give identity, forward scales and shifts per channel", "[layer][scale]") {
  auto layer = create_layer(scale_param(true));
  Tensor x({2, 3, 2}), y;
  for (int i = 0; i < 12; ++i) x.mutable_data()[i] = float(i);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  REQUIRE(layer->blobs().size() == 2);
  REQUIRE(layer->blobs()[0]->shape() == std::vector<int>{3});
  REQUIRE(layer->blobs()[1]->shape() == std::vector<int>{3});
  layer->forward({&x}, {&y}, Context{});
  for (int i = 0; i < 12; ++i) CHECK(y.data()[i] == x.data()[i]);

  const float s[] = {2, -1, 0.5f}, b[] = {1, 2, 3};
  for (int c = 0; c < 3; ++c) {
    layer->blobs()[0]->mutable_data()[c] = s[c];
    layer->blobs()[1]->mutable_data()[c] = b[c];
  }
  layer->forward({&x}, {&y}, Context{});
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int k = 0; k < 2; ++k) {
        const int i = (n * 3 + c) * 2 + k;
        CHECK(y.data()[i] == Approx(float(i) * s[c] + b[c]));
      }

  // Parameter diffs accumulate: ds[c] = sum dy * x, db[c] = sum dy; twice gives double.
  for (int i = 0; i < 12; ++i) y.mutable_diff()[i] = 1.0f;
  for (auto& p : layer->blobs()) p->zero_diff();
  layer->backward({&y}, {true}, {&x}, Context{});
  layer->backward({&y}, {true}, {&x}, Context{});
  CHECK(layer->blobs()[0]->diff()[0] == Approx(2 * (0 + 1 + 6 + 7)));
  CHECK(layer->blobs()[1]->diff()[2] == Approx(2 * 4));
  CHECK(x.diff()[2] == Approx(-1.0f));
}

TEST_CASE("Scale with num_axes -1 learns one value per (C, H) position", "[layer][scale]") {
  auto p = scale_param(false);
  p.mutable_scale_param()->set_num_axes(-1);
  p.mutable_scale_param()->mutable_filler()->set_type("constant");
  p.mutable_scale_param()->mutable_filler()->set_value(3.0f);
  auto layer = create_layer(p);
  Tensor x({2, 3, 2}), y;
  for (int i = 0; i < 12; ++i) x.mutable_data()[i] = float(i);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  REQUIRE(layer->blobs().size() == 1);
  REQUIRE(layer->blobs()[0]->shape() == std::vector<int>{3, 2});
  layer->blobs()[0]->mutable_data()[5] = -2.0f;
  layer->forward({&x}, {&y}, Context{});
  CHECK(y.data()[4] == Approx(12.0f));
  CHECK(y.data()[11] == Approx(-22.0f));
}

TEST_CASE("Scale gradient check", "[layer][scale][gradient]") {
  for (bool bias : {false, true}) {
    auto p = scale_param(bias);
    p.mutable_scale_param()->mutable_filler()->set_type("uniform");
    p.mutable_scale_param()->mutable_filler()->set_min(-1.0f);
    p.mutable_scale_param()->mutable_filler()->set_max(1.0f);
    p.mutable_scale_param()->mutable_bias_filler()->set_type("uniform");
    auto layer = create_layer(p);
    Tensor x({2, 3, 3, 2}), y;
    test::fill_uniform(x, -1, 1, 3);
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
  }
}

TEST_CASE("Scale in place matches out of place", "[layer][scale]") {
  auto p = scale_param(true);
  p.mutable_scale_param()->mutable_filler()->set_type("uniform");
  auto layer = create_layer(p);
  Tensor x({2, 3, 4}), y, z({2, 3, 4});
  test::fill_uniform(x, -1, 1, 5);
  z.copy_from(x);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  for (int i = 0; i < 24; ++i) y.mutable_diff()[i] = float(i % 3) - 1;
  for (auto& b : layer->blobs()) b->zero_diff();
  layer->backward({&y}, {true}, {&x}, Context{});
  const float ds0 = layer->blobs()[0]->diff()[0], db1 = layer->blobs()[1]->diff()[1];
  layer->forward({&z}, {&z}, Context{});
  for (int i = 0; i < 24; ++i) z.mutable_diff()[i] = float(i % 3) - 1;
  for (auto& b : layer->blobs()) b->zero_diff();
  layer->backward({&z}, {true}, {&z}, Context{});
  CHECK(layer->blobs()[0]->diff()[0] == Approx(ds0));
  CHECK(layer->blobs()[1]->diff()[1] == Approx(db1));
  for (int i = 0; i < 24; ++i) {
    CHECK(z.data()[i] == Approx(y.data()[i]));
    CHECK(z.diff()[i] == Approx(x.diff()[i]));
  }
}

TEST_CASE("Scale gives the same result with several threads", "[layer][scale]") {
  auto p = scale_param(true);
  p.mutable_scale_param()->mutable_filler()->set_type("uniform");
  p.mutable_scale_param()->mutable_bias_filler()->set_type("uniform");
  Tensor x({16, 32, 16, 16}), y1, y4;
  test::fill_uniform(x, -1, 1, 5);
  std::vector<float> ds1;
  const int threads = num_threads();
  for (int t : {1, 4}) {
    set_num_threads(t);
    auto layer = create_layer(p);
    Tensor& y = t == 1 ? y1 : y4;
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    layer->forward({&x}, {&y}, Context{});
    for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = float(i % 5) - 2;
    layer->blobs()[0]->zero_diff();
    layer->backward({&y}, {true}, {&x}, Context{});
    if (t == 1) ds1.assign(layer->blobs()[0]->diff(), layer->blobs()[0]->diff() + 32);
    else
      for (int c = 0; c < 32; ++c) CHECK(layer->blobs()[0]->diff()[c] == ds1[c]);
  }
  set_num_threads(threads);
  int differ = 0;
  for (int64_t i = 0; i < x.count(); ++i) differ += y1.data()[i] != y4.data()[i];
  CHECK(differ == 0);
}

TEST_CASE("Scale rejects bad configurations and mismatched bottoms", "[layer][scale]") {
  std::mt19937_64 rng(1);
  Tensor x({2, 3, 4}), s({3}), y;
  REQUIRE_THROWS_AS(create_layer(scale_param(false))->setup({&x, &s}, {&y}, rng), dsg::Error);
  auto p = scale_param(false);
  p.mutable_scale_param()->set_axis(5);
  REQUIRE_THROWS_AS(create_layer(p)->setup({&x}, {&y}, rng), dsg::Error);
  p.mutable_scale_param()->set_axis(1);
  p.mutable_scale_param()->set_num_axes(3);
  REQUIRE_THROWS_AS(create_layer(p)->setup({&x}, {&y}, rng), dsg::Error);
  auto layer = create_layer(scale_param(false));
  layer->setup({&x}, {&y}, rng);
  Tensor wrong({2, 5, 4});
  REQUIRE_THROWS_AS(layer->forward({&wrong}, {&y}, Context{}), dsg::Error);
}
