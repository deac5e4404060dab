// Training on a device, checked on the CPU: a SimulatedDevice (runtime/simulated_device.hpp) gives
// the solver a "cuda:0" whose memory is separate host buffers, so every host<->device copy is
// counted as on a GPU. Covers the transfer check (Context::check_transfers), the update rules,
// weight decay and clipping on device memory, pruning masks and quantizers on the device, and
// snapshots that move between the CPU and the device.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <string>

#include "datasets/synthetic_data.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/model_file.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"
#include "runtime/simulated_device.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"
#include "support/solver_configs.hpp"

using namespace dsg;

namespace dsg {
namespace {

// A data layer for device tests: a deterministic, learnable batch from the iteration number
// (8 samples of 10 features, 4 classes), written on the host and, on a device, uploaded within its
// own forward (as a real data layer does), so the layers after it find it there.
class SimBatchLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "SimBatch"; }
  int exact_num_bottoms() const override { return 0; }
  int exact_num_tops() const override { return 2; }
  bool is_data_layer() const override { return true; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void reshape(const TensorVec&, const TensorVec& top) override {
    top[0]->reshape({8, 10});
    top[1]->reshape({8});
  }
  void forward_cpu(const TensorVec&, const TensorVec& top, const Context& ctx) override { fill(top, ctx); }
  void forward_cuda(const TensorVec&, const TensorVec& top, const Context& ctx) override {
    fill(top, ctx);
    top[0]->data(ctx.device);  // the upload belongs to the data layer
    top[1]->data(ctx.device);
  }
  void backward_cpu(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}
  void backward_cuda(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}

 private:
  static void fill(const TensorVec& top, const Context& ctx) {
    float* x = top[0]->mutable_data();
    float* y = top[1]->mutable_data();
    for (int n = 0; n < 8; ++n) {
      const int64_t sample = (ctx.iteration * 8 + n) % 64;
      const int label = int(sample % 4);
      for (int f = 0; f < 10; ++f)
        x[n * 10 + f] = 0.3f * std::sin(float(sample * 10 + f)) + (f % 4 == label ? 1.0f : 0.0f);
      y[n] = float(label);
    }
  }
};
DSG_REGISTER_LAYER("SimBatch", SimBatchLayer);

// A pass-through layer with device code. A layer named "peek*" also reads its bottom through the
// host accessor in its device forward, and one named "grad_peek*" reads the top diff on the host
// in its device backward: the mistakes the transfer check exists for.
class PassLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "TestPass"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kElementwise;
    f.zero_preserving = true;
    return f;
  }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override { top[0]->reshape_like(*bottom[0]); }
  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    forward_cuda(bottom, top, ctx);
  }
  void backward_cpu(const TensorVec& top, const std::vector<bool>& down, const TensorVec& bottom,
                    const Context& ctx) override {
    backward_cuda(top, down, bottom, ctx);
  }
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    if (name().rfind("peek", 0) == 0) (void)bottom[0]->data()[0];
    ops_for(ctx.device).copy(bottom[0]->count(), bottom[0]->data(ctx.device), top[0]->mutable_data(ctx.device));
  }
  void backward_cuda(const TensorVec& top, const std::vector<bool>& down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (name().rfind("grad_peek", 0) == 0) (void)top[0]->diff()[0];
    if (down[0]) ops_for(ctx.device).copy(top[0]->count(), top[0]->diff(ctx.device), bottom[0]->mutable_diff(ctx.device));
  }
};
DSG_REGISTER_LAYER("TestPass", PassLayer);

}  // namespace
}  // namespace dsg

