#include <catch2/catch.hpp>

#include "runtime/error.hpp"
#include "support/gradient_checker.hpp"
#include "support/tolerance.hpp"

using namespace dsg;

static LayerParameter ip_param(int num_output, bool bias = true, bool transpose = false, int axis = 1) {
  LayerParameter p;
  p.set_name("ip");
  p.set_type("InnerProduct");
  auto* ip = p.mutable_inner_product_param();
  if (num_output >= 0) ip->set_num_output(num_output);
  ip->set_bias_term(bias);
  ip->set_transpose(transpose);
  ip->set_axis(axis);
  ip->mutable_weight_filler()->set_type("uniform");
  ip->mutable_weight_filler()->set_min(-1);
  ip->mutable_weight_filler()->set_max(1);
  ip->mutable_bias_filler()->set_type("uniform");
  ip->mutable_bias_filler()->set_min(-1);
  ip->mutable_bias_filler()->set_max(1);
  return p;
}

TEST_CASE("InnerProduct forward matches a hand-computed product", "[layer][inner_product]") {
  auto layer = create_layer(ip_param(2));
  Tensor x({2, 3}), y;
  const float xin[] = {1, 2, 3, -1, 0, 2};
  std::copy(xin, xin + 6, x.mutable_data());
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  REQUIRE(layer->blobs().size() == 2);
  REQUIRE(layer->blobs()[0]->shape() == std::vector<int>{2, 3});
  REQUIRE(layer->blobs()[1]->shape() == std::vector<int>{2});
  const float w[] = {1, 0, -1, 0.5f, 2, 1};
  const float b[] = {0.25f, -1};
  std::copy(w, w + 6, layer->blobs()[0]->mutable_data());
  std::copy(b, b + 2, layer->blobs()[1]->mutable_data());
  layer->forward({&x}, {&y}, Context{});
  REQUIRE(y.shape() == std::vector<int>{2, 2});
  CHECK(y.data()[0] == Approx(1 - 3 + 0.25f));
  CHECK(y.data()[1] == Approx(0.5f + 4 + 3 - 1));
  CHECK(y.data()[2] == Approx(-1 - 2 + 0.25f));
  CHECK(y.data()[3] == Approx(-0.5f + 0 + 2 - 1));
}

TEST_CASE("InnerProduct flattens from axis and honours transpose", "[layer][inner_product]") {
  Tensor x({2, 3, 2, 2});
  test::fill_uniform(x, -1, 1, 5);
  for (bool transpose : {false, true}) {
    for (bool bias : {false, true}) {
      auto layer = create_layer(ip_param(4, bias, transpose));
      Tensor y;
      std::mt19937_64 rng(3);
      layer->setup({&x}, {&y}, rng);
      const std::vector<int> wshape = transpose ? std::vector<int>{12, 4} : std::vector<int>{4, 12};
      REQUIRE(layer->blobs()[0]->shape() == wshape);
      REQUIRE(layer->blobs().size() == (bias ? 2u : 1u));
      layer->forward({&x}, {&y}, Context{});
      REQUIRE(y.shape() == std::vector<int>{2, 4});
      const float* w = layer->blobs()[0]->data();
      for (int n = 0; n < 2; ++n)
        for (int o = 0; o < 4; ++o) {
          double s = bias ? layer->blobs()[1]->data()[o] : 0.0;
          test::ReductionBound bound;
          bound.add(s);
          for (int k = 0; k < 12; ++k) {
            const double term = double(x.data()[n * 12 + k]) * (transpose ? w[k * 4 + o] : w[o * 12 + k]);
            s += term;
            bound.add(term);
          }
          CHECK(std::fabs(y.data()[n * 4 + o] - s) <= bound.tolerance());
        }
    }
  }
  // axis 2: [2, 3, 4] -> [2, 3, 5]
  auto layer = create_layer(ip_param(5, true, false, 2));
  Tensor x3({2, 3, 4}), y;
  std::mt19937_64 rng(3);
  layer->setup({&x3}, {&y}, rng);
  REQUIRE(y.shape() == std::vector<int>{2, 3, 5});
  REQUIRE(layer->blobs()[0]->shape() == std::vector<int>{5, 4});
}

