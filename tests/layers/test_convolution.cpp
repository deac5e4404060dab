#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "runtime/error.hpp"
#include "runtime/parallel.hpp"
#include "support/gradient_checker.hpp"
#include "support/tolerance.hpp"

using namespace dsg;

namespace {

struct ConvConfig {
  int n = 2, c = 3, h = 6, w = 6, m = 4;
  int kh = 3, kw = 3, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1, group = 1;
  bool bias = true;
  bool hw_fields = false;  // use kernel_h/kernel_w, stride_h/w, pad_h/w instead of repeated fields

  int ho() const { return (h + 2 * ph - (dh * (kh - 1) + 1)) / sh + 1; }
  int wo() const { return (w + 2 * pw - (dw * (kw - 1) + 1)) / sw + 1; }
};

LayerParameter conv_param(const ConvConfig& k) {
  LayerParameter p;
  p.set_name("conv");
  p.set_type("Convolution");
  auto* cp = p.mutable_convolution_param();
  cp->set_num_output(k.m);
  cp->set_bias_term(k.bias);
  cp->set_group(k.group);
  if (k.hw_fields) {
    cp->set_kernel_h(k.kh);
    cp->set_kernel_w(k.kw);
    cp->set_stride_h(k.sh);
    cp->set_stride_w(k.sw);
    cp->set_pad_h(k.ph);
    cp->set_pad_w(k.pw);
  } else {
    cp->add_kernel_size(k.kh);
    if (k.kw != k.kh) cp->add_kernel_size(k.kw);
    cp->add_stride(k.sh);
    if (k.sw != k.sh) cp->add_stride(k.sw);
    cp->add_pad(k.ph);
    if (k.pw != k.ph) cp->add_pad(k.pw);
  }
  cp->add_dilation(k.dh);
  if (k.dw != k.dh) cp->add_dilation(k.dw);
  cp->mutable_weight_filler()->set_type("uniform");
  cp->mutable_weight_filler()->set_min(-1);
  cp->mutable_weight_filler()->set_max(1);
  cp->mutable_bias_filler()->set_type("uniform");
  cp->mutable_bias_filler()->set_min(-1);
  cp->mutable_bias_filler()->set_max(1);
  return p;
}

// Naive 7-loop convolution and its backward (the oracle).
template <typename Visit>
void for_each_tap(const ConvConfig& k, Visit visit) {
  const int cg = k.c / k.group, mg = k.m / k.group;
  for (int n = 0; n < k.n; ++n)
    for (int m = 0; m < k.m; ++m)
      for (int oh = 0; oh < k.ho(); ++oh)
        for (int ow = 0; ow < k.wo(); ++ow)
          for (int ci = 0; ci < cg; ++ci)
            for (int i = 0; i < k.kh; ++i)
              for (int j = 0; j < k.kw; ++j) {
                const int ih = oh * k.sh - k.ph + i * k.dh, iw = ow * k.sw - k.pw + j * k.dw;
                if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                const int c = (m / mg) * cg + ci;
                const int64_t xi = ((int64_t(n) * k.c + c) * k.h + ih) * k.w + iw;
                const int64_t wi = ((int64_t(m) * cg + ci) * k.kh + i) * k.kw + j;
                const int64_t yi = ((int64_t(n) * k.m + m) * k.ho() + oh) * k.wo() + ow;
                visit(xi, wi, yi);
              }
}

// The oracle's sums in double, with each sum's tolerance (test/support/tolerance.hpp).
struct Oracle {
  std::vector<double> value;
  std::vector<test::ReductionBound> bound;
  explicit Oracle(size_t n, double start = 0.0) : value(n, start), bound(n) {
    if (start != 0.0)
      for (auto& b : bound) b.add(start);  // accumulating onto `start` is one more term
  }
  void add(int64_t i, double term) {
    value[size_t(i)] += term;
    bound[size_t(i)].add(term);
  }
  // Compares got[i] with value[i] within bound[i]; returns the number of mismatches.
  int compare(const char* what, const float* got) const {
    std::vector<double> tol(bound.size());
    for (size_t i = 0; i < tol.size(); ++i) tol[i] = bound[i].tolerance();
    return test::count_outside(what, int64_t(value.size()), got, value, tol);
  }
};

Oracle conv_ref(const ConvConfig& k, const float* x, const float* w, const float* b) {
  Oracle y(size_t(k.n) * k.m * k.ho() * k.wo());
  for_each_tap(k, [&](int64_t xi, int64_t wi, int64_t yi) { y.add(yi, double(x[xi]) * w[wi]); });
  if (b)
    for (size_t i = 0; i < y.value.size(); ++i) y.add(int64_t(i), b[(i / (size_t(k.ho()) * k.wo())) % k.m]);
  return y;
}

// Runs forward + backward (dY = a fixed pattern) and compares y, dX, dW, db with the oracle.
void check_against_reference(const ConvConfig& k) {
  INFO("n" << k.n << " c" << k.c << " " << k.h << "x" << k.w << " m" << k.m << " k" << k.kh << "x" << k.kw
           << " s" << k.sh << "x" << k.sw << " p" << k.ph << "x" << k.pw << " d" << k.dh << "x" << k.dw
           << " g" << k.group << " bias " << k.bias);
  auto layer = create_layer(conv_param(k));
  Tensor x({k.n, k.c, k.h, k.w}), y;
  test::fill_uniform(x, -1, 1, 17);
  std::mt19937_64 rng(5);
  layer->setup({&x}, {&y}, rng);
  REQUIRE(layer->blobs()[0]->shape() == std::vector<int>{k.m, k.c / k.group, k.kh, k.kw});
  layer->forward({&x}, {&y}, Context{});
  REQUIRE(y.shape() == std::vector<int>{k.n, k.m, k.ho(), k.wo()});
  const float* w = layer->blobs()[0]->data();
  const float* b = k.bias ? layer->blobs()[1]->data() : nullptr;
  CHECK(conv_ref(k, x.data(), w, b).compare("y", y.data()) == 0);

  // Backward with dY = a fixed pattern; params accumulate onto a nonzero start value.
  for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = float((i * 7) % 11) / 11.0f - 0.5f;
  for (auto& blob : layer->blobs())
    for (int64_t i = 0; i < blob->count(); ++i) blob->mutable_diff()[i] = 1.0f;
  x.zero_diff();
  layer->backward({&y}, {true}, {&x}, Context{});
  Oracle dx(size_t(x.count())), dw(size_t(layer->blobs()[0]->count()), 1.0), db(size_t(k.m), 1.0);
  const float* dy = y.diff();
  for_each_tap(k, [&](int64_t xi, int64_t wi, int64_t yi) {
    dx.add(xi, double(dy[yi]) * w[wi]);
    dw.add(wi, double(dy[yi]) * x.data()[xi]);
  });
  for (int64_t i = 0; i < y.count(); ++i) db.add((i / (k.ho() * k.wo())) % k.m, dy[i]);
  CHECK(dx.compare("dx", x.diff()) == 0);
  CHECK(dw.compare("dw", layer->blobs()[0]->diff()) == 0);
  if (k.bias) CHECK(db.compare("db", layer->blobs()[1]->diff()) == 0);
}

}  // namespace