namespace {

// A 10-16-4 MLP on SimBatch with a TestPass named `pass` after ip1, and extra solver fields.
std::string mlp_solver(int max_iter, const std::string& pass, const std::string& extra) {
  return "net_param {\n name: \"sim\"\n"
         " layer { name: \"d\" type: \"SimBatch\" top: \"data\" top: \"label\" }\n"
         " layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"data\" top: \"ip1\"\n"
         "   inner_product_param { num_output: 16 weight_filler { type: \"xavier\" } bias_filler { type: \"constant\" value: 0.1 } } }\n"
         " layer { name: \"relu1\" type: \"ReLU\" bottom: \"ip1\" top: \"ip1\" }\n"
         " layer { name: \"" + pass + "\" type: \"TestPass\" bottom: \"ip1\" top: \"h\" }\n"
         " layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"h\" top: \"ip2\"\n"
         "   inner_product_param { num_output: 4 weight_filler { type: \"xavier\" } } }\n"
         " layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip2\" bottom: \"label\" top: \"loss\" }\n"
         "}\n"
         "base_lr: 0.1\n momentum: 0.9\n lr_policy: \"fixed\"\n display: 0\n"
         "max_iter: " + std::to_string(max_iter) + "\n random_seed: 5\n" + extra;
}

Context make_ctx(bool device, bool check = false) {
  Context ctx;
  ctx.seed = 5;
  if (device) ctx.device = Device::cuda(0);
  ctx.check_transfers = check;
  return ctx;
}

// Records the host-bound copies counted so far at the start of every iteration (installed after
// the sparsity controller, so a prune step's reads count towards its own iteration).
class HostCopyRecorder : public TrainingHooks {
 public:
  explicit HostCopyRecorder(std::vector<uint64_t>* out) : out_(out) {}
  void begin_iteration(int) override { out_->push_back(transfer_stats().to_host_count); }

 private:
  std::vector<uint64_t>* out_;
};

struct RunResult {
  std::vector<float> losses;
  uint64_t to_host_in_solve = 0;  // host copies counted during solve()
  std::vector<std::vector<float>> params;  // every learnable parameter, read back at the end
  std::vector<std::vector<uint8_t>> codes;  // every quantizer's codes
};

// Trains `text` (with the sparsity controller) on the CPU or the simulated device; `resume` is a
// snapshot to continue from.
RunResult train(const test::TempDir& dir, const std::string& text, bool device, const std::string& prefix,
                const std::string& resume = "", bool check = true, std::vector<uint64_t>* host_copies = nullptr) {
  LoadedConfig c = test::load_config(dir, text);
  Solver solver(c.solver, c.net_locations, make_ctx(device, check && device), dir.file(prefix));
  SparsityController& sparsity = install_sparsity(solver);
  if (host_copies) solver.add_hooks(std::make_unique<HostCopyRecorder>(host_copies));
  if (!resume.empty()) solver.restore(resume);
  const uint64_t before = transfer_stats().to_host_count;
  solver.solve();
  RunResult r;
  r.to_host_in_solve = transfer_stats().to_host_count - before;
  r.losses = solver.losses();
  for (const auto& p : solver.train_net().learnable_params())
    r.params.emplace_back(p.tensor->data(), p.tensor->data() + p.tensor->count());
  for (const auto& q : sparsity.quantizers()) {
    Quantizer& qq = *q;
    QuantizerState state;
    qq.save(&state);  // syncs codes kept on the device
    r.codes.emplace_back(state.codes().begin(), state.codes().end());
  }
  return r;
}

void check_close(const std::vector<float>& a, const std::vector<float>& b, float tol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("index " << i);
    CHECK(std::fabs(a[i] - b[i]) <= tol * (1.0f + std::fabs(b[i])));
  }
}

void check_same_run(const RunResult& a, const RunResult& b, float tol) {
  check_close(a.losses, b.losses, tol);
  REQUIRE(a.params.size() == b.params.size());
  for (size_t i = 0; i < a.params.size(); ++i) check_close(a.params[i], b.params[i], tol);
  CHECK(a.codes == b.codes);
}

}  // namespace

TEST_CASE("the simulated device keeps device memory apart and counts every copy", "[device_training]") {
  SimulatedDevice sim;
  reset_transfer_stats();
  {
    Tensor t({5});
    t.mutable_data()[2] = 3.0f;
    float* d = t.mutable_data(Device::cuda(0));
    CHECK(transfer_stats().to_device_count == 1);
    ops_for(Device::cuda(0)).scale(5, 2.0f, d);
    CHECK(t.data()[2] == 6.0f);  // a real copy back
    CHECK(transfer_stats().to_host_count == 1);
    CHECK(sim.live_allocations() == 1);
  }
  CHECK(sim.live_allocations() == 0);
}

