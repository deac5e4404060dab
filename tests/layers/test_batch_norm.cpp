#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/error.hpp"
#include "runtime/parallel.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter bn_param() {
  LayerParameter p;
  p.set_name("bn");
  p.set_type("BatchNorm");
  return p;
}

static Context phase_ctx(Phase phase) {
  Context ctx;
  ctx.phase = phase;
  return ctx;
}

// (N=2, C=2, H=1, W=2): channel 0 holds {1, 3, 5, 7} (mean 4, variance 5), channel 1 holds
// {10, 20, 30, 40} (mean 25, variance 125).
static void fill_example(Tensor& x) {
  const float v[] = {1, 3, 10, 20, 5, 7, 30, 40};
  x.reshape({2, 2, 1, 2});
  for (int i = 0; i < 8; ++i) x.mutable_data()[i] = v[i];
}

TEST_CASE("BatchNorm TRAIN forward normalises with batch statistics and updates running sums",
          "[layer][batch_norm]") {
  auto layer = create_layer(bn_param());
  Tensor x, y;
  fill_example(x);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  REQUIRE(layer->blobs().size() == 3);
  for (int i = 0; i < 3; ++i) CHECK_FALSE(layer->param_propagate_down(i));
  layer->forward({&x}, {&y}, phase_ctx(TRAIN));
  const float eps = 1e-5f;
  const float mean[] = {4, 25}, var[] = {5, 125};
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 2; ++c)
      for (int s = 0; s < 2; ++s) {
        const int i = (n * 2 + c) * 2 + s;
        CHECK(y.data()[i] == Approx((x.data()[i] - mean[c]) / std::sqrt(var[c] + eps)));
      }
  // factor = 0 * 0.999 + 1; sums = 0 * 0.999 + batch value; variance unbiased (m = 4).
  CHECK(layer->blobs()[2]->data()[0] == Approx(1.0f));
  CHECK(layer->blobs()[0]->data()[0] == Approx(4.0f));
  CHECK(layer->blobs()[0]->data()[1] == Approx(25.0f));
  CHECK(layer->blobs()[1]->data()[0] == Approx(5.0f * 4 / 3));
  CHECK(layer->blobs()[1]->data()[1] == Approx(125.0f * 4 / 3));

  // A second batch (x + 2: means 6 and 27, same variances) follows Caffe's moving average.
  Tensor x2;
  fill_example(x2);
  for (int i = 0; i < 8; ++i) x2.mutable_data()[i] += 2;
  layer->forward({&x2}, {&y}, phase_ctx(TRAIN));
  CHECK(layer->blobs()[2]->data()[0] == Approx(1.999f));
  CHECK(layer->blobs()[0]->data()[0] == Approx(4.0f * 0.999f + 6.0f));
  CHECK(layer->blobs()[1]->data()[1] == Approx(125.0f * 4 / 3 * 1.999f));
}

TEST_CASE("BatchNorm TEST phase uses the running statistics", "[layer][batch_norm]") {
  auto layer = create_layer(bn_param());
  Tensor x, y;
  fill_example(x);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, phase_ctx(TRAIN));
  Tensor x2;
  fill_example(x2);
  for (int i = 0; i < 8; ++i) x2.mutable_data()[i] += 2;
  layer->forward({&x2}, {&y}, phase_ctx(TRAIN));
  // Global statistics: sums / factor.
  const float factor = 1.999f;
  const float mean[] = {(4 * 0.999f + 6) / factor, (25 * 0.999f + 27) / factor};
  const float var[] = {5.0f * 4 / 3, 125.0f * 4 / 3};
  Tensor t({3, 2});
  const float v[] = {0, 1, 4, 25, -3, 50};
  for (int i = 0; i < 6; ++i) t.mutable_data()[i] = v[i];
  const float before0 = layer->blobs()[0]->data()[0];
  layer->forward({&t}, {&y}, phase_ctx(TEST));  // 2-D (N, C) input
  REQUIRE(y.shape() == std::vector<int>{3, 2});
  for (int i = 0; i < 6; ++i) CHECK(y.data()[i] == Approx((v[i] - mean[i % 2]) / std::sqrt(var[i % 2] + 1e-5f)));
  CHECK(layer->blobs()[0]->data()[0] == before0);  // TEST does not update statistics
  CHECK(layer->blobs()[2]->data()[0] == Approx(factor));

  // use_global_stats: false forces batch statistics even in TEST.
  auto p = bn_param();
  p.mutable_batch_norm_param()->set_use_global_stats(false);
  auto batch = create_layer(p);
  batch->setup({&x}, {&y}, rng);
  batch->forward({&x}, {&y}, phase_ctx(TEST));
  CHECK(y.data()[0] == Approx((1 - 4) / std::sqrt(5 + 1e-5f)));
}

