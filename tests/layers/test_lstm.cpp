#include <catch2/catch.hpp>

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/net.hpp"
#include "runtime/parallel.hpp"
#include "support/gradient_checker.hpp"
#include "support/tolerance.hpp"

using namespace dsg;

static LayerParameter lstm_param(int num_output, float weight_range = 0.6f) {
  LayerParameter p;
  p.set_name("lstm");
  p.set_type("LSTM");
  auto* r = p.mutable_recurrent_param();
  if (num_output >= 0) r->set_num_output(num_output);
  r->mutable_weight_filler()->set_type("uniform");
  r->mutable_weight_filler()->set_min(-weight_range);
  r->mutable_weight_filler()->set_max(weight_range);
  r->mutable_bias_filler()->set_type("uniform");
  r->mutable_bias_filler()->set_min(-0.5f);
  r->mutable_bias_filler()->set_max(0.5f);
  return p;
}

// cont [T, N] from a list of (t, n) positions where a sequence starts (0) and 1 elsewhere; t = 0 is
// 0 for every stream.
static void fill_cont(Tensor& cont, int T, int N, const std::vector<std::pair<int, int>>& restarts) {
  cont.reshape({T, N});
  for (int i = 0; i < T * N; ++i) cont.mutable_data()[i] = i < N ? 0.0f : 1.0f;
  for (const auto& r : restarts) cont.mutable_data()[r.first * N + r.second] = 0.0f;
}

namespace {

struct LstmReference {
  std::vector<double> h;      // [T, N, H]
  std::vector<double> bound;  // [T, N, H]: how far a float implementation's h may be from h
};

// Straightforward double-precision LSTM with Caffe's semantics: gates i, f, o, g in rows
// [0, H), [H, 2H), [2H, 3H), [3H, 4H) of W_xc [4H, D], b_c [4H], W_hc [4H, H]; state zero before
// t = 0; cont_t multiplies h_{t-1} and c_{t-1}.
// Beside h it carries a forward error bound for a float implementation through time
// (support/tolerance.hpp for the reductions; e_v is the bound on v's error):
//   pre-activation  e_pre = reduction_tolerance(D + H + 1, |b| + sum |wx x| + sum |wh h_prev|)
//                           + sum_k |wh_k| e_h_prev[k]
//   gates           e_gate = e_pre / 4 (sigmoid) or e_pre (tanh), + kUlps eps for the float function
//   c = f c_p + i g e_c = e_f |c_p| + f e_c_p + e_i |g| + i e_g + kUlps eps (|f c_p| + |i g|)
//   h = o tanh(c)   e_h = e_o |tanh c| + o (e_c + kUlps eps) + kUlps eps
LstmReference lstm_reference(const Tensor& x, const Tensor& cont, const Layer& layer) {
  constexpr double kUlps = 4;  // allowance for one float sigmoid / tanh / product, in eps
  const double eps = FLT_EPSILON;
  const int T = x.shape(0), N = x.shape(1), D = x.shape(2);
  const float* wx = layer.blobs()[0]->data();
  const float* b = layer.blobs()[1]->data();
  const float* wh = layer.blobs()[2]->data();
  const int H = layer.blobs()[2]->shape(1);
  auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  std::vector<double> h_prev(static_cast<size_t>(N * H), 0.0), c_prev(static_cast<size_t>(N * H), 0.0);
  std::vector<double> eh_prev(static_cast<size_t>(N * H), 0.0), ec_prev(static_cast<size_t>(N * H), 0.0);
  LstmReference out{std::vector<double>(static_cast<size_t>(T * N * H), 0.0),
                    std::vector<double>(static_cast<size_t>(T * N * H), 0.0)};
  for (int t = 0; t < T; ++t) {
    std::vector<double> h_new(static_cast<size_t>(N * H), 0.0), c_new(static_cast<size_t>(N * H), 0.0);
    std::vector<double> eh_new(static_cast<size_t>(N * H), 0.0), ec_new(static_cast<size_t>(N * H), 0.0);
    for (int n = 0; n < N; ++n) {
      const double keep = t == 0 ? 0.0 : cont.data()[t * N + n];
      std::vector<double> pre(static_cast<size_t>(4 * H), 0.0), e_pre(static_cast<size_t>(4 * H), 0.0);
      for (int r = 0; r < 4 * H; ++r) {
        double s = b[r], mag = std::fabs(b[r]), carried = 0;
        for (int d = 0; d < D; ++d) {
          s += double(wx[r * D + d]) * x.data()[(t * N + n) * D + d];
          mag += std::fabs(double(wx[r * D + d]) * x.data()[(t * N + n) * D + d]);
        }
        for (int k = 0; k < H; ++k) {
          s += double(wh[r * H + k]) * keep * h_prev[n * H + k];
          mag += std::fabs(double(wh[r * H + k]) * keep * h_prev[n * H + k]);
          carried += std::fabs(double(wh[r * H + k]) * keep) * eh_prev[n * H + k];
        }
        pre[r] = s;
        e_pre[r] = test::reduction_tolerance(D + H + 1, mag) + carried;
      }
      for (int j = 0; j < H; ++j) {
        const double i = sigmoid(pre[j]), f = sigmoid(pre[H + j]), o = sigmoid(pre[2 * H + j]);
        const double g = std::tanh(pre[3 * H + j]);
        const double ei = e_pre[j] / 4 + kUlps * eps, ef = e_pre[H + j] / 4 + kUlps * eps;
        const double eo = e_pre[2 * H + j] / 4 + kUlps * eps, eg = e_pre[3 * H + j] + kUlps * eps;
        const double cp = keep * c_prev[n * H + j], ecp = keep * ec_prev[n * H + j];
        const double c = f * cp + i * g;
        const double ec = ef * std::fabs(cp) + f * ecp + ei * std::fabs(g) + i * eg + kUlps * eps * (std::fabs(f * cp) + std::fabs(i * g));
        c_new[n * H + j] = c;
        ec_new[n * H + j] = ec;
        h_new[n * H + j] = o * std::tanh(c);
        eh_new[n * H + j] = eo * std::fabs(std::tanh(c)) + o * (ec + kUlps * eps) + kUlps * eps;
        out.h[(t * N + n) * H + j] = h_new[n * H + j];
        out.bound[(t * N + n) * H + j] = eh_new[n * H + j];
      }
    }
    h_prev = h_new;
    c_prev = c_new;
    eh_prev = eh_new;
    ec_prev = ec_new;
  }
  return out;
}

}  // namespace

