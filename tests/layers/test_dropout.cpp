#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/error.hpp"
#include "runtime/parallel.hpp"
#include "runtime/rng.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static LayerParameter dropout_param(float ratio, const char* name = "drop") {
  LayerParameter p;
  p.set_name(name);
  p.set_type("Dropout");
  p.mutable_dropout_param()->set_dropout_ratio(ratio);
  return p;
}

static Context train_ctx(uint64_t seed, int64_t iteration) {
  Context ctx;
  ctx.phase = TRAIN;
  ctx.seed = seed;
  ctx.iteration = iteration;
  return ctx;
}

TEST_CASE("Dropout forward keeps exactly the counter-selected elements, scaled", "[layer][dropout]") {
  const float p = 0.4f;
  auto layer = create_layer(dropout_param(p));
  Tensor x({2, 5}), y;
  for (int i = 0; i < 10; ++i) x.mutable_data()[i] = float(i) - 4.5f;
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  const Context ctx = train_ctx(42, 3);
  layer->forward({&x}, {&y}, ctx);
  const uint64_t stream = counter_stream(3, name_key("drop"));
  REQUIRE(layer->key() == name_key("drop"));
  for (int i = 0; i < 10; ++i) {
    float u[4];
    counter_uniform4(42, stream, uint64_t(i / 4), u);
    const bool keep = u[i % 4] >= p;
    CHECK(y.data()[i] == Approx(keep ? x.data()[i] / (1 - p) : 0.0f));
  }
}

TEST_CASE("Dropout realised drop rate is within 2 standard errors", "[layer][dropout]") {
  for (float p : {0.3f, 0.5f, 0.7f}) {
    auto layer = create_layer(dropout_param(p));
    const int n = 200000;
    Tensor x({n}), y;
    x.set_data(1.0f);
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    layer->forward({&x}, {&y}, train_ctx(2024, 11));
    int dropped = 0, badly_scaled = 0;
    for (int i = 0; i < n; ++i) {
      if (y.data()[i] == 0.0f) ++dropped;
      else badly_scaled += y.data()[i] != Approx(1.0f / (1.0f - p));
    }
    CHECK(badly_scaled == 0);
    const double rate = double(dropped) / n;
    const double se = std::sqrt(p * (1.0 - p) / n);
    INFO("p " << p << " realised " << rate << " se " << se);
    CHECK(std::fabs(rate - p) <= 2 * se);
  }
}

TEST_CASE("Dropout mask is deterministic per seed and iteration", "[layer][dropout]") {
  auto layer = create_layer(dropout_param(0.5f));
  Tensor x({1000}), a, b, c;
  x.set_data(1.0f);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&a}, rng);
  layer->forward({&x}, {&a}, train_ctx(7, 5));
  layer->forward({&x}, {&b}, train_ctx(7, 5));
  layer->forward({&x}, {&c}, train_ctx(7, 6));
  int same = 0, differ = 0;
  for (int i = 0; i < 1000; ++i) {
    same += a.data()[i] == b.data()[i];
    differ += a.data()[i] != c.data()[i];
  }
  CHECK(same == 1000);
  CHECK(differ > 300);  // independent masks disagree on about half the elements

  // Another layer name gives another stream.
  auto other = create_layer(dropout_param(0.5f, "drop2"));
  Tensor d;
  other->setup({&x}, {&d}, rng);
  other->forward({&x}, {&d}, train_ctx(7, 5));
  int differ_layer = 0;
  for (int i = 0; i < 1000; ++i) differ_layer += a.data()[i] != d.data()[i];
  CHECK(differ_layer > 300);
}

TEST_CASE("Dropout mask does not depend on the thread count", "[layer][dropout]") {
  auto layer = create_layer(dropout_param(0.5f));
  Tensor x({1 << 18}), a, b;
  x.set_data(1.0f);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&a}, rng);
  const int threads = num_threads();
  set_num_threads(1);
  layer->forward({&x}, {&a}, train_ctx(3, 8));
  set_num_threads(4);
  layer->forward({&x}, {&b}, train_ctx(3, 8));
  set_num_threads(threads);
  int differ = 0;
  for (int64_t i = 0; i < x.count(); ++i) differ += a.data()[i] != b.data()[i];
  CHECK(differ == 0);
}

TEST_CASE("Dropout is the identity in TEST phase", "[layer][dropout]") {
  auto layer = create_layer(dropout_param(0.5f));
  Tensor x({3, 7}), y;
  test::fill_uniform(x, -1, 1, 9);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  Context ctx;
  ctx.phase = TEST;
  layer->forward({&x}, {&y}, ctx);
  for (int i = 0; i < 21; ++i) CHECK(y.data()[i] == x.data()[i]);
  for (int i = 0; i < 21; ++i) y.mutable_diff()[i] = float(i);
  layer->backward({&y}, {true}, {&x}, ctx);
  for (int i = 0; i < 21; ++i) CHECK(x.diff()[i] == float(i));
}

TEST_CASE("Dropout in place matches out of place", "[layer][dropout]") {
  auto layer = create_layer(dropout_param(0.3f));
  Tensor x({100}), y, z({100});
  test::fill_uniform(x, -1, 1, 4);
  z.copy_from(x);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  const Context ctx = train_ctx(1, 1);
  layer->forward({&x}, {&y}, ctx);
  for (int i = 0; i < 100; ++i) y.mutable_diff()[i] = 1.0f;
  layer->backward({&y}, {true}, {&x}, ctx);
  layer->forward({&z}, {&z}, ctx);
  for (int i = 0; i < 100; ++i) z.mutable_diff()[i] = 1.0f;
  layer->backward({&z}, {true}, {&z}, ctx);
  for (int i = 0; i < 100; ++i) {
    CHECK(z.data()[i] == y.data()[i]);
    CHECK(z.diff()[i] == x.diff()[i]);
  }
}

TEST_CASE("Dropout gradient check", "[layer][dropout][gradient]") {
  auto layer = create_layer(dropout_param(0.5f));
  Tensor x({2, 3, 4, 5}), y;
  test::fill_uniform(x, -1, 1, 3);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  test::check_layer_gradient(*layer, {&x}, {&y}, train_ctx(99, 4));
}

TEST_CASE("Dropout rejects a ratio outside [0, 1)", "[layer][dropout]") {
  for (float ratio : {1.0f, -0.1f, 1.5f}) {
    auto layer = create_layer(dropout_param(ratio));
    Tensor x({4}), y;
    std::mt19937_64 rng(1);
    REQUIRE_THROWS_AS(layer->setup({&x}, {&y}, rng), dsg::Error);
  }
}
