// The cross-device harness ([gpu]): every CUDA op, the ReLU / InnerProduct / SoftmaxWithLoss layers
// (forward and backward) and one SGD update run on the CPU (the oracle) and on CUDA device 0 from
// the same inputs, and the results are compared with an absolute + relative tolerance, printing the
// first mismatches (llm.c's validate_result). Without a CUDA device each [gpu] test reports
// "skipped: no CUDA device: <reason>" as a warning and returns; scripts/gpu_check.sh fails on that.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

#include "runtime/device.hpp"
#include "support/gradient_checker.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/ops.hpp"
#include "runtime/rng.hpp"
#include "runtime/storage.hpp"
#include "runtime/update_rule.hpp"

using namespace dsg;

namespace {

const Device kGpu = Device::cuda(0);

// True (after a WARN) when there is no CUDA device to compare against.
bool skip_without_gpu() {
  std::string reason;
  if (cuda_device_count(&reason) > 0) return false;
  const std::string prefix = "no CUDA device: ";
  if (reason.rfind(prefix, 0) == 0) reason = reason.substr(prefix.size());
  WARN("skipped: no CUDA device: " << reason);
  return true;
}

// Compares device results with the CPU's: |gpu - cpu| <= atol + rtol |cpu|; prints the first five
// mismatches and checks that there are none.
void validate(const std::string& what, const float* gpu, const float* cpu, int64_t n, double atol = 1e-5,
              double rtol = 1e-4) {
  int64_t bad = 0;
  std::ostringstream first;
  for (int64_t i = 0; i < n; ++i) {
    const double d = std::fabs(double(gpu[i]) - cpu[i]);
    if (d <= atol + rtol * std::fabs(cpu[i]) && std::isfinite(gpu[i]) == std::isfinite(cpu[i])) continue;
    if (bad++ < 5) first << "  [" << i << "] cpu " << cpu[i] << " gpu " << gpu[i] << "\n";
  }
  INFO(what << ": " << bad << " of " << n << " differ\n" << first.str());
  CHECK(bad == 0);
}

// Runs `fn` on the CPU and on the GPU, each on its own copy of `inputs` (as tensors), then compares
// every tensor.
using OpCase = std::function<void(const DeviceOps&, const Device&, std::vector<Tensor>&)>;
void compare_op(const std::string& name, const std::vector<std::vector<float>>& inputs, const OpCase& fn) {
  std::vector<Tensor> cpu, gpu;
  for (const auto& v : inputs) {
    cpu.emplace_back(std::vector<int>{int(v.size())});
    gpu.emplace_back(std::vector<int>{int(v.size())});
    std::copy(v.begin(), v.end(), cpu.back().mutable_data());
    std::copy(v.begin(), v.end(), gpu.back().mutable_data());
  }
  fn(cpu_ops(), Device::cpu(), cpu);
  fn(ops_for(kGpu), kGpu, gpu);
  for (size_t i = 0; i < cpu.size(); ++i)
    validate(name + " buffer " + std::to_string(i), gpu[i].data(), cpu[i].data(), cpu[i].count());
}

// Host and device views of a read-only byte or int list.
template <class T>
struct List {
  explicit List(const std::vector<T>& v) : storage(v.size(), sizeof(T)) {
    std::copy(v.begin(), v.end(), storage.mutable_host<T>());
  }
  const T* on(const Device& d) const { return d.type == DeviceType::CPU ? storage.host<T>() : storage.device<T>(d.index); }
  Storage storage;
};

}  // namespace