TEST_CASE("LSTM forward matches a double-precision reference, with sequence restarts", "[layer][lstm]") {
  const int T = 5, N = 3, D = 4, H = 4;
  auto layer = create_layer(lstm_param(H, 1.0f));
  Tensor x({T, N, D}), cont, h;
  test::fill_uniform(x, -2, 2, 31);
  fill_cont(cont, T, N, {{2, 1}, {3, 2}, {4, 2}});
  cont.mutable_data()[0] = 1.0f;  // cont at t = 0 is irrelevant: the state starts at zero
  std::mt19937_64 rng(4);
  layer->setup({&x, &cont}, {&h}, rng);
  REQUIRE(layer->blobs().size() == 3);
  CHECK(layer->blobs()[0]->shape() == std::vector<int>{4 * H, D});
  CHECK(layer->blobs()[1]->shape() == std::vector<int>{4 * H});
  CHECK(layer->blobs()[2]->shape() == std::vector<int>{4 * H, H});
  CHECK_FALSE(layer->allow_backward_to(1));
  for (int pass = 0; pass < 2; ++pass) {  // no state carried from one forward to the next
    layer->forward({&x, &cont}, {&h}, Context{});
    REQUIRE(h.shape() == std::vector<int>{T, N, H});
    const LstmReference ref = lstm_reference(x, cont, *layer);
    INFO("pass " << pass);
    test::check_within("h", T * N * H, h.data(), ref.h, ref.bound);
  }
  const LstmReference ref = lstm_reference(x, cont, *layer);

  // Stream 1 restarts at t = 2: its h from there on equals a fresh run over x[2:, 1].
  const std::vector<float> h_all(h.data(), h.data() + h.count());
  Tensor x2({T - 2, 1, D}), cont2({T - 2, 1}), h2;
  for (int t = 2; t < T; ++t) {
    for (int d = 0; d < D; ++d) x2.mutable_data()[(t - 2) * D + d] = x.data()[(t * N + 1) * D + d];
    cont2.mutable_data()[t - 2] = cont.data()[t * N + 1];
  }
  layer->forward({&x2, &cont2}, {&h2}, Context{});
  REQUIRE(h2.shape() == std::vector<int>{T - 2, 1, H});
  for (int t = 2; t < T; ++t)
    for (int j = 0; j < H; ++j) {  // two float runs, each within the reference's bound
      const size_t i = size_t((t * N + 1) * H + j);
      CHECK(std::fabs(h2.data()[(t - 2) * H + j] - h_all[i]) <= 2 * ref.bound[i]);
    }
  // Before the restart the stream did carry state, so a run over all steps without it differs.
  fill_cont(cont, T, N, {});
  layer->forward({&x, &cont}, {&h}, Context{});
  bool differs = false;
  for (int j = 0; j < H; ++j) differs = differs || std::fabs(h.data()[(2 * N + 1) * H + j] - h_all[size_t((2 * N + 1) * H + j)]) > 1e-4f;
  CHECK(differs);
}

