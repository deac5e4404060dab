// Structurally sparse LSTM backward (structured_backward_param): with every column kept it equals
// the dense backward; with a kept fraction it equals a double-precision BPTT reference in which the
// dropped gate-gradient columns of each step (the smallest L2 norms over the batch) are zero; the
// schedule switches it per phase (the mixed sparse/dense schedule); bad parameters are refused.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include <google/protobuf/text_format.h>

#include "runtime/net.hpp"
#include "sparsity/controller.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;
using dsg::test::fill_uniform;

namespace {

void set_diff(Tensor& t, float v) {
  float* d = t.mutable_diff();
  for (int64_t i = 0; i < t.count(); ++i) d[i] = v;
}

LayerParameter sparse_lstm(int h, float keep) {
  LayerParameter p;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(
      "name: 'lstm' type: 'LSTM' recurrent_param { weight_filler { type: 'uniform' min: -0.6 max: 0.6 } "
      "bias_filler { type: 'uniform' min: -0.5 max: 0.5 } }",
      &p));
  p.mutable_recurrent_param()->set_num_output(uint32_t(h));
  if (keep > 0) p.mutable_structured_backward_param()->set_keep_fraction(keep);
  return p;
}

struct Grads {
  std::vector<double> dx, dwx, db, dwh;
};

// BPTT in double precision; per step the gate-gradient columns outside the `keep` largest L2 norms
// (over the batch) are zeroed before they feed any product. keep = 4H: dense.
Grads reference(const Tensor& x, const Tensor& cont, const Tensor& dy, const Layer& layer, int keep) {
  const int T = x.shape(0), N = x.shape(1), D = x.shape(2), H = layer.blobs()[2]->shape(1), G = 4 * H;
  const float* wx = layer.blobs()[0]->data();
  const float* b = layer.blobs()[1]->data();
  const float* wh = layer.blobs()[2]->data();
  auto sig = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  std::vector<double> act(size_t(T * N * G)), c(size_t(T * N * H)), h(size_t(T * N * H)), hp(size_t(T * N * H), 0.0);
  for (int t = 0; t < T; ++t)
    for (int n = 0; n < N; ++n) {
      const double k = t == 0 ? 0.0 : cont.data()[t * N + n];
      const size_t row = size_t(t * N + n);
      for (int j = 0; j < H; ++j) hp[row * H + j] = t == 0 ? 0.0 : k * h[(row - N) * H + j];
      for (int r = 0; r < G; ++r) {
        double s = b[r];
        for (int d = 0; d < D; ++d) s += double(wx[r * D + d]) * x.data()[row * D + d];
        for (int j = 0; j < H; ++j) s += double(wh[r * H + j]) * hp[row * H + j];
        act[row * G + r] = r < 3 * H ? sig(s) : std::tanh(s);
      }
      for (int j = 0; j < H; ++j) {
        const double* a = &act[row * G];
        const double cp = t == 0 ? 0.0 : k * c[(row - N) * H + j];
        c[row * H + j] = a[H + j] * cp + a[j] * a[3 * H + j];
        h[row * H + j] = a[2 * H + j] * std::tanh(c[row * H + j]);
      }
    }
  Grads g{std::vector<double>(size_t(T * N * D), 0.0), std::vector<double>(size_t(G * D), 0.0),
          std::vector<double>(size_t(G), 0.0), std::vector<double>(size_t(G * H), 0.0)};
  std::vector<double> dh_carry(size_t(N * H), 0.0), dc_carry(size_t(N * H), 0.0), dg(size_t(N * G));
  for (int t = T - 1; t >= 0; --t) {
    for (int n = 0; n < N; ++n) {
      const size_t row = size_t(t * N + n);
      const double k = t == 0 ? 0.0 : cont.data()[t * N + n];
      const double kn = t + 1 < T ? cont.data()[(t + 1) * N + n] : 0.0;
      const double* a = &act[row * G];
      for (int j = 0; j < H; ++j) {
        const double i = a[j], f = a[H + j], o = a[2 * H + j], gg = a[3 * H + j], tc = std::tanh(c[row * H + j]);
        const double dh = dy.diff()[row * H + j] + kn * dh_carry[size_t(n * H + j)];
        const double dc = kn * dc_carry[size_t(n * H + j)] + dh * o * (1 - tc * tc);
        const double cp = t == 0 ? 0.0 : k * c[(row - N) * H + j];
        dg[size_t(n * G + j)] = dc * gg * i * (1 - i);
        dg[size_t(n * G + H + j)] = dc * cp * f * (1 - f);
        dg[size_t(n * G + 2 * H + j)] = dh * tc * o * (1 - o);
        dg[size_t(n * G + 3 * H + j)] = dc * i * (1 - gg * gg);
        dc_carry[size_t(n * H + j)] = dc * f;
      }
    }
    std::vector<double> norm(size_t(G), 0.0);
    for (int n = 0; n < N; ++n)
      for (int r = 0; r < G; ++r) norm[size_t(r)] += dg[size_t(n * G + r)] * dg[size_t(n * G + r)];
    std::vector<int> order(static_cast<size_t>(G));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b2) { return norm[size_t(a)] > norm[size_t(b2)]; });
    for (int q = keep; q < G; ++q)
      for (int n = 0; n < N; ++n) dg[size_t(n * G + order[size_t(q)])] = 0.0;
    std::fill(dh_carry.begin(), dh_carry.end(), 0.0);
    for (int n = 0; n < N; ++n) {
      const size_t row = size_t(t * N + n);
      for (int r = 0; r < G; ++r) {
        const double v = dg[size_t(n * G + r)];
        g.db[size_t(r)] += v;
        for (int d = 0; d < D; ++d) {
          g.dx[row * D + d] += v * wx[r * D + d];
          g.dwx[size_t(r * D + d)] += v * x.data()[row * D + d];
        }
        for (int j = 0; j < H; ++j) {
          dh_carry[size_t(n * H + j)] += v * wh[r * H + j];
          g.dwh[size_t(r * H + j)] += v * hp[row * H + j];
        }
      }
    }
  }
  return g;
}