TEST_CASE("InnerProduct accumulates parameter diffs and skips what is not asked for", "[layer][inner_product]") {
  auto layer = create_layer(ip_param(3));
  Tensor x({4, 5}), y;
  test::fill_uniform(x, -1, 1, 9);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, Context{});
  test::fill_uniform(y, -1, 1, 10);
  for (int i = 0; i < y.count(); ++i) y.mutable_diff()[i] = y.data()[i];
  for (auto& b : layer->blobs()) b->zero_diff();
  layer->backward({&y}, {true}, {&x}, Context{});
  std::vector<float> dw(layer->blobs()[0]->diff(), layer->blobs()[0]->diff() + 15);
  std::vector<float> db(layer->blobs()[1]->diff(), layer->blobs()[1]->diff() + 3);
  layer->backward({&y}, {true}, {&x}, Context{});
  // The second pass is dW = dY^T X + dW (K = 4 rows plus the accumulated value), db likewise.
  const auto tol_dw = test::gemm_tolerance(true, false, 3, 5, 4, 1.0f, y.diff(), x.data(), 1.0f, dw.data());
  for (int i = 0; i < 15; ++i) CHECK(std::fabs(layer->blobs()[0]->diff()[i] - 2 * dw[i]) <= tol_dw[size_t(i)]);
  // db = column sums of dY
  for (int o = 0; o < 3; ++o) {
    float s = 0;
    test::ReductionBound bound;
    for (int n = 0; n < 4; ++n) s += y.diff()[n * 3 + o], bound.add(y.diff()[n * 3 + o]);
    CHECK(std::fabs(db[o] - s) <= bound.tolerance());
    bound.add(db[o]);
    CHECK(std::fabs(layer->blobs()[1]->diff()[o] - 2 * db[o]) <= bound.tolerance());
  }
  // No param diffs, no bottom diff when not requested.
  layer->set_param_propagate_down(0, false);
  layer->set_param_propagate_down(1, false);
  x.zero_diff();
  for (auto& b : layer->blobs()) b->zero_diff();
  layer->backward({&y}, {false}, {&x}, Context{});
  for (int i = 0; i < x.count(); ++i) CHECK(x.diff()[i] == 0.0f);
  for (int i = 0; i < 15; ++i) CHECK(layer->blobs()[0]->diff()[i] == 0.0f);
}

TEST_CASE("InnerProduct rejects bad configurations", "[layer][inner_product]") {
  Tensor x({2, 6}), y;
  std::mt19937_64 rng(1);
  SECTION("missing num_output") {
    auto layer = create_layer(ip_param(-1));
    REQUIRE_THROWS_AS(layer->setup({&x}, {&y}, rng), dsg::Error);
  }
  SECTION("num_output zero") {
    auto layer = create_layer(ip_param(0));
    REQUIRE_THROWS_AS(layer->setup({&x}, {&y}, rng), dsg::Error);
  }
  SECTION("axis out of range") {
    auto layer = create_layer(ip_param(3, true, false, 4));
    REQUIRE_THROWS_AS(layer->setup({&x}, {&y}, rng), dsg::Error);
  }
  SECTION("input size changes after setup") {
    auto layer = create_layer(ip_param(3));
    layer->setup({&x}, {&y}, rng);
    Tensor x2({2, 7});
    REQUIRE_THROWS_AS(layer->forward({&x2}, {&y}, Context{}), dsg::Error);
  }
}