TEST_CASE("LSTM gradient check (x, W_xc, b_c, W_hc) through sequence restarts", "[layer][lstm][gradient]") {
  struct Case { int T, N, D, H; std::vector<std::pair<int, int>> restarts; };
  const std::vector<Case> cases = {
      {3, 2, 3, 3, {{2, 1}}},
      {4, 3, 4, 5, {{2, 0}, {1, 2}, {3, 2}}},
      {5, 2, 3, 4, {{3, 1}}},
  };
  for (const auto& c : cases) {
    INFO("T " << c.T << " N " << c.N << " D " << c.D << " H " << c.H);
    auto layer = create_layer(lstm_param(c.H, 0.8f));
    Tensor x({c.T, c.N, c.D}), cont, h;
    test::fill_uniform(x, -1.5f, 1.5f, uint64_t(40 + c.T));
    fill_cont(cont, c.T, c.N, c.restarts);
    std::mt19937_64 rng(uint64_t(7 + c.H));
    layer->setup({&x, &cont}, {&h}, rng);
    test::GradientCheckOptions opt;
    opt.threshold = 3e-3f;
    test::check_layer_gradient(*layer, {&x, &cont}, {&h}, Context{}, opt);
  }
}

TEST_CASE("LSTM accumulates parameter diffs, overwrites dx and skips what is not asked for", "[layer][lstm]") {
  const int T = 4, N = 2, D = 3, H = 3;
  auto layer = create_layer(lstm_param(H));
  Tensor x({T, N, D}), cont, h;
  test::fill_uniform(x, -1, 1, 5);
  fill_cont(cont, T, N, {{2, 0}});
  std::mt19937_64 rng(2);
  layer->setup({&x, &cont}, {&h}, rng);
  layer->forward({&x, &cont}, {&h}, Context{});
  test::fill_uniform(h, -1, 1, 6);
  std::copy(h.data(), h.data() + h.count(), h.mutable_diff());
  for (auto& b : layer->blobs()) b->zero_diff();
  cont.zero_diff();
  layer->backward({&h}, {true, false}, {&x, &cont}, Context{});
  std::vector<std::vector<float>> first;
  for (auto& b : layer->blobs()) first.emplace_back(b->diff(), b->diff() + b->count());
  const std::vector<float> dx(x.diff(), x.diff() + x.count());
  layer->backward({&h}, {true, false}, {&x, &cont}, Context{});
  for (size_t p = 0; p < 3; ++p)
    for (int64_t i = 0; i < layer->blobs()[p]->count(); ++i)
      CHECK(layer->blobs()[p]->diff()[i] == Approx(2 * first[p][size_t(i)]).margin(1e-6));
  for (int64_t i = 0; i < x.count(); ++i) CHECK(x.diff()[i] == dx[size_t(i)]);
  CHECK(cont.sumsq_diff() == 0.0);

  for (int p = 0; p < 3; ++p) layer->set_param_propagate_down(p, false);
  for (auto& b : layer->blobs()) b->zero_diff();
  x.zero_diff();
  layer->backward({&h}, {false, false}, {&x, &cont}, Context{});
  CHECK(x.sumsq_diff() == 0.0);
  for (auto& b : layer->blobs()) CHECK(b->sumsq_diff() == 0.0);
}

