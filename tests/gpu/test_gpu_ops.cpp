// The cross-device ops harness ([gpu], in dsg_gpu_tests): every CUDA op and one SGD update run on the
// CPU (the oracle) and on CUDA device 0 from the same inputs, and the results are compared with an
// absolute + relative tolerance, printing the first mismatches (llm.c's validate_result). The
// layers are compared by tests/gpu/test_gpu_layers.cpp. Without a CUDA device the binary exits
// with CTest's skip code (tests/gpu/main.cpp).
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
