// Trained quantization: the k-means pieces (linear initialisation, Lloyd's iterations, the
// centroid gradient of Deep Compression's worked example), TTQ's step on the digest's vector
// (including the minus sign of dL/dW_n), and end-to-end through the Solver: prune -> quantize ->
// fine-tune keeps every weight on its codebook and every pruned weight at zero, snapshots carry
// the quantizer state and a resumed run continues bit-identically.
// (sparsity/kmeans_quantizer.cpp, sparsity/ttq_quantizer.cpp.)
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <random>
#include <set>
#include <vector>

#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/model_file.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"
#include "sparsity/kmeans.hpp"
#include "sparsity/quantizer.hpp"
#include "support/solver_configs.hpp"

using namespace dsg;
using test::schedule;
using test::TempDir;
using test::with_quant;
using test::with_sparsity;

namespace {

LoadedConfig load(const TempDir& dir, const std::string& text) { return test::load_config(dir, text); }
using test::cpu_ctx;
std::string error_of(const TempDir& dir, const std::string& text) { return test::setup_error(dir, text); }

// An InnerProduct layer with `outputs` x `inputs` weights, set up on its own tensors.
struct Built {
  std::unique_ptr<Layer> layer;
  std::unique_ptr<Tensor> bottom, top;
};
Built inner_product(int outputs, int inputs) {
  LayerParameter p;
  p.set_name("ip");
  p.set_type("InnerProduct");
  p.mutable_inner_product_param()->set_num_output(outputs);
  p.mutable_inner_product_param()->mutable_weight_filler()->set_type("gaussian");
  p.mutable_inner_product_param()->mutable_weight_filler()->set_std(0.1f);
  Built b;
  b.layer = create_layer(p);
  b.bottom = std::make_unique<Tensor>(std::vector<int>{1, inputs});
  b.top = std::make_unique<Tensor>();
  std::mt19937_64 rng(3);
  b.layer->setup({b.bottom.get()}, {b.top.get()}, rng);
  return b;
}

}  // namespace

TEST_CASE("k-means linear initialisation spans [min, max]", "[quantization]") {
  std::vector<float> w = {-1.0f, 0.2f, 1.0f, 0.5f, -0.3f};
  std::vector<float> c = kmeans_init(w, 4, QuantizationParameter::LINEAR, 0);
  REQUIRE(c.size() == 4);
  CHECK(c[0] == Approx(-1.0));
  CHECK(c[1] == Approx(-1.0 / 3));
  CHECK(c[2] == Approx(1.0 / 3));
  CHECK(c[3] == Approx(1.0));
  // Density: the quantiles; Forgy: actual samples.
  std::vector<float> d = kmeans_init(w, 2, QuantizationParameter::DENSITY, 0);
  CHECK(d == std::vector<float>{-0.3f, 0.5f});
  std::vector<float> r = kmeans_init(w, 3, QuantizationParameter::RANDOM, 11);
  for (float v : r) CHECK(std::find(w.begin(), w.end(), v) != w.end());
  CHECK(std::set<float>(r.begin(), r.end()).size() == 3);
}

TEST_CASE("k-means finds separated clusters and assigns every value to its nearest centroid", "[quantization]") {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> noise(0.0f, 0.02f);
  const float means[3] = {-0.5f, 0.1f, 0.8f};
  std::vector<float> v;
  for (int i = 0; i < 3000; ++i) v.push_back(means[i % 3] + noise(rng));
  std::vector<float> c = kmeans_init(v, 3, QuantizationParameter::DENSITY, 0);
  std::vector<int> a = kmeans_1d(v, c, 100);
  std::vector<float> sorted = c;
  std::sort(sorted.begin(), sorted.end());
  for (int k = 0; k < 3; ++k) CHECK(sorted[size_t(k)] == Approx(means[k]).margin(0.01));
  for (size_t i = 0; i < v.size(); ++i) {
    float mine = std::fabs(v[i] - c[size_t(a[i])]);
    for (float other : c) CHECK(mine <= std::fabs(v[i] - other) + 1e-6f);
  }
  // Each centroid is the mean of its members (a fixed point of Lloyd's iteration).
  for (size_t k = 0; k < c.size(); ++k) {
    double s = 0;
    int n = 0;
    for (size_t i = 0; i < v.size(); ++i)
      if (a[i] == int(k)) s += v[i], ++n;
    REQUIRE(n > 0);
    CHECK(c[k] == Approx(s / n).epsilon(1e-5));
  }
}

