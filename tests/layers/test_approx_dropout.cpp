// ApproxDropout: the row pattern it samples (statistics of the per-unit drop rate over many
// passes), its numerical gradient for a fixed pattern, TEST-phase identity, and in a net: the
// producer computes only the kept rows and the consumer only the kept inputs, with outputs and
// every parameter gradient equal to the dense computation with the same units dropped by a mask.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include <google/protobuf/text_format.h>

#include "runtime/error.hpp"
#include "runtime/net.hpp"
#include "support/gradient_checker.hpp"
#include "support/tolerance.hpp"

using namespace dsg;

namespace {

LayerParameter ard_param(float ratio, const char* name = "ard") {
  LayerParameter p;
  p.set_name(name);
  p.set_type("ApproxDropout");
  p.mutable_dropout_param()->set_dropout_ratio(ratio);
  return p;
}

Context ctx_at(Phase phase, int64_t iteration, uint64_t seed = 9) {
  Context ctx;
  ctx.phase = phase;
  ctx.seed = seed;
  ctx.iteration = iteration;
  return ctx;
}

// ip1 (K -> 40) -> ReLU -> ApproxDropout(p) -> ip2 (40 -> 7), Input data [8, K].
std::string ard_net(float p, bool dense_reference) {
  const std::string drop = dense_reference
                               ? ""
                               : "layer { name: 'ard' type: 'ApproxDropout' bottom: 'h' top: 'h' dropout_param { dropout_ratio: " +
                                     std::to_string(p) + " } }\n";
  return "name: 't'\n"
         "layer { name: 'in' type: 'Input' top: 'x' input_param { shape { dim: 8 dim: 30 } } }\n"
         "layer { name: 'ip1' type: 'InnerProduct' bottom: 'x' top: 'h' inner_product_param { num_output: 40 "
         "weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' std: 0.1 } } }\n"
         "layer { name: 'relu' type: 'ReLU' bottom: 'h' top: 'h' }\n" +
         drop +
         "layer { name: 'ip2' type: 'InnerProduct' bottom: 'h' top: 'y' inner_product_param { num_output: 7 "
         "weight_filler { type: 'gaussian' std: 0.3 } bias_filler { type: 'gaussian' std: 0.1 } } }\n";
}

std::unique_ptr<Net> make_net(const std::string& text) {
  NetParameter p;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(text, &p));
  std::mt19937_64 rng(4);
  return std::make_unique<Net>(p, TRAIN, rng);
}

}  // namespace

TEST_CASE("ApproxDropout drops every unit at rate p (statistics over passes)", "[layer][ard]") {
  for (float p : {0.3f, 0.5f, 0.7f}) {
    auto layer = create_layer(ard_param(p));
    Tensor x({4, 100}), y;
    x.set_data(1.0f);
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    const int passes = 4000;
    std::vector<int> dropped(100, 0);
    std::vector<double> fraction;
    for (int it = 0; it < passes; ++it) {
      Context ctx = ctx_at(TRAIN, it);
      layer->sample_dynamic_structure(ctx);
      layer->forward({&x}, {&y}, ctx);
      int d = 0;
      for (int u = 0; u < 100; ++u) {
        const bool drop = y.data()[u] == 0.0f;
        // Shared by the batch: every sample drops the same units, kept ones are scaled by 1/(1-p).
        for (int s = 1; s < 4; ++s) REQUIRE((y.data()[s * 100 + u] == 0.0f) == drop);
        if (!drop) REQUIRE(y.data()[u] == Approx(1.0 / (1.0 - p)));
        dropped[size_t(u)] += drop;
        d += drop;
      }
      fraction.push_back(d / 100.0);
    }
    // Per unit: a Bernoulli(p) indicator per pass, independent across passes.
    const double se = std::sqrt(p * (1 - p) / passes);
    int within2 = 0;
    double mean = 0;
    for (int u = 0; u < 100; ++u) {
      const double rate = double(dropped[size_t(u)]) / passes;
      within2 += std::fabs(rate - p) <= 2 * se;
      CHECK(std::fabs(rate - p) <= 4.5 * se);
      mean += rate / 100;
    }
    INFO("p = " << p << ", units within 2 SE: " << within2);
    CHECK(within2 >= 88);  // ~95% expected
    // The mean over units is the mean dropped fraction per pass; its SE from the per-pass spread.
    double var = 0;
    for (double f : fraction) var += (f - mean) * (f - mean) / (passes - 1);
    CHECK(std::fabs(mean - p) <= 2 * std::sqrt(var / passes) + 1e-12);
  }
}

