#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter embed_param(int num_output, int input_dim, bool bias = true) {
  LayerParameter p;
  p.set_name("embed");
  p.set_type("Embed");
  auto* e = p.mutable_embed_param();
  if (num_output >= 0) e->set_num_output(num_output);
  if (input_dim >= 0) e->set_input_dim(input_dim);
  e->set_bias_term(bias);
  e->mutable_weight_filler()->set_type("uniform");
  e->mutable_weight_filler()->set_min(-1);
  e->mutable_weight_filler()->set_max(1);
  e->mutable_bias_filler()->set_type("uniform");
  e->mutable_bias_filler()->set_min(-1);
  e->mutable_bias_filler()->set_max(1);
  return p;
}

static void set_indices(Tensor& x, const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i) x.mutable_data()[i] = v[i];
}

TEST_CASE("Embed forward looks up rows and adds the bias", "[layer][embed]") {
  for (bool bias : {true, false}) {
    auto layer = create_layer(embed_param(3, 5, bias));
    Tensor x({2, 3}), y;
    set_indices(x, {0, 4, 2, 2, 1, 0});
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    REQUIRE(layer->blobs().size() == (bias ? 2u : 1u));
    REQUIRE(layer->blobs()[0]->shape() == std::vector<int>{5, 3});
    if (bias) REQUIRE(layer->blobs()[1]->shape() == std::vector<int>{3});
    for (int i = 0; i < 15; ++i) layer->blobs()[0]->mutable_data()[i] = float(i);
    if (bias) {
      const float b[] = {0.5f, -1, 2};
      std::copy(b, b + 3, layer->blobs()[1]->mutable_data());
    }
    layer->forward({&x}, {&y}, Context{});
    REQUIRE(y.shape() == std::vector<int>{2, 3, 3});
    const float b[] = {0.5f, -1, 2};
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < 3; ++j)
        CHECK(y.data()[i * 3 + j] == x.data()[i] * 3 + j + (bias ? b[j] : 0.0f));
  }
  // Any bottom shape, 1-D included.
  auto layer = create_layer(embed_param(4, 7));
  Tensor x({5}), y;
  set_indices(x, {6, 0, 3, 3, 1});
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  REQUIRE(y.shape() == std::vector<int>{5, 4});
}

TEST_CASE("Embed accumulates the gradient of repeated indices", "[layer][embed][gradient]") {
  auto layer = create_layer(embed_param(3, 5));
  Tensor x({2, 2}), y;
  set_indices(x, {1, 3, 1, 1});
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  CHECK_FALSE(layer->allow_backward_to(0));
  layer->forward({&x}, {&y}, Context{});
  for (int i = 0; i < 12; ++i) y.mutable_diff()[i] = float(i + 1);
  for (auto& b : layer->blobs()) b->zero_diff();
  layer->backward({&y}, {false}, {&x}, Context{});
  const float* dw = layer->blobs()[0]->diff();
  const float* db = layer->blobs()[1]->diff();
  for (int j = 0; j < 3; ++j) {
    CHECK(dw[0 * 3 + j] == 0.0f);
    CHECK(dw[1 * 3 + j] == float((1 + j) + (7 + j) + (10 + j)));  // rows 0, 2, 3 of dY
    CHECK(dw[2 * 3 + j] == 0.0f);
    CHECK(dw[3 * 3 + j] == float(4 + j));                          // row 1 of dY
    CHECK(dw[4 * 3 + j] == 0.0f);
    CHECK(db[j] == float((1 + j) + (4 + j) + (7 + j) + (10 + j)));
  }
  layer->backward({&y}, {false}, {&x}, Context{});  // parameter diffs accumulate
  CHECK(dw[3 * 3 + 1] == 2.0f * 5);
  CHECK(db[0] == 2.0f * 22);
  REQUIRE_THROWS_WITH(layer->backward({&y}, {true}, {&x}, Context{}), Catch::Contains("index input"));

  test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
}

TEST_CASE("Embed rejects bad indices and configurations", "[layer][embed][errors]") {
  std::mt19937_64 rng(1);
  Tensor x({4}), y;
  set_indices(x, {0, 1, 2, 3});
  auto layer = create_layer(embed_param(3, 5));
  layer->setup({&x}, {&y}, rng);
  for (float bad : {5.0f, -1.0f, 2.5f, 1e9f, std::numeric_limits<float>::quiet_NaN()}) {
    INFO("index " << bad);
    x.mutable_data()[2] = bad;
    REQUIRE_THROWS_WITH(layer->forward({&x}, {&y}, Context{}),
                        Catch::Contains("layer 'embed' (Embed)") && Catch::Contains("input_dim = 5") &&
                            Catch::Contains("position 2"));
  }
  x.mutable_data()[2] = 2.5f;
  REQUIRE_THROWS_WITH(layer->forward({&x}, {&y}, Context{}), Catch::Contains("index 2.5 "));
  REQUIRE_THROWS_WITH(create_layer(embed_param(0, 5))->setup({&x}, {&y}, rng), Catch::Contains("num_output"));
  REQUIRE_THROWS_WITH(create_layer(embed_param(3, -1))->setup({&x}, {&y}, rng), Catch::Contains("input_dim"));
}