TEST_CASE("BatchNorm with explicit use_global_stats true before any update outputs x / sqrt(eps)",
          "[layer][batch_norm]") {
  auto p = bn_param();
  p.mutable_batch_norm_param()->set_use_global_stats(true);
  p.mutable_batch_norm_param()->set_eps(1.0f);
  auto layer = create_layer(p);
  Tensor x, y;
  fill_example(x);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, phase_ctx(TRAIN));
  for (int i = 0; i < 8; ++i) CHECK(y.data()[i] == Approx(x.data()[i]));
  CHECK(layer->blobs()[2]->data()[0] == 0.0f);
}

TEST_CASE("BatchNorm gradient check (batch statistics, TRAIN)", "[layer][batch_norm][gradient]") {
  auto p = bn_param();
  p.mutable_batch_norm_param()->set_use_global_stats(false);
  auto layer = create_layer(p);
  Tensor x({3, 2, 2, 3}), y;
  test::fill_uniform(x, -2, 2, 3);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  test::GradientCheckOptions opt;
  opt.step = 1e-2f;
  test::check_layer_gradient(*layer, {&x}, {&y}, phase_ctx(TRAIN), opt);
}

TEST_CASE("BatchNorm gradient check (2-D, TRAIN) and with global statistics (TEST)",
          "[layer][batch_norm][gradient]") {
  auto layer = create_layer(bn_param());
  Tensor x({5, 3}), y;
  test::fill_uniform(x, -1, 1, 8);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  test::check_layer_gradient(*layer, {&x}, {&y}, phase_ctx(TRAIN));
  test::check_layer_gradient(*layer, {&x}, {&y}, phase_ctx(TEST));
}

TEST_CASE("BatchNorm in place matches out of place", "[layer][batch_norm]") {
  auto layer = create_layer(bn_param());
  Tensor x({4, 3, 2, 2}), y, z;
  test::fill_uniform(x, -1, 1, 12);
  z.reshape_like(x);
  z.copy_from(x);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, phase_ctx(TRAIN));
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = float(i % 7) - 3;
  layer->backward({&y}, {true}, {&x}, phase_ctx(TRAIN));
  layer->forward({&z}, {&z}, phase_ctx(TRAIN));
  for (int64_t i = 0; i < z.count(); ++i) z.mutable_diff()[i] = float(i % 7) - 3;
  layer->backward({&z}, {true}, {&z}, phase_ctx(TRAIN));
  for (int64_t i = 0; i < z.count(); ++i) {
    CHECK(z.data()[i] == Approx(y.data()[i]));
    CHECK(z.diff()[i] == Approx(x.diff()[i]).margin(1e-6));
  }
}

TEST_CASE("BatchNorm gives the same result with several threads", "[layer][batch_norm]") {
  Tensor x({16, 8, 32, 32}), y1, y4;
  test::fill_uniform(x, -1, 3, 21);
  std::vector<float> dx1;
  const int threads = num_threads();
  for (int t : {1, 4}) {
    set_num_threads(t);
    auto layer = create_layer(bn_param());
    Tensor& y = t == 1 ? y1 : y4;
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    layer->forward({&x}, {&y}, phase_ctx(TRAIN));
    for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = float(i % 11) - 5;
    layer->backward({&y}, {true}, {&x}, phase_ctx(TRAIN));
    if (t == 1) dx1.assign(x.diff(), x.diff() + x.count());
  }
  set_num_threads(threads);
  int differ = 0;
  for (int64_t i = 0; i < x.count(); ++i) differ += y1.data()[i] != y4.data()[i] || dx1[i] != x.diff()[i];
  CHECK(differ == 0);
}

TEST_CASE("BatchNorm rejects 1-D bottoms and channel changes", "[layer][batch_norm]") {
  auto layer = create_layer(bn_param());
  Tensor v({6}), y;
  std::mt19937_64 rng(1);
  REQUIRE_THROWS_AS(layer->setup({&v}, {&y}, rng), dsg::Error);
  auto ok = create_layer(bn_param());
  Tensor x({2, 3, 2, 2}), other({2, 4, 2, 2});
  ok->setup({&x}, {&y}, rng);
  REQUIRE_THROWS_AS(ok->forward({&other}, {&y}, phase_ctx(TRAIN)), dsg::Error);
}