TEST_CASE("InnerProduct gradient check", "[layer][inner_product][gradient]") {
  for (bool transpose : {false, true}) {
    auto layer = create_layer(ip_param(4, true, transpose));
    Tensor x({3, 2, 3, 2}), y;
    test::fill_uniform(x, -1, 1, 11);
    std::mt19937_64 rng(2);
    layer->setup({&x}, {&y}, rng);
    test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
  }
}

// Structured sparsity (active_outputs / active_inputs) and its timing.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "runtime/parallel.hpp"

TEST_CASE("InnerProduct with active outputs and inputs passes the gradient check", "[layer][inner_product][gradient][structured]") {
  const std::vector<std::pair<std::vector<int>, std::vector<int>>> cases = {
      {{0, 2, 3}, {}}, {{}, {0, 1, 2, 6, 7, 8, 11}}, {{1, 4}, {3, 4, 5, 9}}};
  for (const auto& c : cases) {
    INFO("outs " << c.first.size() << " ins " << c.second.size());
    auto layer = create_layer(ip_param(5));
    Tensor x({3, 3, 2, 2}), y;
    test::fill_uniform(x, -1, 1, 12);
    std::mt19937_64 rng(2);
    layer->setup({&x}, {&y}, rng);
    layer->set_active_outputs(c.first);
    layer->set_active_inputs(c.second);
    test::check_layer_gradient(*layer, {&x}, {&y}, Context{});
    for (int n = 0; n < 3; ++n)
      for (int o = 0; o < 5; ++o)
        if (!c.first.empty() && std::find(c.first.begin(), c.first.end(), o) == c.first.end())
          REQUIRE(y.data()[n * 5 + o] == 0.0f);
  }
  // The transposed layout has no structured kernels: asking for them is an error, not a silent
  // dense run.
  auto layer = create_layer(ip_param(4, true, true));
  Tensor x({3, 6}), y;
  test::fill_uniform(x, -1, 1, 13);
  std::mt19937_64 rng(2);
  layer->setup({&x}, {&y}, rng);
  CHECK_FALSE(layer->supports(DeviceType::CPU, LayerMode::kActiveOutputs));
  layer->set_active_outputs({0, 1});
  CHECK_THROWS_WITH(layer->forward({&x}, {&y}, Context{}),
                    Catch::Contains("layer 'ip'") && Catch::Contains("no active outputs"));
  layer->set_active_outputs({});
  layer->forward({&x}, {&y}, Context{});
  CHECK(y.data()[3] != 0.0f);
}

TEST_CASE("InnerProduct rejects malformed active lists", "[layer][inner_product][structured]") {
  auto layer = create_layer(ip_param(3));
  Tensor x({2, 6}), y;
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->set_active_outputs({0, 3});
  REQUIRE_THROWS_WITH(layer->forward({&x}, {&y}, Context{}),
                      Catch::Contains("layer 'ip'") && Catch::Contains("active_outputs index 3 is out of range"));
  layer->set_active_outputs({});
  layer->set_active_inputs({1, 1});
  REQUIRE_THROWS_WITH(layer->forward({&x}, {&y}, Context{}), Catch::Contains("strictly increasing"));
}