TEST_CASE("LSTM gives the same result with several threads", "[layer][lstm]") {
  const int T = 3, N = 160, D = 8, H = 128;  // enough rows for parallel_for to split the gate loops
  Tensor x({T, N, D}), cont;
  test::fill_uniform(x, -1, 1, 8);
  fill_cont(cont, T, N, {{1, 5}, {2, 100}});
  const int threads = num_threads();
  std::vector<float> h1, dx1, dw1;
  for (int t : {1, 4}) {
    set_num_threads(t);
    auto layer = create_layer(lstm_param(H, 0.2f));
    Tensor h;
    std::mt19937_64 rng(1);
    layer->setup({&x, &cont}, {&h}, rng);
    layer->forward({&x, &cont}, {&h}, Context{});
    for (int64_t i = 0; i < h.count(); ++i) h.mutable_diff()[i] = float(i % 13) / 6.0f - 1.0f;
    for (auto& b : layer->blobs()) b->zero_diff();
    layer->backward({&h}, {true, false}, {&x, &cont}, Context{});
    if (t == 1) {
      h1.assign(h.data(), h.data() + h.count());
      dx1.assign(x.diff(), x.diff() + x.count());
      dw1.assign(layer->blobs()[2]->diff(), layer->blobs()[2]->diff() + layer->blobs()[2]->count());
      continue;
    }
    int differ = 0;
    for (int64_t i = 0; i < h.count(); ++i) differ += std::fabs(h.data()[i] - h1[size_t(i)]) > 1e-6f;
    for (int64_t i = 0; i < x.count(); ++i) differ += std::fabs(x.diff()[i] - dx1[size_t(i)]) > 1e-5f;
    for (int64_t i = 0; i < layer->blobs()[2]->count(); ++i)
      differ += std::fabs(layer->blobs()[2]->diff()[i] - dw1[size_t(i)]) > 1e-4f;
    CHECK(differ == 0);
  }
  set_num_threads(threads);
}

TEST_CASE("LSTM rejects bad bottoms and configurations", "[layer][lstm][errors]") {
  const int T = 3, N = 2, D = 4;
  Tensor x({T, N, D}), cont({T, N}), h;
  std::mt19937_64 rng(1);
  SECTION("num_output zero or missing") {
    REQUIRE_THROWS_WITH(create_layer(lstm_param(0))->setup({&x, &cont}, {&h}, rng),
                        Catch::Contains("layer 'lstm' (LSTM)") && Catch::Contains("num_output"));
    REQUIRE_THROWS_WITH(create_layer(lstm_param(-1))->setup({&x, &cont}, {&h}, rng), Catch::Contains("num_output"));
  }
  SECTION("x not 3-axis") {
    Tensor x2({T, N * D});
    REQUIRE_THROWS_WITH(create_layer(lstm_param(3))->setup({&x2, &cont}, {&h}, rng),
                        Catch::Contains("layer 'lstm'") && Catch::Contains("[T, N, D]"));
    Tensor x4({T, N, D, 1});
    REQUIRE_THROWS_AS(create_layer(lstm_param(3))->setup({&x4, &cont}, {&h}, rng), dsg::Error);
  }
  SECTION("cont not [T, N]") {
    for (const std::vector<int>& shape : {std::vector<int>{T, N + 1}, std::vector<int>{T + 1, N},
                                          std::vector<int>{T * N}, std::vector<int>{T, N, 1}}) {
      Tensor bad(shape);
      REQUIRE_THROWS_WITH(create_layer(lstm_param(3))->setup({&x, &bad}, {&h}, rng),
                          Catch::Contains("layer 'lstm'") && Catch::Contains("cont") && Catch::Contains("[3, 2]"));
    }
  }
  SECTION("shapes changing after setup") {
    auto layer = create_layer(lstm_param(3));
    layer->setup({&x, &cont}, {&h}, rng);
    Tensor x5({T, N, D + 1});
    REQUIRE_THROWS_WITH(layer->forward({&x5, &cont}, {&h}, Context{}), Catch::Contains("input size 5"));
    Tensor x_long({T + 1, N, D});
    REQUIRE_THROWS_AS(layer->forward({&x_long, &cont}, {&h}, Context{}), dsg::Error);
  }
  SECTION("static input and expose_hidden") {
    Tensor s({N, 2});
    REQUIRE_THROWS_WITH(create_layer(lstm_param(3))->setup({&x, &cont, &s}, {&h}, rng),
                        Catch::Contains("static input"));
    auto p = lstm_param(3);
    p.mutable_recurrent_param()->set_expose_hidden(true);
    REQUIRE_THROWS_WITH(create_layer(p)->setup({&x, &cont}, {&h}, rng), Catch::Contains("expose_hidden"));
  }
  SECTION("one bottom") {
    REQUIRE_THROWS_AS(create_layer(lstm_param(3))->setup({&x}, {&h}, rng), dsg::Error);
  }
}