TEST_CASE("Convolution forward matches a hand-computed example", "[layer][convolution]") {
  ConvConfig k;
  k.n = 1, k.c = 1, k.h = 3, k.w = 3, k.m = 1, k.kh = 2, k.kw = 2;
  auto layer = create_layer(conv_param(k));
  Tensor x({1, 1, 3, 3}), y;
  for (int i = 0; i < 9; ++i) x.mutable_data()[i] = float(i + 1);  // 1..9
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  const float w[] = {1, 0, 0, -1};  // x[i][j] - x[i+1][j+1]
  std::copy(w, w + 4, layer->blobs()[0]->mutable_data());
  layer->blobs()[1]->mutable_data()[0] = 0.5f;
  layer->forward({&x}, {&y}, Context{});
  REQUIRE(y.shape() == std::vector<int>{1, 1, 2, 2});
  for (int i = 0; i < 4; ++i) CHECK(y.data()[i] == Approx(-4 + 0.5f));
}

TEST_CASE("Convolution matches the naive reference", "[layer][convolution]") {
  std::vector<ConvConfig> configs;
  ConvConfig base;
  configs.push_back(base);
  ConvConfig k = base;
  k.sh = k.sw = 2, k.h = 7, k.w = 7;  // stride 2
  configs.push_back(k);
  k = base, k.ph = k.pw = 1;  // pad 1
  configs.push_back(k);
  k = base, k.dh = k.dw = 2, k.h = 7, k.w = 8, k.ph = 1, k.pw = 2;  // dilation 2 with padding
  configs.push_back(k);
  k = base, k.c = 4, k.m = 6, k.group = 2, k.ph = k.pw = 1;  // group 2
  configs.push_back(k);
  k = base, k.c = 4, k.m = 4, k.group = 4, k.bias = false;  // depthwise, no bias
  configs.push_back(k);
  k = base, k.kh = 2, k.kw = 3, k.sh = 1, k.sw = 2, k.ph = 0, k.pw = 1, k.h = 5, k.w = 9, k.hw_fields = true;
  configs.push_back(k);  // non-square kernel/stride/pad via _h/_w fields
  k = base, k.kh = 3, k.kw = 1, k.dh = 2, k.dw = 1, k.sh = 2, k.sw = 1, k.ph = 2, k.pw = 0;
  configs.push_back(k);  // non-square via repeated fields, dilation only along h
  k = base, k.n = 5, k.kh = k.kw = 1;  // 1x1, batch 5
  configs.push_back(k);
  k = base, k.n = 3, k.c = 2, k.h = 28, k.w = 28, k.m = 5, k.kh = k.kw = 5;  // LeNet-like
  configs.push_back(k);
  k = base, k.n = 1, k.sh = k.sw = 3, k.ph = k.pw = 2, k.h = 4, k.w = 5;  // batch 1 (direct GEMM path)
  configs.push_back(k);
  for (const auto& config : configs) check_against_reference(config);
}

