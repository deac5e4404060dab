#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

namespace {

struct PoolConfig {
  PoolingParameter::PoolMethod pool = PoolingParameter::MAX;
  int kh = 2, kw = 2, sh = 2, sw = 2, ph = 0, pw = 0;
  bool floor = false;
  bool global = false;
};

LayerParameter pool_param(const PoolConfig& k) {
  LayerParameter p;
  p.set_name("pool");
  p.set_type("Pooling");
  auto* pp = p.mutable_pooling_param();
  pp->set_pool(k.pool);
  if (k.global) {
    pp->set_global_pooling(true);
  } else if (k.kh == k.kw) {
    pp->set_kernel_size(k.kh);
  } else {
    pp->set_kernel_h(k.kh);
    pp->set_kernel_w(k.kw);
  }
  if (k.sh == k.sw) {
    pp->set_stride(k.sh);
  } else {
    pp->set_stride_h(k.sh);
    pp->set_stride_w(k.sw);
  }
  if (k.ph == k.pw) {
    pp->set_pad(k.ph);
  } else {
    pp->set_pad_h(k.ph);
    pp->set_pad_w(k.pw);
  }
  if (k.floor) pp->set_round_mode(PoolingParameter::FLOOR);
  return p;
}

// Distinct values (a scaled random permutation) so MAX has no ties.
void fill_distinct(Tensor& t, uint64_t seed) {
  std::vector<int> order(t.count());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
  for (int64_t i = 0; i < t.count(); ++i) t.mutable_data()[i] = 0.05f * float(order[i]) - 1.0f;
}

// Oracle: visits each kernel tap; AVE divides by the taps inside the padded input.
std::vector<float> pool_ref(const PoolConfig& k, const Tensor& x, int ho, int wo) {
  const int n = x.shape(0), c = x.shape(1), h = x.shape(2), w = x.shape(3);
  const int kh = k.global ? h : k.kh, kw = k.global ? w : k.kw;
  std::vector<float> y;
  for (int p = 0; p < n * c; ++p)
    for (int oh = 0; oh < ho; ++oh)
      for (int ow = 0; ow < wo; ++ow) {
        double best = -1e30, sum = 0;
        int padded_taps = 0;
        for (int i = 0; i < kh; ++i)
          for (int j = 0; j < kw; ++j) {
            const int ih = oh * k.sh - k.ph + i, iw = ow * k.sw - k.pw + j;
            if (ih < -k.ph || ih >= h + k.ph || iw < -k.pw || iw >= w + k.pw) continue;
            ++padded_taps;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
            const float v = x.data()[(int64_t(p) * h + ih) * w + iw];
            best = std::max(best, double(v));
            sum += v;
          }
        y.push_back(float(k.pool == PoolingParameter::MAX ? best : sum / padded_taps));
      }
  return y;
}

std::unique_ptr<Layer> run(const PoolConfig& k, Tensor& x, Tensor& y) {
  auto layer = create_layer(pool_param(k));
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  return layer;
}

}  // namespace

TEST_CASE("Pooling MAX and AVE 2x2 stride 2 by hand", "[layer][pooling]") {
  Tensor x({1, 1, 4, 4}), y;
  const float in[] = {1, 2, 5, 3,  //
                      4, 0, 1, 1,  //
                      -1, -2, 8, 9,  //
                      -3, -4, 7, 6};
  std::copy(in, in + 16, x.mutable_data());
  PoolConfig k;
  run(k, x, y);
  REQUIRE(y.shape() == std::vector<int>{1, 1, 2, 2});
  CHECK(y.data()[0] == 4);
  CHECK(y.data()[1] == 5);
  CHECK(y.data()[2] == -1);
  CHECK(y.data()[3] == 9);
  k.pool = PoolingParameter::AVE;
  run(k, x, y);
  CHECK(y.data()[0] == Approx(7 / 4.0));
  CHECK(y.data()[1] == Approx(10 / 4.0));
  CHECK(y.data()[2] == Approx(-10 / 4.0));
  CHECK(y.data()[3] == Approx(30 / 4.0));
}

