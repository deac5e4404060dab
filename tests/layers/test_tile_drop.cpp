// Tile-pattern synapse dropout (layers/tile_drop.hpp) and its InnerProduct wiring: both kernels
// equal the dense product with the masked weights (forward, dW, dX, ragged edge tiles), realised
// per-tile drop rates match p (statistics over many passes), numerical gradients, the DropConnect
// (BERNOULLI) baseline, and configuration errors.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include <google/protobuf/text_format.h>

#include "layers/tile_drop.hpp"
#include "runtime/math.hpp"
#include "support/gradient_checker.hpp"
#include "support/tolerance.hpp"

using namespace dsg;
using dsg::test::check_layer_gradient;
using dsg::test::fill_uniform;
using dsg::test::ReductionBound;

namespace {

LayerParameter tile_ip(int n, float ratio, int tile, ApproxDropoutParameter::Pattern pattern) {
  LayerParameter p;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(
      "name: 'ip' type: 'InnerProduct' inner_product_param { weight_filler { type: 'gaussian' std: 0.5 } "
      "bias_filler { type: 'gaussian' std: 0.5 } }",
      &p));
  p.mutable_inner_product_param()->set_num_output(uint32_t(n));
  p.mutable_dropout_param()->set_dropout_ratio(ratio);
  p.mutable_approx_dropout_param()->set_pattern(pattern);
  p.mutable_approx_dropout_param()->set_tile_rows(tile);
  p.mutable_approx_dropout_param()->set_tile_cols(tile);
  return p;
}

Context train_at(int64_t it) {
  Context ctx;
  ctx.phase = TRAIN;
  ctx.seed = 11;
  ctx.iteration = it;
  return ctx;
}

}  // namespace

TEST_CASE("tile kernels equal the dense product with the masked weights", "[tile_drop]") {
  const int m = 5, n = 23, k = 19;  // ragged: tiles of 4 x 6 leave partial edge tiles
  TilePattern pattern(n, k, 4, 6);
  const auto x = test::uniform_vector(size_t(m) * k, 1), w = test::uniform_vector(size_t(n) * k, 2), b = test::uniform_vector(size_t(n), 3);
  const auto dy = test::uniform_vector(size_t(m) * n, 4);
  for (int period : {1, 2, 3, 5}) {
    for (int offset = 0; offset < period; ++offset) {
      pattern.set(period, offset);
      std::vector<float> wm(w.size(), 0.0f);
      int64_t kept = 0;
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < k; ++j)
          if (pattern.kept(i / 4, j / 6)) wm[size_t(i) * k + j] = w[size_t(i) * k + j], ++kept;
      REQUIRE(pattern.kept_weights() == kept);
      const float scale = 1.5f;
      std::vector<float> ref(size_t(m) * n), ref_dw(w.size()), ref_dx(x.size());
      for (int i = 0; i < m; ++i)
        for (int o = 0; o < n; ++o) ref[size_t(i) * n + o] = b[size_t(o)];
      gemm(false, true, m, n, k, scale, x.data(), wm.data(), 1.0f, ref.data());
      gemm(true, false, n, k, m, scale, dy.data(), x.data(), 0.0f, ref_dw.data());
      for (size_t e = 0; e < ref_dw.size(); ++e) ref_dw[e] = wm[e] == 0.0f ? 0.0f : ref_dw[e];
      gemm(false, false, m, k, n, scale, dy.data(), wm.data(), 0.0f, ref_dx.data());
      // Elementwise tolerances of the three products (the bias is one more term of y).
      std::vector<float> bias_rows(ref.size());
      for (size_t e = 0; e < ref.size(); ++e) bias_rows[e] = b[e % size_t(n)];
      const auto tol_y = test::gemm_tolerance(false, true, m, n, k, scale, x.data(), wm.data(), 1.0f, bias_rows.data());
      const auto tol_dw = test::gemm_tolerance(true, false, n, k, m, scale, dy.data(), x.data());
      const auto tol_dx = test::gemm_tolerance(false, false, m, k, n, scale, dy.data(), wm.data());
      for (bool grouped : {true, false}) {
        INFO("period " << period << " offset " << offset << (grouped ? " grouped" : " per tile"));
        std::vector<float> y(size_t(m) * n), dw(w.size(), 0.0f), dx(x.size(), 7.0f);
        pattern.forward(grouped, x.data(), m, w.data(), b.data(), scale, y.data());
        pattern.backward(grouped, x.data(), m, w.data(), dy.data(), scale, dw.data(), dx.data());
        REQUIRE(test::count_outside("y", int64_t(y.size()), y, ref, tol_y) == 0);
        REQUIRE(test::count_outside("dw", int64_t(dw.size()), dw, ref_dw, tol_dw) == 0);
        REQUIRE(test::count_outside("dx", int64_t(dx.size()), dx, ref_dx, tol_dx) == 0);
      }
    }
  }
}