TEST_CASE("Convolution splits a large batch into column chunks", "[layer][convolution]") {
  // The column buffer holds 2^18 floats per thread: 72 x 1024 columns per image give chunks of
  // several images with a remainder; 144 x 4096 per image give one image per chunk.
  ConvConfig k;
  k.n = 8, k.c = 8, k.h = 32, k.w = 32, k.m = 3, k.ph = k.pw = 1;
  check_against_reference(k);
  k.n = 3, k.c = 16, k.h = 64, k.w = 64, k.m = 2;
  check_against_reference(k);
}

TEST_CASE("Convolution with two bottoms shares its parameters", "[layer][convolution]") {
  ConvConfig k;
  auto layer = create_layer(conv_param(k));
  Tensor a({k.n, k.c, k.h, k.w}), b({k.n, k.c, k.h, k.w}), ya, yb;
  test::fill_uniform(a, -1, 1, 1);
  test::fill_uniform(b, -1, 1, 2);
  std::mt19937_64 rng(1);
  layer->setup({&a, &b}, {&ya, &yb}, rng);
  layer->forward({&a, &b}, {&ya, &yb}, Context{});
  auto ra = conv_ref(k, a.data(), layer->blobs()[0]->data(), layer->blobs()[1]->data());
  auto rb = conv_ref(k, b.data(), layer->blobs()[0]->data(), layer->blobs()[1]->data());
  REQUIRE(ra.compare("ya", ya.data()) == 0);
  REQUIRE(rb.compare("yb", yb.data()) == 0);
  test::check_layer_gradient(*layer, {&a, &b}, {&ya, &yb}, Context{});
}