TEST_CASE("Pooling round modes and Caffe's padded average", "[layer][pooling]") {
  Tensor x({1, 1, 5, 5}), y;
  for (int i = 0; i < 25; ++i) x.mutable_data()[i] = float(i);
  PoolConfig k;
  run(k, x, y);  // CEIL: (5 - 2) / 2 -> 2, + 1 = 3
  REQUIRE(y.shape() == std::vector<int>{1, 1, 3, 3});
  CHECK(y.data()[2] == 9);    // window rows 0-1, col 4
  CHECK(y.data()[8] == 24);   // window row 4, col 4
  k.pool = PoolingParameter::AVE;
  run(k, x, y);
  CHECK(y.data()[8] == 24);   // a window of one element divides by one
  CHECK(y.data()[2] == Approx((4 + 9) / 2.0));
  k.floor = true;
  run(k, x, y);
  REQUIRE(y.shape() == std::vector<int>{1, 1, 2, 2});

  // 3x3 kernel, pad 1 on a 3x3 input of ones: padding counts in the divisor.
  Tensor ones({1, 1, 3, 3});
  ones.set_data(1.0f);
  PoolConfig a;
  a.pool = PoolingParameter::AVE, a.kh = a.kw = 3, a.sh = a.sw = 1, a.ph = a.pw = 1;
  run(a, ones, y);
  REQUIRE(y.shape() == std::vector<int>{1, 1, 3, 3});
  CHECK(y.data()[0] == Approx(4 / 9.0));
  CHECK(y.data()[1] == Approx(6 / 9.0));
  CHECK(y.data()[4] == Approx(1.0));
}

TEST_CASE("Pooling matches the naive reference", "[layer][pooling]") {
  std::vector<PoolConfig> configs;
  for (auto method : {PoolingParameter::MAX, PoolingParameter::AVE}) {
    PoolConfig k;
    k.pool = method;
    configs.push_back(k);
    k.kh = k.kw = 3, k.sh = k.sw = 2, k.ph = k.pw = 1;
    configs.push_back(k);
    k.floor = true;
    configs.push_back(k);
    k = PoolConfig{}, k.pool = method, k.kh = 3, k.kw = 2, k.sh = 1, k.sw = 2, k.ph = 2, k.pw = 1;
    configs.push_back(k);
    k = PoolConfig{}, k.pool = method, k.kh = k.kw = 3, k.sh = k.sw = 3, k.ph = k.pw = 2;  // last window clipped
    configs.push_back(k);
    k = PoolConfig{}, k.pool = method, k.global = true, k.sh = k.sw = 1;
    configs.push_back(k);
  }
  for (const auto& k : configs) {
    INFO("pool " << k.pool << " k " << k.kh << "x" << k.kw << " s " << k.sh << "x" << k.sw << " p " << k.ph << "x"
                 << k.pw << " floor " << k.floor << " global " << k.global);
    Tensor x({2, 3, 7, 6}), y;
    test::fill_uniform(x, -1, 1, 3);
    run(k, x, y);
    auto size = [&](int in, int kk, int p, int s) {
      if (k.global) return 1;
      double q = double(in + 2 * p - kk) / s;
      int o = int(k.floor ? std::floor(q) : std::ceil(q)) + 1;
      if (p > 0 && (o - 1) * s >= in + p) --o;
      return o;
    };
    const int ho = size(7, k.kh, k.ph, k.sh), wo = size(6, k.kw, k.pw, k.sw);
    REQUIRE(y.shape() == std::vector<int>{2, 3, ho, wo});
    auto ref = pool_ref(k, x, ho, wo);
    for (size_t i = 0; i < ref.size(); ++i) REQUIRE(y.data()[i] == Approx(ref[i]).margin(1e-6));
  }
}

TEST_CASE("Pooling MAX second top holds the argmax", "[layer][pooling]") {
  Tensor x({1, 2, 4, 4}), y, mask;
  fill_distinct(x, 7);
  auto layer = create_layer(pool_param(PoolConfig{}));
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y, &mask}, rng);
  layer->forward({&x}, {&y, &mask}, Context{});
  REQUIRE(mask.shape() == y.shape());
  for (int p = 0; p < 2; ++p)
    for (int i = 0; i < 4; ++i) {
      const int idx = int(mask.data()[p * 4 + i]);
      REQUIRE(idx >= 0);
      REQUIRE(idx < 16);
      CHECK(x.data()[p * 16 + idx] == y.data()[p * 4 + i]);
    }
}