TEST_CASE("centroid gradient: Deep Compression's worked example", "[quantization]") {
  // W = [[2.09, -0.98], [1.48, 0.09]], I = [[3, 0], [2, 1]], G = [[0.1, 0.2], [0.3, 0.4]].
  std::vector<uint8_t> codes = {3, 0, 2, 1};
  std::vector<float> grads = {0.1f, 0.2f, 0.3f, 0.4f};
  std::vector<double> dc = cluster_gradient_sums(codes, grads.data(), 4);
  CHECK(dc[0] == Approx(0.2));
  CHECK(dc[1] == Approx(0.4));
  CHECK(dc[2] == Approx(0.3));
  CHECK(dc[3] == Approx(0.1));
}

TEST_CASE("k-means quantizer: codes, shared gradients and the centroid update", "[quantization]") {
  Built b = inner_product(4, 16);
  Tensor& w = *b.layer->blobs()[0];
  float* d = w.mutable_data();
  for (int i = 0; i < 64; ++i) d[i] = (i % 4 == 0) ? 0.0f : 0.01f * (float((i * 37) % 23 - 11) + 0.5f);  // 16 pruned zeros
  QuantizationParameter qp;
  qp.set_bits(2);  // 3 shared values + zero
  auto q = quantizer_registry().create("kmeans", qp, *b.layer);
  q->validate();
  q->quantize();
  REQUIRE(q->codebook().size() == 4);
  CHECK(q->codebook()[0] == 0.0f);
  for (int i = 0; i < 64; ++i) {
    CHECK(d[i] == q->codebook()[q->codes()[size_t(i)]]);
    CHECK((q->codes()[size_t(i)] == 0) == (i % 4 == 0));
  }
  // Every member of a cluster receives the cluster's summed gradient; pruned ones receive zero.
  float* g = w.mutable_diff();
  for (int i = 0; i < 64; ++i) g[i] = 0.001f * float(i);
  std::vector<double> sums = cluster_gradient_sums(q->codes(), g, 4);
  std::vector<float> before = q->codebook();
  q->before_update(0.1f);
  for (int i = 0; i < 64; ++i) CHECK(g[i] == Approx(i % 4 == 0 ? 0.0 : sums[q->codes()[size_t(i)]]));
  // Plain SGD step with the shared gradient, then projection: C_k -= lr * dC_k.
  for (int i = 0; i < 64; ++i) d[i] -= 0.1f * g[i];
  q->after_update();
  for (size_t k = 1; k < 4; ++k) CHECK(q->codebook()[k] == Approx(before[k] - 0.1 * sums[k]).margin(1e-6));
  for (int i = 0; i < 64; ++i) CHECK(d[i] == q->codebook()[q->codes()[size_t(i)]]);
  CHECK(q->codebook()[0] == 0.0f);
}