TEST_CASE("Convolution computes only the requested gradients", "[layer][convolution]") {
  ConvConfig k;
  auto layer = create_layer(conv_param(k));
  Tensor x({k.n, k.c, k.h, k.w}), y;
  test::fill_uniform(x, -1, 1, 3);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  test::fill_uniform(y, -1, 1, 4);
  std::copy(y.data(), y.data() + y.count(), y.mutable_diff());
  for (int64_t i = 0; i < x.count(); ++i) x.mutable_diff()[i] = 7.0f;
  layer->set_param_propagate_down(0, false);
  for (auto& blob : layer->blobs()) blob->zero_diff();
  layer->backward({&y}, {false}, {&x}, Context{});
  for (int64_t i = 0; i < x.count(); ++i) REQUIRE(x.diff()[i] == 7.0f);
  for (int64_t i = 0; i < layer->blobs()[0]->count(); ++i) REQUIRE(layer->blobs()[0]->diff()[i] == 0.0f);
  double db = 0;
  test::ReductionBound bound;
  for (int64_t i = 0; i < y.count(); ++i)
    if ((i / (k.ho() * k.wo())) % k.m == 0) db += y.diff()[i], bound.add(y.diff()[i]);
  CHECK(std::fabs(layer->blobs()[1]->diff()[0] - db) <= bound.tolerance());
}

TEST_CASE("Convolution rejects bad configurations", "[layer][convolution]") {
  std::mt19937_64 rng(1);
  auto expect_throw = [&](const LayerParameter& p, std::vector<int> shape) {
    Tensor x(shape), y;
    auto layer = create_layer(p);
    REQUIRE_THROWS_AS(layer->setup({&x}, {&y}, rng), dsg::Error);
  };
  ConvConfig k;
  const std::vector<int> shape{k.n, k.c, k.h, k.w};
  SECTION("group does not divide the channels") {
    ConvConfig g = k;
    g.group = 2;  // 3 channels
    expect_throw(conv_param(g), shape);
  }
  SECTION("group does not divide num_output") {
    ConvConfig g = k;
    g.c = 4, g.m = 3, g.group = 2;
    expect_throw(conv_param(g), {g.n, g.c, g.h, g.w});
  }
  SECTION("kernel larger than the padded input") {
    ConvConfig g = k;
    g.kh = g.kw = 9, g.ph = g.pw = 1;
    expect_throw(conv_param(g), shape);
    g.kh = g.kw = 3, g.dh = g.dw = 4, g.ph = g.pw = 0;  // extent 9
    expect_throw(conv_param(g), shape);
  }
  SECTION("missing num_output") {
    LayerParameter p = conv_param(k);
    p.mutable_convolution_param()->clear_num_output();
    expect_throw(p, shape);
  }
  SECTION("missing kernel size") {
    LayerParameter p = conv_param(k);
    p.mutable_convolution_param()->clear_kernel_size();
    expect_throw(p, shape);
  }
  SECTION("kernel_size together with kernel_h") {
    LayerParameter p = conv_param(k);
    p.mutable_convolution_param()->set_kernel_h(3);
    p.mutable_convolution_param()->set_kernel_w(3);
    expect_throw(p, shape);
  }
  SECTION("three kernel sizes") {
    LayerParameter p = conv_param(k);
    p.mutable_convolution_param()->add_kernel_size(3);
    p.mutable_convolution_param()->add_kernel_size(3);
    expect_throw(p, shape);
  }
  SECTION("zero stride") {
    LayerParameter p = conv_param(k);
    p.mutable_convolution_param()->set_stride(0, 0);
    expect_throw(p, shape);
  }
  SECTION("not 2-D") {
    expect_throw(conv_param(k), {2, 3, 4, 6, 6});
    expect_throw(conv_param(k), {3, 6, 6});
    LayerParameter p = conv_param(k);
    p.mutable_convolution_param()->set_axis(2);
    expect_throw(p, shape);
  }
  SECTION("channel count changes after setup") {
    Tensor x(shape), y, x2({k.n, k.c + 1, k.h, k.w});
    auto layer = create_layer(conv_param(k));
    layer->setup({&x}, {&y}, rng);
    REQUIRE_THROWS_AS(layer->forward({&x2}, {&y}, Context{}), dsg::Error);
  }
  SECTION("error names the layer") {
    ConvConfig g = k;
    g.group = 2;
    Tensor x(shape), y;
    auto layer = create_layer(conv_param(g));
    REQUIRE_THROWS_WITH(layer->setup({&x}, {&y}, rng), Catch::Contains("layer 'conv' (Convolution)"));
  }
}