// LeNet-5's ip1 at batch 64 (800 -> 500, forward + backward with dX), dense vs half of the
// neurons kept, half of the input features kept (conv2 filter-pruned to 25 of 50 channels of 16
// features each), and both: run with `dsg_tests "InnerProduct filter-pruned LeNet-5 timing"`
// (DSG_BENCH_THREADS=T for T threads).
TEST_CASE("InnerProduct filter-pruned LeNet-5 timing", "[.bench]") {
  const char* threads_env = std::getenv("DSG_BENCH_THREADS");  // default 1
  const int threads = threads_env ? std::max(1, std::atoi(threads_env)) : 1;
  set_num_threads(threads);
  auto layer = create_layer(ip_param(500));
  Tensor x({64, 50, 4, 4}), y;
  test::fill_uniform(x, -1, 1, 2);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  std::vector<int> outs, ins;
  for (int o = 0; o < 500; o += 2) outs.push_back(o);
  for (int c = 0; c < 50; c += 2)
    for (int j = 0; j < 16; ++j) ins.push_back(c * 16 + j);
  auto time_ms = [&](const std::vector<int>& o, const std::vector<int>& i) {
    layer->set_active_outputs(o);
    layer->set_active_inputs(i);
    layer->forward({&x}, {&y}, Context{});
    test::fill_uniform(y, -1, 1, 4);
    std::copy(y.data(), y.data() + y.count(), y.mutable_diff());
    std::vector<double> t;
    for (int k = 0; k < 200; ++k) {
      auto a = std::chrono::steady_clock::now();
      layer->forward({&x}, {&y}, Context{});
      layer->backward({&y}, {true}, {&x}, Context{});
      t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  double dense = time_ms({}, {}), o = time_ms(outs, {}), i = time_ms({}, ins), both = time_ms(outs, ins);
  std::printf("LeNet-5 ip1 fwd+bwd, batch 64, %d thread(s), median ms: dense %.3f, 250/500 neurons %.3f (%.2fx), "
              "400/800 input features %.3f (%.2fx), both %.3f (%.2fx)\n",
              threads, dense, o, dense / o, i, dense / i, both, dense / both);
}

// The device path of the dense InnerProduct (layers/dense_product.cpp, written once against
// DeviceOps) run with the CPU ops reproduces the CPU layer, both layouts, to GEMM rounding.
#include <vector>

#include "layers/dense_product.hpp"
#include "runtime/ops.hpp"

TEST_CASE("dense_product through the CPU ops matches the InnerProduct layer", "[layer][inner_product][device]") {
  for (bool transpose : {false, true}) {
    INFO("transpose " << transpose);
    auto layer = create_layer(ip_param(5, true, transpose));
    Tensor x({4, 7}), y;
    test::fill_uniform(x, -1, 1, 21);
    std::mt19937_64 rng(3);
    layer->setup({&x}, {&y}, rng);
    layer->forward({&x}, {&y}, Context{});
    std::mt19937_64 gen(22);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = u(gen);
    layer->blobs()[0]->zero_diff();
    layer->blobs()[1]->zero_diff();
    layer->backward({&y}, {true}, {&x}, Context{});

    const DenseProduct p{4, 5, 7, transpose};
    const float* w = layer->blobs()[0]->data();
    const float* b = layer->blobs()[1]->data();
    std::vector<float> out(20), dw(35, 0.0f), db(5, 0.0f), dx(28);
    dense_product_forward(cpu_ops(), p, x.data(), w, b, out.data());
    dense_product_backward(cpu_ops(), p, x.data(), w, y.diff(), dw.data(), db.data(), dx.data());
    // Y = X op(W)^T + b: K = 7 products and the bias.
    test::check_within("y", 20, out, y.data(), test::gemm_tolerance(false, !transpose, 4, 5, 7, 1.0f, x.data(), w, 1.0f, y.data()));
    test::check_within("dx", 28, dx, x.diff(), test::gemm_tolerance(false, transpose, 4, 7, 5, 1.0f, y.diff(), w));
    const std::vector<double> tol_dw = transpose ? test::gemm_tolerance(true, false, 7, 5, 4, 1.0f, x.data(), y.diff())
                                                 : test::gemm_tolerance(true, false, 5, 7, 4, 1.0f, y.diff(), x.data());
    test::check_within("dw", 35, dw, layer->blobs()[0]->diff(), tol_dw);
    for (int j = 0; j < 5; ++j) {
      test::ReductionBound bound;
      for (int i = 0; i < 4; ++i) bound.add(y.diff()[i * 5 + j]);
      CHECK(std::fabs(db[size_t(j)] - layer->blobs()[1]->diff()[j]) <= bound.tolerance());
    }
  }
}