void require_close(const float* got, const std::vector<double>& want, const char* what) {
  INFO(what);
  for (size_t i = 0; i < want.size(); ++i) REQUIRE(got[i] == Approx(want[i]).margin(2e-4).epsilon(2e-3));
}

}  // namespace

TEST_CASE("LSTM structured sparse backward equals BPTT with the dropped gate columns zeroed", "[lstm_sparse]") {
  const int T = 4, N = 3, D = 5, H = 4;
  for (float keep : {1.0f, 0.5f, 0.25f}) {
    auto layer = create_layer(sparse_lstm(H, keep));
    Tensor x({T, N, D}), cont, y;
    fill_uniform(x, -1, 1, 21);
    cont.reshape({T, N});
    for (int i = 0; i < T * N; ++i) cont.mutable_data()[i] = i < N || i == 2 * N + 1 ? 0.0f : 1.0f;  // a restart
    std::mt19937_64 rng(3);
    layer->setup({&x, &cont}, {&y}, rng);
    Context ctx;
    layer->forward({&x, &cont}, {&y}, ctx);
    std::mt19937_64 g(5);
    std::uniform_real_distribution<float> u(-1, 1);
    for (int64_t i = 0; i < y.count(); ++i) y.mutable_diff()[i] = u(g);
    for (auto& blob : layer->blobs()) set_diff(*blob, 0.0f);
    layer->backward({&y}, {true, false}, {&x, &cont}, ctx);
    const Grads want = reference(x, cont, y, *layer, int(std::lround(keep * 4 * H)));
    INFO("keep " << keep);
    require_close(x.diff(), want.dx, "dx");
    require_close(layer->blobs()[0]->diff(), want.dwx, "dW_xc");
    require_close(layer->blobs()[1]->diff(), want.db, "db");
    require_close(layer->blobs()[2]->diff(), want.dwh, "dW_hc");
    const LayerMacs m = layer->macs();
    CHECK(m.backward == Approx(m.dense_backward * double(std::lround(keep * 16)) / 16.0));
  }
}

TEST_CASE("LSTM structured backward: threshold keeps the columns above it, bad parameters refused", "[lstm_sparse]") {
  Tensor x({3, 2, 3}), cont({3, 2}), y;
  fill_uniform(x, -1, 1, 22);
  cont.set_data(1.0f);
  std::mt19937_64 rng(4);
  LayerParameter p = sparse_lstm(4, 0);
  p.mutable_structured_backward_param()->set_threshold(1e9f);  // nothing passes: the largest column stays
  auto layer = create_layer(p);
  layer->setup({&x, &cont}, {&y}, rng);
  Context ctx;
  layer->forward({&x, &cont}, {&y}, ctx);
  set_diff(y, 1.0f);
  layer->backward({&y}, {true, false}, {&x, &cont}, ctx);
  CHECK(layer->macs().backward == Approx(layer->macs().dense_backward * 3.0 / 48.0));  // 1 of 16 columns, 3 steps
  LayerParameter bad = sparse_lstm(4, 1.5f);
  CHECK_THROWS_WITH(create_layer(bad)->setup({&x, &cont}, {&y}, rng), Catch::Contains("keep_fraction"));
}

TEST_CASE("the mixed schedule switches the LSTM between sparse and dense backward", "[lstm_sparse]") {
  NetParameter np;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(R"(
    layer { name: "in" type: "Input" top: "x" top: "cont" input_param { shape { dim: 3 dim: 2 dim: 3 } shape { dim: 3 dim: 2 } } }
    layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
            recurrent_param { num_output: 4 weight_filler { type: "uniform" min: -0.5 max: 0.5 } }
            structured_backward_param { keep_fraction: 0.25 } }
  )", &np));
  std::mt19937_64 rng(6);
  Net net(np, TRAIN, rng);
  SolverParameter solver;
  solver.set_max_iter(30);
  REQUIRE(google::protobuf::TextFormat::ParseFromString(
      "phase { start_iter: 0 sparse_backward: true } phase { start_iter: 20 sparse_backward: false }",
      solver.mutable_schedule()));
  SparsityController controller(net, solver, 2, 0);
  Layer& lstm = *net.layer_by_name("lstm");
  fill_uniform(net.blob("x"), -1, 1, 7);
  net.blob("cont").set_data(1.0f);
  for (int iter : {0, 19, 20, 29}) {
    controller.begin_iteration(iter);
    Context ctx;
    net.forward(ctx);
    set_diff(net.blob("h"), 1.0f);
    lstm.backward({&net.blob("h")}, {true, false}, {&net.blob("x"), &net.blob("cont")}, ctx);
    const LayerMacs m = lstm.macs();
    INFO("iteration " << iter);
    if (iter < 20) CHECK(m.backward < 0.3 * m.dense_backward);
    else CHECK(m.backward == m.dense_backward);
  }
}