TEST_CASE("Pooling MAX backward routes the gradient to the argmax", "[layer][pooling]") {
  Tensor x({1, 1, 4, 4}), y;
  fill_distinct(x, 3);
  auto layer = run(PoolConfig{}, x, y);
  for (int i = 0; i < 4; ++i) y.mutable_diff()[i] = float(i + 1);
  layer->backward({&y}, {true}, {&x}, Context{});
  double total = 0;
  int nonzero = 0;
  for (int i = 0; i < 16; ++i) {
    total += x.diff()[i];
    if (x.diff()[i] != 0) {
      ++nonzero;
      const int oh = (i / 4) / 2, ow = (i % 4) / 2;
      CHECK(x.data()[i] == y.data()[oh * 2 + ow]);
    }
  }
  CHECK(nonzero == 4);
  CHECK(total == Approx(10));
}

TEST_CASE("Pooling rejects bad configurations", "[layer][pooling]") {
  std::mt19937_64 rng(1);
  Tensor x({2, 3, 6, 6}), y, y2;
  auto expect_throw = [&](const LayerParameter& p) {
    auto layer = create_layer(p);
    REQUIRE_THROWS_AS(layer->setup({&x}, {&y}, rng), dsg::Error);
  };
  SECTION("STOCHASTIC") {
    PoolConfig k;
    k.pool = PoolingParameter::STOCHASTIC;
    auto layer = create_layer(pool_param(k));
    REQUIRE_THROWS_WITH(layer->setup({&x}, {&y}, rng), Catch::Contains("not supported"));
  }
  SECTION("missing kernel") {
    LayerParameter p = pool_param(PoolConfig{});
    p.mutable_pooling_param()->clear_kernel_size();
    expect_throw(p);
  }
  SECTION("kernel_size with kernel_h") {
    LayerParameter p = pool_param(PoolConfig{});
    p.mutable_pooling_param()->set_kernel_h(2);
    p.mutable_pooling_param()->set_kernel_w(2);
    expect_throw(p);
  }
  SECTION("global pooling with a kernel") {
    LayerParameter p = pool_param(PoolConfig{});
    p.mutable_pooling_param()->set_global_pooling(true);
    expect_throw(p);
  }
  SECTION("pad not smaller than the kernel") {
    PoolConfig k;
    k.ph = k.pw = 2;
    expect_throw(pool_param(k));
  }
  SECTION("kernel larger than the padded input") {
    PoolConfig k;
    k.kh = k.kw = 9, k.ph = k.pw = 1;
    expect_throw(pool_param(k));
  }
  SECTION("zero stride") {
    PoolConfig k;
    k.sh = k.sw = 0;
    expect_throw(pool_param(k));
  }
  SECTION("not 4-D") {
    Tensor x3({2, 6, 6});
    auto layer = create_layer(pool_param(PoolConfig{}));
    REQUIRE_THROWS_AS(layer->setup({&x3}, {&y}, rng), dsg::Error);
  }
  SECTION("AVE with two tops") {
    PoolConfig k;
    k.pool = PoolingParameter::AVE;
    auto layer = create_layer(pool_param(k));
    REQUIRE_THROWS_AS(layer->setup({&x}, {&y, &y2}, rng), dsg::Error);
  }
}

TEST_CASE("Pooling gradient check", "[layer][pooling][gradient]") {
  std::vector<PoolConfig> configs;
  PoolConfig k;
  configs.push_back(k);  // MAX 2x2 s2
  k.kh = k.kw = 3, k.ph = k.pw = 1;
  configs.push_back(k);  // MAX 3x3 s2 p1 (overlapping, CEIL)
  k.pool = PoolingParameter::AVE;
  configs.push_back(k);  // AVE 3x3 s2 p1
  k = PoolConfig{}, k.pool = PoolingParameter::AVE, k.kh = 2, k.kw = 3, k.sh = 1, k.sw = 2, k.floor = true;
  configs.push_back(k);
  k = PoolConfig{}, k.pool = PoolingParameter::AVE, k.global = true, k.sh = k.sw = 1;
  configs.push_back(k);
  k.pool = PoolingParameter::MAX;
  configs.push_back(k);
  for (const auto& config : configs) {
    Tensor x({2, 3, 5, 5}), y;
    fill_distinct(x, 13);
    auto layer = create_layer(pool_param(config));
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
  }
}