TEST_CASE("ApproxDropout gradient for a fixed pattern; TEST is the identity", "[layer][ard][gradient]") {
  auto layer = create_layer(ard_param(0.5f));
  Tensor x({3, 12, 2, 2}), y;  // channel units of an NCHW blob
  test::fill_uniform(x, -1.0f, 1.0f, 3);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  Context ctx = ctx_at(TRAIN, 5);
  layer->sample_dynamic_structure(ctx);
  REQUIRE(layer->dynamic_kept().size() == 6);
  test::check_layer_gradient(*layer, {&x}, {&y}, ctx);
  Context test_ctx = ctx_at(TEST, 0);
  CHECK(layer->sample_dynamic_structure(test_ctx));
  CHECK(layer->dynamic_kept().empty());
  layer->forward({&x}, {&y}, test_ctx);
  for (int64_t i = 0; i < x.count(); ++i) CHECK(y.data()[i] == x.data()[i]);
}

TEST_CASE("ApproxDropout in a net shrinks the GEMMs and matches the masked dense computation", "[layer][ard]") {
  auto sparse = make_net(ard_net(0.5f, false));
  auto dense = make_net(ard_net(0.5f, true));
  dense->share_params_from(*sparse);
  test::fill_uniform(sparse->blob("x"), -1.0f, 1.0f, 11);
  dense->blob("x").set_data(0.0f);
  std::copy(sparse->blob("x").data(), sparse->blob("x").data() + sparse->blob("x").count(),
            dense->blob("x").mutable_data());
  Layer& ip1 = *sparse->layer_by_name("ip1");
  Layer& ip2 = *sparse->layer_by_name("ip2");
  Layer& ard = *sparse->layer_by_name("ard");
  for (int it = 0; it < 6; ++it) {
    Context ctx = ctx_at(TRAIN, it);
    sparse->zero_param_diffs();
    sparse->forward(ctx);
    const std::vector<int> kept = ard.dynamic_kept();
    REQUIRE(kept.size() == 20);  // p = 0.5: period 2
    CHECK(ip1.active_outputs() == kept);
    CHECK(ip2.active_inputs() == kept);
    // Reference: the dense net, then the same units zeroed and the rest scaled by 2.
    dense->forward(ctx);
    Tensor& h = dense->blob("h");
    std::vector<float> mask(40, 0.0f);
    for (int u : kept) mask[size_t(u)] = 2.0f;
    for (int s = 0; s < 8; ++s)
      for (int u = 0; u < 40; ++u) h.mutable_data()[s * 40 + u] *= mask[size_t(u)];
    dense->layer_by_name("ip2")->forward({&h}, {&dense->blob("y")}, ctx);
    // Tolerances (support/tolerance.hpp) for the chain y = W2 (mask relu(W1 x + b1)) + b2: ReLU and
    // the mask do not enlarge an error, so the chain's error is within c (K1 + K2) eps of the
    // magnitude |W2| (mask (|W1| |x| + |b1|)) + |b2|, K1 = 30 + 1 and K2 = 40 + 1 terms.
    const float *w1 = ip1.blobs()[0]->data(), *b1 = ip1.blobs()[1]->data();
    const float *w2 = ip2.blobs()[0]->data(), *b2 = ip2.blobs()[1]->data();
    const float* x = sparse->blob("x").data();
    std::vector<double> h_mag(8 * 40), y_tol(8 * 7);
    for (int s = 0; s < 8; ++s)
      for (int u = 0; u < 40; ++u) {
        double m = std::fabs(b1[u]);
        for (int k = 0; k < 30; ++k) m += std::fabs(double(w1[u * 30 + k]) * x[s * 30 + k]);
        h_mag[size_t(s * 40 + u)] = mask[size_t(u)] * m;
      }
    for (int s = 0; s < 8; ++s)
      for (int o = 0; o < 7; ++o) {
        double m = std::fabs(b2[o]);
        for (int u = 0; u < 40; ++u) m += std::fabs(w2[o * 40 + u]) * h_mag[size_t(s * 40 + u)];
        y_tol[size_t(s * 7 + o)] = test::reduction_tolerance(31 + 41, m);
      }
    const Tensor &ys = sparse->blob("y"), &yd = dense->blob("y");
    test::check_within("y", ys.count(), ys.data(), yd.data(), y_tol);
    // Gradients of L = sum(y): through the shrunk GEMMs vs dense with the mask applied by hand.
    std::fill(sparse->blob("y").mutable_diff(), sparse->blob("y").mutable_diff() + sparse->blob("y").count(), 1.0f);
    for (size_t i = sparse->layers().size(); i-- > 1;)
      sparse->layers()[i]->backward({&sparse->blob(sparse->layers()[i]->param().top(0))},
                                    {true}, {&sparse->blob(sparse->layers()[i]->param().bottom(0))}, ctx);
    std::vector<float> dw1(ip1.blobs()[0]->diff(), ip1.blobs()[0]->diff() + ip1.blobs()[0]->count());
    std::vector<float> dw2(ip2.blobs()[0]->diff(), ip2.blobs()[0]->diff() + ip2.blobs()[0]->count());
    sparse->zero_param_diffs();
    Layer& dip2 = *dense->layer_by_name("ip2");
    Layer& drelu = *dense->layer_by_name("relu");
    Layer& dip1 = *dense->layer_by_name("ip1");
    std::fill(dense->blob("y").mutable_diff(), dense->blob("y").mutable_diff() + dense->blob("y").count(), 1.0f);
    dip2.backward({&dense->blob("y")}, {true}, {&h}, ctx);
    for (int s = 0; s < 8; ++s)
      for (int u = 0; u < 40; ++u) h.mutable_diff()[s * 40 + u] *= mask[size_t(u)];
    // ReLU backward needs the pre-mask activations: recompute ip1 -> relu.
    dip1.forward({&dense->blob("x")}, {&h}, ctx);
    std::vector<float> grad(h.diff(), h.diff() + h.count());
    drelu.forward({&h}, {&h}, ctx);
    std::copy(grad.begin(), grad.end(), h.mutable_diff());
    drelu.backward({&h}, {true}, {&h}, ctx);
    dip1.backward({&h}, {false}, {&dense->blob("x")}, ctx);
    // dW2[o, u] = sum_s h[s, u] (dY = 1): 8 terms, each carrying h's error (31 terms).
    // dW1[u, k] = sum_s dh[s, u] x[s, k], dh = mask relu' W2^T 1: 8 terms over 7 terms.
    std::vector<double> dw1_tol(dw1.size()), dw2_tol(dw2.size());
    for (int o = 0; o < 7; ++o)
      for (int u = 0; u < 40; ++u) {
        double m = 0;
        for (int s = 0; s < 8; ++s) m += h_mag[size_t(s * 40 + u)];
        dw2_tol[size_t(o * 40 + u)] = test::reduction_tolerance(8 + 31, m);
      }
    for (int u = 0; u < 40; ++u) {
      double dh = 0;
      for (int o = 0; o < 7; ++o) dh += std::fabs(w2[o * 40 + u]);
      for (int k = 0; k < 30; ++k) {
        double m = 0;
        for (int s = 0; s < 8; ++s) m += mask[size_t(u)] * dh * std::fabs(x[s * 30 + k]);
        dw1_tol[size_t(u * 30 + k)] = test::reduction_tolerance(8 + 7, m);
      }
    }
    test::check_within("dw1", int64_t(dw1.size()), dw1, ip1.blobs()[0]->diff(), dw1_tol);
    test::check_within("dw2", int64_t(dw2.size()), dw2, ip2.blobs()[0]->diff(), dw2_tol);
  }
  // TEST: no pattern, full GEMMs again.
  sparse->forward(ctx_at(TEST, 0));
  CHECK(ip1.active_outputs().empty());
  CHECK(ip2.active_inputs().empty());
}

TEST_CASE("ApproxDropout errors", "[layer][ard][errors]") {
  auto bad = create_layer(ard_param(1.0f));
  Tensor x({2, 10}), y;
  std::mt19937_64 rng(1);
  CHECK_THROWS_WITH(bad->setup({&x}, {&y}, rng), Catch::Contains("dropout_ratio must be in [0, 1)"));
  auto far = create_layer(ard_param(0.97f));
  CHECK_THROWS_WITH(far->setup({&x}, {&y}, rng), Catch::Contains("not reachable"));
}