TEST_CASE("the transfer check names the layer that copies in forward or backward", "[device_training]") {
  test::TempDir dir;
  set_num_threads(1);
  SimulatedDevice sim;
  // Clean device code trains under the check.
  CHECK_NOTHROW(train(dir, mlp_solver(6, "pass", ""), true, "clean"));

  // A host read in a device forward.
  try {
    train(dir, mlp_solver(6, "peek_in_forward", ""), true, "peek");
    FAIL("the transfer check did not fire");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("layer 'peek_in_forward' (TestPass) forward") &&
                             Catch::Contains("1 to the host"));
  }
  // A host read in a device backward.
  try {
    train(dir, mlp_solver(6, "grad_peek", ""), true, "gpeek");
    FAIL("the transfer check did not fire");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("layer 'grad_peek' (TestPass) backward"));
  }
  // Without the check the same run trains (and pays the copies).
  reset_transfer_stats();
  CHECK_NOTHROW(train(dir, mlp_solver(3, "peek_x", ""), true, "peek_off", "", false));
  CHECK(transfer_stats().to_host_count >= 3);
}

TEST_CASE("every update rule, decay and clipping train on the device as on the CPU", "[device_training]") {
  test::TempDir dir;
  set_num_threads(1);
  const char* variants[] = {
      "type: \"SGD\" weight_decay: 0.001\n",
      "type: \"SGD\" weight_decay: 0.001 regularization_type: \"L1\" clip_gradients: 0.5 iter_size: 2\n",
      "type: \"Nesterov\" weight_decay: 0.002\n clip_gradients: 0.3\n",
      "type: \"Adam\" momentum2: 0.999 delta: 1e-8 weight_decay: 0.001\n",
  };
  for (const char* v : variants) {
    INFO(v);
    const std::string text = mlp_solver(12, "pass", std::string(v) + "snapshot_after_train: false\n");
    RunResult cpu = train(dir, text, false, "cpu");
    SimulatedDevice sim;
    RunResult dev = train(dir, text, true, "dev");
    // Nothing came back to the host while training (no snapshot, no test; losses and the clipping
    // norm are reductions, single values).
    CHECK(dev.to_host_in_solve == 0);
    check_same_run(dev, cpu, 1e-5f);
  }
}

TEST_CASE("pruning masks and quantizers apply on the device as on the CPU", "[device_training]") {
  test::TempDir dir;
  set_num_threads(1);
  const std::string schedule =
      "schedule { phase { mode: GRADUAL start_iter: 4 prune_interval: 4 } "
      "phase { mode: PRUNE start_iter: 16 } phase { mode: QUANTIZE start_iter: 20 lr_mult: 0.5 } }\n"
      "weight_decay: 0.001\n";
  std::string text = mlp_solver(32, "pass", schedule);
  auto add = [&](const std::string& layer, const std::string& field) { text = test::with_layer_field(text, layer, field); };
  add("ip1", "sparsity_param { policy: \"magnitude\" target_sparsity: 0.6 force: true }");
  add("ip1", "quant_param { bits: 3 }");
  add("ip2", "sparsity_param { policy: \"magnitude\" target_sparsity: 0.3 force: true }");
  add("ip2", "quant_param { method: TTQ threshold: 0.2 force: true }");
  RunResult cpu = train(dir, text, false, "cpu");
  RunResult host_code;
  {
    // The device code run on the host (ctx.device_code_on_host) gives the same training.
    LoadedConfig c = test::load_config(dir, text);
    Context ctx = make_ctx(false);
    ctx.device_code_on_host = true;
    Solver solver(c.solver, c.net_locations, ctx, dir.file("hdc"));
    install_sparsity(solver);
    solver.solve();
    check_close(solver.losses(), cpu.losses, 1e-5f);
  }
  SimulatedDevice sim;
  std::vector<uint64_t> host_copies;
  RunResult dev = train(dir, text, true, "dev", "", true, &host_copies);
  REQUIRE(dev.codes.size() == 2);
  // Prune and quantize steps read the weights to the host (logged); the iterations between them,
  // masks, k-means centroids and TTQ scales included, read nothing back.
  REQUIRE(host_copies.size() == 32);
  CHECK(host_copies[4] > host_copies[3]);    // the first GRADUAL prune step
  CHECK(host_copies[20] > host_copies[19]);  // clustering at the start of QUANTIZE
  for (int i = 20; i < 31; ++i) {
    INFO("iteration " << i);
    CHECK(host_copies[size_t(i + 1)] == host_copies[size_t(i)]);
  }
  for (int i : {5, 6, 9, 10, 17, 18}) {
    INFO("iteration " << i);
    CHECK(host_copies[size_t(i + 1)] == host_copies[size_t(i)]);
  }
  CHECK(!dev.codes[0].empty());
  check_same_run(dev, cpu, 1e-5f);
  // Pruned weights stayed exactly zero on the device.
  int64_t zeros = 0;
  for (float w : dev.params[0]) zeros += w == 0.0f;
  CHECK(double(zeros) / double(dev.params[0].size()) >= 0.6 - 1e-3);
}