TEST_CASE("tile synapse dropout: every tile dropped with probability p", "[tile_drop]") {
  for (float p : {0.3f, 0.5f, 0.7f}) {
    auto layer = create_layer(tile_ip(40, p, 8, ApproxDropoutParameter::TILE));
    Tensor x({2, 40}), y;
    fill_uniform(x, -1, 1, 5);
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    const int passes = 4000;
    const double tiles = 25;  // 5 x 5 tiles of 8 x 8
    double kept_sum = 0;
    for (int it = 0; it < passes; ++it) {
      layer->forward({&x}, {&y}, train_at(it));
      kept_sum += layer->macs().forward / (2.0 * 64);  // kept tiles (m = 2, 64 weights per tile)
    }
    const double drop = 1.0 - kept_sum / (passes * tiles);
    // Standard error of the mean drop fraction, bounded by independent per-pass counts.
    const double se = std::sqrt(p * (1 - p) / passes);
    INFO("p " << p << " realised " << drop);
    CHECK(std::fabs(drop - p) <= 2 * se + 0.01);
  }
}

TEST_CASE("tile and Bernoulli synapse dropout gradients; TEST runs dense", "[tile_drop]") {
  for (auto pattern : {ApproxDropoutParameter::TILE, ApproxDropoutParameter::BERNOULLI}) {
    for (auto kernel : {ApproxDropoutParameter::GROUPED, ApproxDropoutParameter::PER_TILE}) {
      LayerParameter p = tile_ip(9, 0.5f, 3, pattern);
      p.mutable_approx_dropout_param()->set_tile_kernel(kernel);
      auto layer = create_layer(p);
      Tensor x({3, 7}), y;
      fill_uniform(x, -1, 1, 6);
      std::mt19937_64 rng(2);
      layer->setup({&x}, {&y}, rng);
      check_layer_gradient(*layer, {&x}, {&y}, train_at(3));
      Context test = train_at(3);
      test.phase = TEST;
      layer->forward({&x}, {&y}, test);
      Tensor ref({3, 9});
      const float* w = layer->blobs()[0]->data();
      const float* b = layer->blobs()[1]->data();
      for (int i = 0; i < 3; ++i)
        for (int o = 0; o < 9; ++o) {
          double s = b[o];
          ReductionBound bound;
          bound.add(b[o]);
          for (int j = 0; j < 7; ++j) {
            s += double(x.data()[i * 7 + j]) * w[o * 7 + j];
            bound.add(double(x.data()[i * 7 + j]) * w[o * 7 + j]);
          }
          REQUIRE(std::fabs(y.data()[i * 9 + o] - s) <= bound.tolerance());
        }
    }
  }
}

TEST_CASE("Bernoulli synapse dropout drops each weight with probability p", "[tile_drop]") {
  auto layer = create_layer(tile_ip(20, 0.3f, 4, ApproxDropoutParameter::BERNOULLI));
  Tensor x({1, 20}), y;
  std::mt19937_64 rng(3);
  layer->setup({&x}, {&y}, rng);
  // One-hot input j: output o = b[o] + scale * mask[o, j] * w[o, j].
  int64_t dropped = 0, total = 0;
  for (int it = 0; it < 200; ++it) {
    for (int j = 0; j < 20; j += 5) {
      x.set_data(0.0f);
      x.mutable_data()[j] = 1.0f;
      layer->forward({&x}, {&y}, train_at(it));
      for (int o = 0; o < 20; ++o) {
        dropped += y.data()[o] == layer->blobs()[1]->data()[o];
        ++total;
      }
    }
  }
  const double rate = double(dropped) / double(total), se = std::sqrt(0.3 * 0.7 / double(total));
  CHECK(std::fabs(rate - 0.3) <= 3 * se);
}

TEST_CASE("synapse dropout configuration errors", "[tile_drop]") {
  Tensor x({2, 6}), y;
  std::mt19937_64 rng(4);
  LayerParameter row = tile_ip(4, 0.5f, 2, ApproxDropoutParameter::ROW);
  CHECK_THROWS_WITH(create_layer(row)->setup({&x}, {&y}, rng), Catch::Contains("TILE or BERNOULLI"));
  LayerParameter bad = tile_ip(4, 1.0f, 2, ApproxDropoutParameter::TILE);
  CHECK_THROWS_WITH(create_layer(bad)->setup({&x}, {&y}, rng), Catch::Contains("dropout_ratio"));
  LayerParameter layer;
  layer.set_name("ard");
  layer.set_type("ApproxDropout");
  layer.mutable_approx_dropout_param()->set_pattern(ApproxDropoutParameter::TILE);
  CHECK_THROWS_WITH(create_layer(layer)->setup({&x}, {&y}, rng), Catch::Contains("InnerProduct"));
}