TEST_CASE("Convolution gradient check", "[layer][convolution][gradient]") {
  std::vector<ConvConfig> configs;
  ConvConfig k;
  k.n = 2, k.c = 4, k.h = 5, k.w = 5, k.m = 4, k.sh = k.sw = 2, k.ph = k.pw = 1, k.group = 2;
  configs.push_back(k);
  k = ConvConfig{};
  k.n = 2, k.c = 2, k.h = 6, k.w = 5, k.m = 3, k.kh = 2, k.kw = 3, k.dh = k.dw = 2, k.pw = 1, k.hw_fields = false;
  configs.push_back(k);
  for (const auto& config : configs) {
    auto layer = create_layer(conv_param(config));
    Tensor x({config.n, config.c, config.h, config.w}), y;
    test::fill_uniform(x, -1, 1, 31);
    std::mt19937_64 rng(4);
    layer->setup({&x}, {&y}, rng);
    test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
  }
}

// LeNet-5's two convolutions at batch 64 (forward + backward), for timing: run with
// `dsg_tests "Convolution LeNet-5 timing"`.
TEST_CASE("Convolution LeNet-5 timing", "[.bench]") {
  set_num_threads(1);
  ConvConfig c1;
  c1.n = 64, c1.c = 1, c1.h = c1.w = 28, c1.m = 20, c1.kh = c1.kw = 5;
  ConvConfig c2;
  c2.n = 64, c2.c = 20, c2.h = c2.w = 12, c2.m = 50, c2.kh = c2.kw = 5;
  auto l1 = create_layer(conv_param(c1)), l2 = create_layer(conv_param(c2));
  Tensor x1({64, 1, 28, 28}), y1, x2({64, 20, 12, 12}), y2;
  test::fill_uniform(x1, -1, 1, 1);
  test::fill_uniform(x2, -1, 1, 2);
  std::mt19937_64 rng(1);
  l1->setup({&x1}, {&y1}, rng);
  l2->setup({&x2}, {&y2}, rng);
  auto step = [&](Layer& l, Tensor& x, Tensor& y, bool dx) {
    l.forward({&x}, {&y}, Context{});
    l.backward({&y}, {dx}, {&x}, Context{});
  };
  step(*l1, x1, y1, false), step(*l2, x2, y2, true);
  test::fill_uniform(y1, -1, 1, 3), test::fill_uniform(y2, -1, 1, 4);
  std::copy(y1.data(), y1.data() + y1.count(), y1.mutable_diff());
  std::copy(y2.data(), y2.data() + y2.count(), y2.mutable_diff());
  for (int i = 0; i < 5; ++i) step(*l1, x1, y1, false), step(*l2, x2, y2, true);
  // Thread CPU time as well as wall time: with one thread it is robust to a busy machine.
  auto cpu_ms = [] {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
  };
  const int iters = 100;
  std::vector<double> w1, w2, c1t, c2t;
  for (int i = 0; i < iters; ++i) {
    auto a = std::chrono::steady_clock::now();
    double ca = cpu_ms();
    step(*l1, x1, y1, false);
    auto b = std::chrono::steady_clock::now();
    double cb = cpu_ms();
    step(*l2, x2, y2, true);
    auto c = std::chrono::steady_clock::now();
    double cc = cpu_ms();
    w1.push_back(std::chrono::duration<double, std::milli>(b - a).count());
    w2.push_back(std::chrono::duration<double, std::milli>(c - b).count());
    c1t.push_back(cb - ca);
    c2t.push_back(cc - cb);
  }
  for (auto* v : {&w1, &w2, &c1t, &c2t}) std::sort(v->begin(), v->end());
  std::printf("LeNet-5 conv fwd+bwd, batch 64, 1 thread, median wall (cpu) ms: conv1 %.3f (%.3f), "
              "conv2 %.3f (%.3f), total %.3f (%.3f)\n",
              w1[iters / 2], c1t[iters / 2], w2[iters / 2], c2t[iters / 2], w1[iters / 2] + w2[iters / 2],
              c1t[iters / 2] + c2t[iters / 2]);
}