// A small language model in a net: words -> Embed -> LSTM -> InnerProduct (axis 2) -> softmax loss
// over the vocabulary; parameters live in the net's arena and the net's gradient is checked
// numerically for every learnable parameter.
TEST_CASE("LSTM and Embed train in a net: gradients match finite differences", "[layer][lstm][embed][net]") {
  const int T = 4, N = 2, V = 5;
  NetParameter net_param;
  parse_text_proto(R"(
    name: "lm"
    layer { name: "in" type: "Input" top: "words" top: "cont" top: "label"
            input_param { shape { dim: 4 dim: 2 } shape { dim: 4 dim: 2 } shape { dim: 4 dim: 2 } } }
    layer { name: "embed" type: "Embed" bottom: "words" top: "e"
            embed_param { num_output: 3 input_dim: 5 weight_filler { type: "uniform" min: -1 max: 1 } } }
    layer { name: "lstm" type: "LSTM" bottom: "e" bottom: "cont" top: "h"
            recurrent_param { num_output: 4 weight_filler { type: "uniform" min: -0.7 max: 0.7 }
                              bias_filler { type: "uniform" min: -0.5 max: 0.5 } } }
    layer { name: "out" type: "InnerProduct" bottom: "h" top: "scores"
            inner_product_param { num_output: 5 axis: 2 weight_filler { type: "uniform" min: -1 max: 1 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "scores" bottom: "label" top: "loss" softmax_param { axis: 2 } }
  )", "lm-net", &net_param);
  std::mt19937_64 rng(5);
  Net net(net_param, TRAIN, rng);
  const float words[] = {0, 3, 1, 1, 4, 2, 2, 0};
  const float cont[] = {0, 0, 1, 1, 0, 1, 1, 1};  // stream 0 restarts at t = 2
  const float label[] = {3, 1, 1, 4, 2, 2, 0, 3};
  std::copy(words, words + T * N, net.blob("words").mutable_data());
  std::copy(cont, cont + T * N, net.blob("cont").mutable_data());
  std::copy(label, label + T * N, net.blob("label").mutable_data());
  REQUIRE(net.blob("scores").shape() == std::vector<int>{T, N, V});
  Context ctx;
  net.zero_param_diffs();
  const float loss = net.forward_backward(ctx);
  CHECK(std::isfinite(loss));
  const int checked = test::check_net_param_gradients(net, ctx);
  CHECK(checked == 15 + 3 + 48 + 16 + 64 + 20 + 5);  // Embed W b, LSTM W_xc b_c W_hc, InnerProduct W b
}

// Forward + backward time of the layer at PTB-like sizes: run with `dsg_tests "LSTM timing"`
// (DSG_BENCH_THREADS=T for T threads).
TEST_CASE("LSTM timing", "[.bench]") {
  const char* threads_env = std::getenv("DSG_BENCH_THREADS");  // default 1
  const int threads = threads_env ? std::max(1, std::atoi(threads_env)) : 1;
  const int previous_threads = num_threads();
  set_num_threads(threads);
  struct Size { int T, N, D, H; };
  for (const Size s : {Size{35, 20, 200, 200}, Size{35, 20, 650, 650}, Size{50, 64, 256, 256}}) {
    auto layer = create_layer(lstm_param(s.H, 0.1f));
    Tensor x({s.T, s.N, s.D}), cont, h;
    test::fill_uniform(x, -1, 1, 2);
    fill_cont(cont, s.T, s.N, {});
    std::mt19937_64 rng(1);
    layer->setup({&x, &cont}, {&h}, rng);
    layer->forward({&x, &cont}, {&h}, Context{});
    test::fill_uniform(h, -1, 1, 3);
    std::copy(h.data(), h.data() + h.count(), h.mutable_diff());
    std::vector<double> fwd, total;
    for (int k = 0; k < 9; ++k) {
      auto a = std::chrono::steady_clock::now();
      layer->forward({&x, &cont}, {&h}, Context{});
      auto b = std::chrono::steady_clock::now();
      layer->backward({&h}, {true, false}, {&x, &cont}, Context{});
      auto c = std::chrono::steady_clock::now();
      fwd.push_back(std::chrono::duration<double, std::milli>(b - a).count());
      total.push_back(std::chrono::duration<double, std::milli>(c - a).count());
    }
    std::sort(fwd.begin(), fwd.end());
    std::sort(total.begin(), total.end());
    std::printf("LSTM T %d N %d D %d H %d, %d thread(s), median ms: forward %.3f, forward+backward %.3f\n", s.T, s.N,
                s.D, s.H, threads, fwd[fwd.size() / 2], total[total.size() / 2]);
  }
  set_num_threads(previous_threads);
}