TEST_CASE("CUDA ops match the CPU ops", "[gpu][ops]") {
  if (skip_without_gpu()) return;
  const int M = 33, N = 17, K = 45;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      compare_op("gemm", {test::uniform_vector(size_t(M) * K, 1), test::uniform_vector(size_t(K) * N, 2), test::uniform_vector(size_t(M) * (N + 3), 3)},
                 [&](const DeviceOps& ops, const Device& d, std::vector<Tensor>& t) {
                   ops.gemm(ta, tb, M, N, K, 0.5f, t[0].data(d), ta ? M : K, t[1].data(d), tb ? K : N, 1.0f,
                            t[2].mutable_data(d), N + 3);
                 });
  const int64_t n = 5000;
  compare_op("elementwise", {test::uniform_vector(n, 4), test::uniform_vector(n, 5), test::uniform_vector(n, 6)},
             [&](const DeviceOps& ops, const Device& d, std::vector<Tensor>& t) {
               ops.axpy(n, 0.3f, t[0].data(d), t[1].mutable_data(d));
               ops.scale(n, -1.5f, t[1].mutable_data(d));
               ops.relu_forward(n, 0.1f, t[1].data(d), t[2].mutable_data(d));
               ops.relu_backward(n, 0.1f, t[2].data(d), t[0].data(d), t[1].mutable_data(d));
             });
  const List<int> rows({5, 0, 9}), cols({2, 7, 3});
  compare_op("gather/scatter", {test::uniform_vector(10 * 8, 7), std::vector<float>(3 * 8), std::vector<float>(10 * 3), test::uniform_vector(80, 8)},
             [&](const DeviceOps& ops, const Device& d, std::vector<Tensor>& t) {
               ops.gather_rows(3, 8, t[0].data(d), 8, rows.on(d), t[1].mutable_data(d));
               ops.gather_cols(10, 3, t[0].data(d), 8, cols.on(d), t[2].mutable_data(d));
               ops.scatter_rows(3, 8, t[1].data(d), rows.on(d), t[3].mutable_data(d), 8, true);
               ops.scatter_cols(10, 3, t[2].data(d), cols.on(d), t[3].mutable_data(d), 8, false);
             });
  compare_op("bias", {test::uniform_vector(12, 9), std::vector<float>(40 * 12), test::uniform_vector(12, 10)},
             [&](const DeviceOps& ops, const Device& d, std::vector<Tensor>& t) {
               ops.broadcast_rows(40, 12, t[0].data(d), t[1].mutable_data(d));
               ops.column_sums(40, 12, t[1].data(d), t[2].mutable_data(d));
             });
  std::vector<uint8_t> mask(n), codes(n);
  for (int64_t i = 0; i < n; ++i) mask[size_t(i)] = uint8_t(i % 3 != 1), codes[size_t(i)] = uint8_t(i % 4);
  const List<uint8_t> m(mask), c(codes);
  compare_op("masks and codes", {test::uniform_vector(n, 11), test::uniform_vector(4, 12), std::vector<float>(n)},
             [&](const DeviceOps& ops, const Device& d, std::vector<Tensor>& t) {
               ops.apply_mask(n, m.on(d), t[0].mutable_data(d));
               ops.lookup(n, c.on(d), t[1].data(d), 4, t[2].mutable_data(d));
               ops.scale_by_code(n, c.on(d), t[1].data(d), 4, t[0].mutable_data(d));
             });
  compare_op("uniform", {std::vector<float>(1001)}, [&](const DeviceOps& ops, const Device&, std::vector<Tensor>& t) {
    ops.uniform(1001, 7, counter_stream(5, 3), t[0].mutable_data(ops.device()));
  });
  compare_op("solver steps", {test::uniform_vector(n, 13), test::uniform_vector(n, 14), test::uniform_vector(n, 15), test::uniform_vector(n, 16), test::uniform_vector(n, 17)},
             [&](const DeviceOps& ops, const Device& d, std::vector<Tensor>& t) {
               ops.l2_decay(n, 0.01f, t[0].data(d), t[1].mutable_data(d));
               ops.l1_decay(n, 0.01f, t[0].data(d), t[1].mutable_data(d));
               ops.sgd_step(n, 0.9f, 0.1f, t[1].mutable_data(d), t[2].mutable_data(d));
               ops.nesterov_step(n, 0.9f, 0.1f, t[1].mutable_data(d), t[2].mutable_data(d));
               ops.adam_step(n, 0.9f, 0.999f, 1e-8f, 0.01f, t[1].mutable_data(d), t[3].mutable_data(d),
                             t[4].mutable_data(d));
               ops.sgd_l2_update(n, 0.9f, 0.1f, 0.01f, t[0].mutable_data(d), t[1].mutable_data(d), t[2].mutable_data(d));
             });
  // Reductions come back to the host.
  Tensor x({int(n)}), y({int(n)});
  const std::vector<float> xv = test::uniform_vector(n, 18), yv = test::uniform_vector(n, 19);
  std::copy(xv.begin(), xv.end(), x.mutable_data());
  std::copy(yv.begin(), yv.end(), y.mutable_data());
  const DeviceOps& g = ops_for(kGpu);
  const DeviceOps& h = cpu_ops();
  CHECK(g.sum(n, x.data(kGpu)) == Approx(h.sum(n, x.data())).epsilon(1e-9));
  CHECK(g.sumsq(n, x.data(kGpu)) == Approx(h.sumsq(n, x.data())).epsilon(1e-9));
  CHECK(g.asum(n, x.data(kGpu)) == Approx(h.asum(n, x.data())).epsilon(1e-9));
  CHECK(g.dot(n, x.data(kGpu), y.data(kGpu)) == Approx(h.dot(n, x.data(), y.data())).epsilon(1e-9));
  std::vector<double> gs(4), hs(4);
  g.sum_by_code(n, c.on(kGpu), x.data(kGpu), 4, gs.data());
  h.sum_by_code(n, c.on(Device::cpu()), x.data(), 4, hs.data());
  for (int k = 0; k < 4; ++k) CHECK(gs[size_t(k)] == Approx(hs[size_t(k)]).epsilon(1e-9));
}