TEST_CASE("a snapshot written on the device resumes on the CPU, and back", "[device_training]") {
  test::TempDir dir;
  set_num_threads(1);
  std::string text = mlp_solver(24, "pass",
                                "snapshot: 12\n"
                                "schedule { phase { mode: PRUNE start_iter: 4 } phase { mode: QUANTIZE start_iter: 8 } }\n");
  auto add = [&](const std::string& layer, const std::string& field) { text = test::with_layer_field(text, layer, field); };
  add("ip1", "sparsity_param { policy: \"magnitude\" target_sparsity: 0.5 force: true }");
  add("ip2", "quant_param { method: TTQ threshold: 0.2 force: true }");
  const RunResult cpu = train(dir, text, false, "cpu");
  RunResult dev;
  {
    SimulatedDevice sim;
    dev = train(dir, text, true, "dev");
  }
  check_same_run(dev, cpu, 1e-5f);
  const std::vector<float> tail(cpu.losses.begin() + 12, cpu.losses.end());

  // Device snapshot -> CPU.
  RunResult on_cpu = train(dir, text, false, "dev_to_cpu", dir.file("dev_iter_12.dsgmodel"));
  check_close(on_cpu.losses, tail, 1e-5f);
  check_close(on_cpu.params.back(), cpu.params.back(), 1e-5f);
  CHECK(on_cpu.codes == cpu.codes);
  // CPU snapshot -> device.
  SimulatedDevice sim;
  RunResult on_dev = train(dir, text, true, "cpu_to_dev", dir.file("cpu_iter_12.dsgmodel"));
  check_close(on_dev.losses, tail, 1e-5f);
  for (size_t i = 0; i < cpu.params.size(); ++i) check_close(on_dev.params[i], cpu.params[i], 1e-5f);
  CHECK(on_dev.codes == cpu.codes);
}

TEST_CASE("device support is checked for the modes a sparsity schedule will switch on", "[device_training]") {
  test::TempDir dir;
  std::string text = mlp_solver(8, "pass", "schedule { phase { mode: PRUNE start_iter: 2 } }\n");
  text = test::with_layer_field(text, "ip1",
                                "sparsity_param { policy: \"magnitude\" granularity: FILTER target_sparsity: 0.5 force: true }");
  LoadedConfig c = test::load_config(dir, text);
  Context ctx = make_ctx(false);
  ctx.device_code_on_host = true;
  Solver solver(c.solver, c.net_locations, ctx, dir.file("p"));
  SparsityController& sparsity = install_sparsity(solver);
  const auto planned = sparsity.planned_modes(solver.train_net());
  using Planned = std::pair<std::string, LayerMode>;
  CHECK(std::find(planned.begin(), planned.end(), Planned("ip1", LayerMode::kActiveOutputs)) != planned.end());
  // ip1's dropped outputs reach ip2 through ReLU and the pass-through: ip2 can skip those inputs.
  CHECK(std::find(planned.begin(), planned.end(), Planned("ip2", LayerMode::kActiveInputs)) != planned.end());
  CHECK(planned.size() == 2);
  // Whether it refuses follows the layers' own answers; a refusal names the layer and the mode.
  const Layer& ip1 = *solver.train_net().layer_by_name("ip1");
  const Layer& ip2 = *solver.train_net().layer_by_name("ip2");
  const bool supported = ip1.supports(DeviceType::CUDA, LayerMode::kActiveOutputs) &&
                         ip2.supports(DeviceType::CUDA, LayerMode::kActiveInputs);
  if (supported) {
    CHECK_NOTHROW(check_device_support(solver.train_net(), ctx, planned));
  } else {
    CHECK_THROWS_WITH(check_device_support(solver.train_net(), ctx, planned),
                      Catch::Contains("of the TRAIN net has no active") &&
                          Catch::Contains("implementation for device cuda (device code on the host)"));
  }
  // A mode the pass-through layer lacks is refused by name, before any pass runs.
  CHECK_THROWS_WITH(check_device_support(solver.train_net(), ctx, {{"pass", LayerMode::kWeightOperator}}),
                    Catch::Contains("layer 'pass' (TestPass) of the TRAIN net has no weight operator"));
  CHECK_NOTHROW(check_device_support(solver.train_net(), ctx));
  CHECK(solver.losses().empty());
}
