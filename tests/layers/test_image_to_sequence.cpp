#include <catch2/catch.hpp>

#include "datasets/synthetic_data.hpp"
#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter rows_param() {
  LayerParameter p;
  p.set_name("rows");
  p.set_type("ImageToSequence");
  return p;
}

TEST_CASE("ImageToSequence reads each image row by row, channel-major features", "[layer][image_to_sequence]") {
  const int N = 2, C = 2, H = 3, W = 4;
  auto layer = create_layer(rows_param());
  Tensor img({N, C, H, W}), x, cont;
  for (int i = 0; i < img.count(); ++i) img.mutable_data()[i] = float(i);
  std::mt19937_64 rng(1);
  layer->setup({&img}, {&x, &cont}, rng);
  layer->forward({&img}, {&x, &cont}, Context{});
  REQUIRE(x.shape() == std::vector<int>{H, N, C * W});
  REQUIRE(cont.shape() == std::vector<int>{H, N});
  for (int t = 0; t < H; ++t)
    for (int n = 0; n < N; ++n) {
      CHECK(cont.data()[t * N + n] == (t == 0 ? 0.0f : 1.0f));
      for (int c = 0; c < C; ++c)
        for (int w = 0; w < W; ++w) {
          INFO("t " << t << " n " << n << " c " << c << " w " << w);
          CHECK(x.data()[(t * N + n) * C * W + c * W + w] == img.data()[((n * C + c) * H + t) * W + w]);
        }
    }

  // Backward is the inverse permutation.
  for (int i = 0; i < x.count(); ++i) x.mutable_diff()[i] = x.data()[i] + 0.5f;
  layer->backward({&x, &cont}, {true}, {&img}, Context{});
  for (int i = 0; i < img.count(); ++i) CHECK(img.diff()[i] == img.data()[i] + 0.5f);
}

TEST_CASE("ImageToSequence follows the batch size", "[layer][image_to_sequence]") {
  auto layer = create_layer(rows_param());
  Tensor img({3, 1, 5, 2}), x, cont;
  std::mt19937_64 rng(1);
  layer->setup({&img}, {&x, &cont}, rng);
  img.reshape({7, 1, 5, 2});
  layer->forward({&img}, {&x, &cont}, Context{});
  CHECK(x.shape() == std::vector<int>{5, 7, 2});
  CHECK(cont.shape() == std::vector<int>{5, 7});
  CHECK(cont.data()[6] == 0.0f);
  CHECK(cont.data()[7] == 1.0f);
}

TEST_CASE("ImageToSequence gradient check", "[layer][image_to_sequence][gradient]") {
  auto layer = create_layer(rows_param());
  Tensor img({2, 3, 4, 5}), x, cont;
  test::fill_uniform(img, -1, 1, 4);
  std::mt19937_64 rng(1);
  layer->setup({&img}, {&x, &cont}, rng);
  test::check_layer_gradient(*layer, {&img}, {&x, &cont}, Context{});
}

TEST_CASE("ImageToSequence rejects bottoms that are not images", "[layer][image_to_sequence][errors]") {
  std::mt19937_64 rng(1);
  Tensor flat({4, 784}), seq({28, 4, 28}), x, cont;
  const std::string text = test::error_text([&] { create_layer(rows_param())->setup({&flat}, {&x, &cont}, rng); });
  CHECK(text.find("[N, C, H, W]") != std::string::npos);
  CHECK(text.find("(4,784)") != std::string::npos);
  REQUIRE_THROWS_AS(create_layer(rows_param())->setup({&seq}, {&x, &cont}, rng), dsg::Error);
  Tensor img({2, 1, 3, 3});
  REQUIRE_THROWS_AS(create_layer(rows_param())->setup({&img}, {&x}, rng), dsg::Error);  // needs x and cont
}