namespace {

// One layer on both devices: same parameters (same seed), same inputs; forward, then backward from
// the same top diff; compares tops, bottom diffs and parameter diffs.
void compare_layer(const LayerParameter& lp, const std::vector<std::vector<int>>& shapes,
                   const std::vector<std::vector<float>>& inputs, int num_tops) {
  struct Side {
    std::unique_ptr<Layer> layer;
    std::vector<Tensor> bottoms, tops;
    TensorVec bottom, top;
  } side[2];
  const Device devices[2] = {Device::cpu(), kGpu};
  float losses[2] = {0, 0};
  for (int s = 0; s < 2; ++s) {
    Side& d = side[s];
    d.layer = create_layer(lp);
    for (size_t i = 0; i < shapes.size(); ++i) {
      d.bottoms.emplace_back(shapes[i]);
      std::copy(inputs[i].begin(), inputs[i].end(), d.bottoms.back().mutable_data());
    }
    d.tops.resize(size_t(num_tops));
    for (auto& t : d.bottoms) d.bottom.push_back(&t);
    for (auto& t : d.tops) d.top.push_back(&t);
    std::mt19937_64 rng(11);
    d.layer->setup(d.bottom, d.top, rng);
    REQUIRE(d.layer->supports(DeviceType::CUDA, LayerMode::kDense));
    Context ctx;
    ctx.device = devices[s];
    losses[s] = d.layer->forward(d.bottom, d.top, ctx);
    for (size_t t = 0; t < d.tops.size(); ++t) {
      const std::vector<float> dy = test::uniform_vector(size_t(d.tops[t].count()), 20 + uint32_t(t));
      std::copy(dy.begin(), dy.end(), d.tops[t].mutable_diff());
    }
    std::vector<bool> down(d.bottoms.size(), false);
    down[0] = true;
    d.layer->backward(d.top, down, d.bottom, ctx);
  }
  const std::string name = lp.type();
  CHECK(losses[1] == Approx(losses[0]).epsilon(1e-5));
  for (int t = 0; t < num_tops; ++t)
    validate(name + " top " + std::to_string(t), side[1].tops[size_t(t)].data(), side[0].tops[size_t(t)].data(),
             side[0].tops[size_t(t)].count());
  validate(name + " bottom diff", side[1].bottoms[0].diff(), side[0].bottoms[0].diff(), side[0].bottoms[0].count());
  for (size_t b = 0; b < side[0].layer->blobs().size(); ++b)
    validate(name + " param diff " + std::to_string(b), side[1].layer->blobs()[b]->diff(),
             side[0].layer->blobs()[b]->diff(), side[0].layer->blobs()[b]->count());
}

}  // namespace

