// End to end through the device code: a small LeNet-style net (Data, Convolution, Pooling, ReLU,
// BatchNorm, Scale, InnerProduct, Dropout, SoftmaxWithLoss, Accuracy) and an LSTM-free MLP with
// Adam train with every layer's device code run on the host (Context::device_code_on_host) and on
// the plain CPU path from the same seed. The device code computes the same functions with other
// summation orders (whole-batch GEMMs instead of chunks), so the two loss sequences differ only by
// rounding that training carries forward; a wrong kernel moves the loss by tenths within a few
// iterations. The same comparison runs on a real GPU in scripts/gpu_check.sh (LeNet-5, one epoch).
#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "runtime/simulated_device.hpp"
#include "runtime/storage.hpp"
#include "support/learnable_dataset.hpp"
#include "support/solver_configs.hpp"

using namespace dsg;
using test::TempDir;

namespace {

std::string small_lenet_solver(const std::string& dir, int max_iter) {
  const std::string data = dir + "/train-images-idx3-ubyte", test = dir + "/t10k-images-idx3-ubyte";
  return std::string("net_param {\n name: \"small_lenet\"\n") +
         " layer { name: \"d\" type: \"Data\" top: \"data\" top: \"label\" include { phase: TRAIN }\n"
         "   transform_param { scale: 0.00390625 } data_param { source: \"" + data + "\" backend: IDX batch_size: 16 } }\n"
         " layer { name: \"d\" type: \"Data\" top: \"data\" top: \"label\" include { phase: TEST }\n"
         "   transform_param { scale: 0.00390625 } data_param { source: \"" + test + "\" backend: IDX batch_size: 50 } }\n"
         " layer { name: \"conv1\" type: \"Convolution\" bottom: \"data\" top: \"conv1\"\n"
         "   convolution_param { num_output: 6 kernel_size: 3 pad: 1 weight_filler { type: \"xavier\" } } }\n"
         " layer { name: \"bn1\" type: \"BatchNorm\" bottom: \"conv1\" top: \"conv1\" }\n"
         " layer { name: \"sc1\" type: \"Scale\" bottom: \"conv1\" top: \"conv1\" scale_param { bias_term: true } }\n"
         " layer { name: \"relu1\" type: \"ReLU\" bottom: \"conv1\" top: \"conv1\" }\n"
         " layer { name: \"pool1\" type: \"Pooling\" bottom: \"conv1\" top: \"pool1\"\n"
         "   pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
         " layer { name: \"conv2\" type: \"Convolution\" bottom: \"pool1\" top: \"conv2\"\n"
         "   convolution_param { num_output: 8 kernel_size: 3 weight_filler { type: \"xavier\" } } }\n"
         " layer { name: \"pool2\" type: \"Pooling\" bottom: \"conv2\" top: \"pool2\"\n"
         "   pooling_param { pool: AVE kernel_size: 2 stride: 2 } }\n"
         " layer { name: \"ip1\" type: \"InnerProduct\" bottom: \"pool2\" top: \"ip1\"\n"
         "   inner_product_param { num_output: 24 weight_filler { type: \"xavier\" } } }\n"
         " layer { name: \"tanh1\" type: \"TanH\" bottom: \"ip1\" top: \"ip1\" }\n"
         " layer { name: \"drop1\" type: \"Dropout\" bottom: \"ip1\" top: \"ip1\" dropout_param { dropout_ratio: 0.2 } }\n"
         " layer { name: \"ip2\" type: \"InnerProduct\" bottom: \"ip1\" top: \"ip2\"\n"
         "   inner_product_param { num_output: 4 weight_filler { type: \"xavier\" } } }\n"
         " layer { name: \"acc\" type: \"Accuracy\" bottom: \"ip2\" bottom: \"label\" top: \"accuracy\" include { phase: TEST } }\n"
         " layer { name: \"loss\" type: \"SoftmaxWithLoss\" bottom: \"ip2\" bottom: \"label\" top: \"loss\" }\n"
         "}\n"
         "test_iter: 4\n test_interval: " + std::to_string(max_iter) + "\n test_initialization: false\n"
         "base_lr: 0.05\n momentum: 0.9\n weight_decay: 0.0005\n lr_policy: \"fixed\"\n display: 0\n"
         "max_iter: " + std::to_string(max_iter) + "\n random_seed: 7\n";
}

struct Run {
  std::vector<float> losses;
  float accuracy = -1;
};

// device_code: run the device code on the host; simulated: on a SimulatedDevice's "cuda:0", with
// the transfer check on (every layer's forward and backward and the update copy nothing).
Run train(const TempDir& dir, const std::string& text, bool device_code, const std::string& tag,
          bool simulated = false) {
  LoadedConfig c = test::load_config(dir, text);
  Context ctx = test::cpu_ctx(7);
  ctx.device_code_on_host = device_code && !simulated;
  if (simulated) {
    ctx.device = Device::cuda(0);
    ctx.check_transfers = true;
  }
  Solver s(c.solver, c.net_locations, ctx, dir.file(tag));
  Run r;
  s.on_test = [&](const TestReport& t) {
    for (const auto& [name, value] : t.outputs)
      if (name == "accuracy") r.accuracy = value;
  };
  s.solve();
  r.losses = s.losses();
  return r;
}

void compare_runs(const Run& cpu, const Run& dev) {
  REQUIRE(cpu.losses.size() == dev.losses.size());
  for (size_t i = 0; i < cpu.losses.size(); ++i) {
    INFO("iteration " << i << ": cpu loss " << cpu.losses[i] << ", device code " << dev.losses[i]);
    CHECK(std::fabs(dev.losses[i] - cpu.losses[i]) <= 1e-3 * (1 + std::fabs(cpu.losses[i])));
  }
  CHECK(std::fabs(dev.accuracy - cpu.accuracy) <= 0.02f);
}

}  // namespace

TEST_CASE("a conv net trains the same through the device code as on the CPU path", "[device_code][train_nets]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  const std::string text = small_lenet_solver(dir.path().string(), 40);
  const Run cpu = train(dir, text, false, "cpu"), dev = train(dir, text, true, "dev");
  compare_runs(cpu, dev);
  CHECK(cpu.losses.back() < cpu.losses.front());
}

TEST_CASE("the conv net trains on a simulated device without a copy inside an iteration", "[device_code][train_nets]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  const std::string text = small_lenet_solver(dir.path().string(), 20);
  const Run cpu = train(dir, text, false, "cpu");
  Run dev;
  {
    SimulatedDevice sim;
    dev = train(dir, text, true, "sim", /*simulated=*/true);  // throws naming a layer that copies
  }
  compare_runs(cpu, dev);
}

TEST_CASE("an MLP with Adam trains the same through the device code as on the CPU path", "[device_code][train_nets]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  const std::string text = test::tiny_mlp_solver(dir.path().string(), 40, "type: \"Adam\"\n", true);
  compare_runs(train(dir, text, false, "cpu"), train(dir, text, true, "dev"));
}