// Structured sparsity: with active_outputs / active_inputs the layer computes a function whose
// pruned outputs are 0 and that ignores the skipped inputs; the numerical gradient of that
// function must match backward (whose dW rows / columns for skipped entries stay zero).
TEST_CASE("Convolution with active outputs and inputs passes the gradient check", "[layer][convolution][gradient][structured]") {
  struct Case {
    ConvConfig k;
    std::vector<int> outs, ins;
  };
  std::vector<Case> cases;
  ConvConfig k;
  k.n = 2, k.c = 4, k.h = 5, k.w = 5, k.m = 6, k.ph = k.pw = 1;
  cases.push_back({k, {0, 2, 5}, {}});
  cases.push_back({k, {}, {1, 3}});
  cases.push_back({k, {1, 2, 4}, {0, 3}});
  k.group = 2;  // groups 0: outputs 0..2, inputs 0..1; 1: outputs 3..5, inputs 2..3
  cases.push_back({k, {0, 4, 5}, {1, 2, 3}});
  cases.push_back({k, {3, 5}, {0}});  // group 0 computes nothing, group 1 has no kept input
  for (const Case& c : cases) {
    INFO("group " << c.k.group << " outs " << c.outs.size() << " ins " << c.ins.size());
    auto layer = create_layer(conv_param(c.k));
    Tensor x({c.k.n, c.k.c, c.k.h, c.k.w}), y;
    test::fill_uniform(x, -1, 1, 41);
    std::mt19937_64 rng(6);
    layer->setup({&x}, {&y}, rng);
    layer->set_active_outputs(c.outs);
    layer->set_active_inputs(c.ins);
    test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
    for (int n = 0; n < c.k.n; ++n)
      for (int m = 0; m < c.k.m; ++m) {
        if (c.outs.empty() || std::find(c.outs.begin(), c.outs.end(), m) != c.outs.end()) continue;
        for (int i = 0; i < c.k.ho() * c.k.wo(); ++i)
          REQUIRE(y.data()[(n * c.k.m + m) * c.k.ho() * c.k.wo() + i] == 0.0f);
      }
  }
}

TEST_CASE("Convolution rejects malformed active channel lists", "[layer][convolution][structured]") {
  ConvConfig k;
  auto layer = create_layer(conv_param(k));
  Tensor x({k.n, k.c, k.h, k.w}), y;
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->set_active_outputs({2, 1});
  REQUIRE_THROWS_WITH(layer->forward({&x}, {&y}, Context{}),
                      Catch::Contains("layer 'conv'") && Catch::Contains("strictly increasing"));
  layer->set_active_outputs({});
  layer->set_active_inputs({0, 3});
  REQUIRE_THROWS_WITH(layer->forward({&x}, {&y}, Context{}), Catch::Contains("active_inputs index 3 is out of range"));
}