TEST_CASE("ReLU, InnerProduct and SoftmaxWithLoss agree on CPU and CUDA", "[gpu][layers]") {
  if (skip_without_gpu()) return;
  LayerParameter relu;
  relu.set_name("relu");
  relu.set_type("ReLU");
  relu.mutable_relu_param()->set_negative_slope(0.05f);
  compare_layer(relu, {{4, 3, 5}}, {test::uniform_vector(60, 30)}, 1);

  for (bool transpose : {false, true}) {
    LayerParameter ip;
    ip.set_name("ip");
    ip.set_type("InnerProduct");
    ip.mutable_inner_product_param()->set_num_output(7);
    ip.mutable_inner_product_param()->set_transpose(transpose);
    ip.mutable_inner_product_param()->mutable_weight_filler()->set_type("gaussian");
    ip.mutable_inner_product_param()->mutable_bias_filler()->set_type("gaussian");
    compare_layer(ip, {{6, 2, 5}}, {test::uniform_vector(60, 31)}, 1);
  }

  LayerParameter loss;
  loss.set_name("loss");
  loss.set_type("SoftmaxWithLoss");
  loss.mutable_loss_param()->set_ignore_label(2);
  std::vector<float> labels{0, 1, 2, 3, 4, 0, 1, 2};
  compare_layer(loss, {{8, 5}, {8}}, {test::uniform_vector(40, 32), labels}, 2);
}

TEST_CASE("one SGD update with L2 decay agrees on CPU and CUDA", "[gpu][solver]") {
  if (skip_without_gpu()) return;
  SolverParameter sp;
  sp.set_type("SGD");
  sp.set_momentum(0.9f);
  const std::vector<float> w = test::uniform_vector(300, 40), g = test::uniform_vector(300, 41);
  Tensor tc({300}), tg({300});
  for (Tensor* t : {&tc, &tg}) {
    std::copy(w.begin(), w.end(), t->mutable_data());
    std::copy(g.begin(), g.end(), t->mutable_diff());
  }
  auto cpu_rule = update_rule_registry().create("SGD", sp);
  auto gpu_rule = update_rule_registry().create("SGD", sp);
  cpu_rule->init({{&tc, "p", 0, 1, 1}}, Device::cpu());
  gpu_rule->init({{&tg, "p", 0, 1, 1}}, kGpu);
  for (int step = 0; step < 2; ++step) {
    REQUIRE(cpu_rule->fused_l2_update(0, tc, 0.1f, 0.005f));
    REQUIRE(gpu_rule->fused_l2_update(0, tg, 0.1f, 0.005f));
    std::copy(g.begin(), g.end(), tc.mutable_diff());
    std::copy(g.begin(), g.end(), tg.mutable_diff());
    cpu_rule->compute_step(0, tc, 0.1f, step);
    gpu_rule->compute_step(0, tg, 0.1f, step);
  }
  validate("SGD weights", tg.data(), tc.data(), 300);
  validate("SGD step", tg.diff(), tc.diff(), 300);
}

TEST_CASE("asking a CPU-only layer or a missing device for CUDA is a clear error", "[device]") {
  LayerParameter lp;
  lp.set_name("tanh");
  lp.set_type("TanH");
  auto layer = create_layer(lp);
  Tensor x({2, 3}), y;
  TensorVec bottom{&x}, top{&y};
  std::mt19937_64 rng(1);
  layer->setup(bottom, top, rng);
  Context ctx;
  ctx.device = kGpu;
  CHECK_THROWS_WITH(layer->forward(bottom, top, ctx), Catch::Contains("no implementation for device cuda:0"));

  LayerParameter rp;
  rp.set_name("relu");
  rp.set_type("ReLU");
  auto relu = create_layer(rp);
  relu->setup(bottom, top, rng);
  CHECK(relu->supports(DeviceType::CUDA, LayerMode::kDense) == cuda_built());
  CHECK_FALSE(relu->supports(DeviceType::CUDA, LayerMode::kActiveOutputs));
  std::string reason;
  if (cuda_device_count(&reason) == 0) CHECK_THROWS_AS(relu->forward(bottom, top, ctx), Error);
}