TEST_CASE("TTQ step on the digest's vector, including the sign of dL/dW_n", "[quantization]") {
  Built b = inner_product(1, 4);
  Tensor& w = *b.layer->blobs()[0];
  QuantizationParameter qp;
  qp.set_method(QuantizationParameter::TTQ);
  qp.set_threshold(0.05f);
  auto q = quantizer_registry().create("ttq", qp, *b.layer);
  q->validate();
  // State: W_p = 1.2, W_n = 0.8, latent w~ = [0.5, -0.02, -0.9, 0.01] (delta = 0.045).
  QuantizerState s;
  s.set_layer("ip");
  s.set_method(QuantizationParameter::TTQ);
  s.set_active(true);
  for (float c : {0.0f, 1.2f, -0.8f}) s.add_codebook(c);
  s.set_codes(std::string("\x01\x00\x02\x00", 4));
  for (float v : {0.5f, -0.02f, -0.9f, 0.01f}) s.mutable_latent()->add_data(v);
  q->load(s);
  const float* d = w.data();
  CHECK(std::vector<float>(d, d + 4) == std::vector<float>{1.2f, 0.0f, -0.8f, 0.0f});
  float* g = w.mutable_diff();
  for (int i = 0; i < 4; ++i) g[i] = float(i + 1);  // upstream g = [1, 2, 3, 4]
  q->before_update(0.1f);
  // dL/dw~ = [1.2, 2, 2.4, 4]; the blob now holds the latent weights for the solver.
  CHECK(g[0] == Approx(1.2));
  CHECK(g[1] == Approx(2.0));
  CHECK(g[2] == Approx(2.4));
  CHECK(g[3] == Approx(4.0));
  CHECK(std::vector<float>(d, d + 4) == std::vector<float>{0.5f, -0.02f, -0.9f, 0.01f});
  q->after_update();  // (no solver step: latent unchanged)
  // dL/dW_p = 1 -> W_p = 1.2 - 0.1; dL/dW_n = -3 -> W_n = 0.8 + 0.3 (grows: -W_n moves down, as g > 0 asks).
  CHECK(q->codebook()[1] == Approx(1.1));
  CHECK(q->codebook()[2] == Approx(-1.1));
  CHECK(d[0] == Approx(1.1));
  CHECK(d[2] == Approx(-1.1));
  CHECK(d[1] == 0.0f);
}

TEST_CASE("TTQ ternarises from a trained layer with scales from the weights", "[quantization]") {
  Built b = inner_product(8, 32);
  Tensor& w = *b.layer->blobs()[0];
  QuantizationParameter qp;
  qp.set_method(QuantizationParameter::TTQ);
  qp.set_threshold(0.3f);
  auto q = quantizer_registry().create("ttq", qp, *b.layer);
  std::vector<float> latent(w.data(), w.data() + w.count());
  float m = 0;
  for (float v : latent) m = std::max(m, std::fabs(v));
  q->quantize();
  std::set<float> values(w.data(), w.data() + w.count());
  CHECK(values.size() == 3);
  for (int64_t i = 0; i < w.count(); ++i) {
    float x = latent[size_t(i)], y = w.data()[i];
    if (x > 0.3f * m) CHECK(y > 0);
    else if (x < -0.3f * m) CHECK(y < 0);
    else CHECK(y == 0.0f);
  }
}

TEST_CASE("prune -> quantize -> fine-tune keeps weights on the codebook; resume is exact", "[quantization]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text = test::tiny_mlp_solver(
      dir.path().string(), 120,
      "snapshot: 90\n" + schedule("phase { mode: PRUNE start_iter: 30 } "
                                  "phase { name: \"q\" mode: QUANTIZE start_iter: 60 lr_mult: 0.1 }"));
  text = with_sparsity(text, "ip1", "policy: \"magnitude\" target_sparsity: 0.8");
  text = with_quant(text, "ip1", "bits: 3");
  text = with_quant(text, "ip2", "bits: 4");
  LoadedConfig c = load(dir, text);
  Solver full(c.solver, c.net_locations, cpu_ctx(7), dir.file("full"));
  install_sparsity(full);
  full.solve();
  const auto& qs = install_sparsity(full).quantizers();
  REQUIRE(qs.size() == 2);
  const Tensor& w1 = *qs[0]->layer().blobs()[0];
  std::set<float> distinct(w1.data(), w1.data() + w1.count());
  CHECK(distinct.size() <= 8);  // 7 shared values + zero
  CHECK(distinct.count(0.0f) == 1);
  int64_t zeros = 0;
  for (int64_t i = 0; i < w1.count(); ++i) zeros += w1.data()[i] == 0.0f;
  CHECK(double(zeros) / double(w1.count()) >= 0.8 - 1e-3);
  const Tensor& w2 = *qs[1]->layer().blobs()[0];
  for (int64_t i = 0; i < w2.count(); ++i) CHECK(w2.data()[i] == qs[1]->codebook()[qs[1]->codes()[size_t(i)]]);
  // The quantized model still classifies the learnable data.
  TestReport r = full.test();
  float acc = 0;
  for (const auto& o : r.outputs)
    if (o.first == "accuracy") acc = o.second;
  CHECK(acc > 0.9f);

  // The snapshot holds the quantizer state; resuming reproduces the remaining losses exactly.
  ModelFile model = read_model_file(dir.file("full_iter_90.dsgmodel"));
  REQUIRE(model.quantizer_size() == 2);
  CHECK(model.quantizer(0).codebook_size() == 8);
  Solver resumed(c.solver, c.net_locations, cpu_ctx(7), dir.file("resumed"));
  install_sparsity(resumed);
  resumed.restore(dir.file("full_iter_90.dsgmodel"));
  resumed.solve();
  std::vector<float> tail(full.losses().begin() + 90, full.losses().end());
  CHECK(resumed.losses() == tail);
  CHECK(install_sparsity(resumed).quantizers()[0]->codebook() == qs[0]->codebook());
}