// LeNet-5's conv2 at batch 64 (forward + backward with dX), dense vs half of its filters kept
// (active_outputs), and conv2 with half of its input channels kept: run with
// `dsg_tests "Convolution filter-pruned LeNet-5 timing"` (DSG_BENCH_THREADS=T for T threads).
TEST_CASE("Convolution filter-pruned LeNet-5 timing", "[.bench]") {
  const char* threads_env = std::getenv("DSG_BENCH_THREADS");  // default 1
  const int threads = threads_env ? std::max(1, std::atoi(threads_env)) : 1;
  set_num_threads(threads);
  ConvConfig c2;
  c2.n = 64, c2.c = 20, c2.h = c2.w = 12, c2.m = 50, c2.kh = c2.kw = 5;
  auto layer = create_layer(conv_param(c2));
  Tensor x({64, 20, 12, 12}), y;
  test::fill_uniform(x, -1, 1, 2);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  std::vector<int> half_out, half_in;
  for (int m = 0; m < 50; m += 2) half_out.push_back(m);
  for (int c = 0; c < 20; c += 2) half_in.push_back(c);
  auto time_ms = [&](const std::vector<int>& outs, const std::vector<int>& ins) {
    layer->set_active_outputs(outs);
    layer->set_active_inputs(ins);
    layer->forward({&x}, {&y}, Context{});
    test::fill_uniform(y, -1, 1, 4);
    std::copy(y.data(), y.data() + y.count(), y.mutable_diff());
    std::vector<double> t;
    for (int i = 0; i < 60; ++i) {
      auto a = std::chrono::steady_clock::now();
      layer->forward({&x}, {&y}, Context{});
      layer->backward({&y}, {true}, {&x}, Context{});
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  double dense = time_ms({}, {}), outs = time_ms(half_out, {}), ins = time_ms({}, half_in), both = time_ms(half_out, half_in);
  std::printf("LeNet-5 conv2 fwd+bwd, batch 64, %d thread(s), median ms: dense %.3f, 25/50 filters %.3f (%.2fx), "
              "10/20 input channels %.3f (%.2fx), both %.3f (%.2fx)\n",
              threads, dense, outs, dense / outs, ins, dense / ins, both, dense / both);
}

// Caffe's forms of the window geometry (layers/conv_geometry.cpp), read directly.
#include "layers/conv_geometry.hpp"
#include "runtime/config.hpp"

TEST_CASE("read_conv_geometry accepts Caffe's forms and refuses conflicting ones", "[layer][convolution]") {
  auto read = [](const std::string& text) {
    ConvolutionParameter p;
    parse_text_proto(text, "conv", &p);
    return read_conv_geometry(p, "layer 'c': ");
  };
  const ConvGeometry square = read("kernel_size: 3 stride: 2 pad: 1");
  CHECK((square.kh == 3 && square.kw == 3 && square.sh == 2 && square.sw == 2 && square.ph == 1 && square.pw == 1));
  CHECK((square.dh == 1 && square.dw == 1));
  const ConvGeometry pairs = read("kernel_size: 3 kernel_size: 5 dilation: 2 dilation: 1");
  CHECK((pairs.kh == 3 && pairs.kw == 5 && pairs.dh == 2 && pairs.dw == 1 && pairs.sh == 1 && pairs.ph == 0));
  const ConvGeometry named = read("kernel_h: 2 kernel_w: 4 stride_h: 1 stride_w: 3 pad_h: 0 pad_w: 2");
  CHECK((named.kh == 2 && named.kw == 4 && named.sh == 1 && named.sw == 3 && named.ph == 0 && named.pw == 2));
  CHECK_THROWS_WITH(read("kernel_size: 3 kernel_h: 3 kernel_w: 3"), Catch::Contains("layer 'c': give either kernel_size"));
  CHECK_THROWS_WITH(read("kernel_h: 3"), Catch::Contains("must be given together"));
  CHECK_THROWS_WITH(read("stride: 1"), Catch::Contains("kernel_size (or kernel_h and kernel_w) is required"));
  CHECK_THROWS_WITH(read("kernel_size: 1 kernel_size: 2 kernel_size: 3"), Catch::Contains("once or twice"));
  CHECK_THROWS_WITH(read("kernel_size: 3 stride: 0"), Catch::Contains("must be positive"));
}