TEST_CASE("TTQ trains end to end and leaves the first and last weight layers full precision", "[quantization]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text = test::tiny_mlp_solver(dir.path().string(), 100,
                                           schedule("phase { mode: QUANTIZE start_iter: 40 lr_mult: 0.2 }"));
  // ip1 is the first weight layer: skipped unless forced; ip2 (last) stays full precision.
  CHECK_THAT(error_of(dir, with_quant(with_quant(text, "ip1", "method: TTQ"), "ip2", "method: TTQ")),
             Catch::Contains("no layer has a sparsity_param or quant_param"));
  LoadedConfig c = load(dir, with_quant(text, "ip1", "method: TTQ force: true threshold: 0.1"));
  Solver s(c.solver, c.net_locations, cpu_ctx(7), dir.file("ttq"));
  install_sparsity(s);
  s.solve();
  REQUIRE(install_sparsity(s).quantizers().size() == 1);
  const Tensor& w = *install_sparsity(s).quantizers()[0]->layer().blobs()[0];
  std::set<float> values(w.data(), w.data() + w.count());
  CHECK(values.size() == 3);
  TestReport r = s.test();
  float acc = 0;
  for (const auto& o : r.outputs)
    if (o.first == "accuracy") acc = o.second;
  CHECK(acc > 0.9f);
}

TEST_CASE("bad quantization configurations give clear errors", "[quantization]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  std::string base = test::tiny_mlp_solver(dir.path().string(), 50);
  auto sched = [&](const std::string& phases) { return test::tiny_mlp_solver(dir.path().string(), 50, schedule(phases)); };
  CHECK_THAT(error_of(dir, with_quant(base, "ip2", "bits: 4")), Catch::Contains("has a quant_param but the solver has no schedule"));
  CHECK_THAT(error_of(dir, with_quant(sched("phase { mode: HOLD start_iter: 0 }"), "ip2", "bits: 4")),
             Catch::Contains("quantizer of layer 'ip2' never fires"));
  CHECK_THAT(error_of(dir, with_quant(sched("phase { mode: QUANTIZE start_iter: 10 }"), "ip2", "bits: 9")),
             Catch::Contains("bits must be 1..8"));
  CHECK_THAT(error_of(dir, with_quant(sched("phase { mode: QUANTIZE start_iter: 10 }"), "relu1", "bits: 4")),
             Catch::Contains("has no weights to quantize"));
  std::string after = with_sparsity(
      with_quant(sched("phase { mode: QUANTIZE start_iter: 10 } phase { mode: PRUNE start_iter: 20 }"), "ip2", "bits: 4"),
      "ip1", "policy: \"magnitude\" target_sparsity: 0.5");
  CHECK_THAT(error_of(dir, after), Catch::Contains("comes after a QUANTIZE phase"));
}
