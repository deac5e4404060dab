// Nets for training through the device code (tests/runtime/test_device_train_nets.cpp on the
// host and a simulated device, tests/gpu/test_gpu_training.cpp on CUDA): a small LeNet-style conv
// net on the learnable IDX data (tests/support/learnable_dataset.hpp), optionally with a pruning +
// quantization schedule, trained from a given Context, and the comparison of two runs.
#pragma once
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"
#include "support/learnable_dataset.hpp"
#include "support/solver_configs.hpp"

namespace dsg::test {

inline std::string small_lenet_solver(const std::string& dir, int max_iter) {
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
  double zero_fraction = 0;  // exact zeros among all learnable parameters at the end
};

// Trains `text` from `ctx` (its seed set to 7) with the sparsity controller installed; `tag`
// names the snapshot prefix.
inline Run train(const TempDir& dir, const std::string& text, Context ctx, const std::string& tag) {
  LoadedConfig c = load_config(dir, text);
  ctx.seed = 7;
  Solver s(c.solver, c.net_locations, ctx, dir.file(tag));
  install_sparsity(s);
  Run r;
  s.on_test = [&](const TestReport& t) {
    for (const auto& [name, value] : t.outputs)
      if (name == "accuracy") r.accuracy = value;
  };
  s.solve();
  r.losses = s.losses();
  int64_t zeros = 0, total = 0;
  for (const auto& p : s.train_net().learnable_params()) {
    const float* w = p.tensor->data();
    for (int i = 0; i < p.tensor->count(); ++i) zeros += w[i] == 0.0f;
    total += p.tensor->count();
  }
  r.zero_fraction = total ? double(zeros) / double(total) : 0.0;
  return r;
}

// The device code on the host; a device (real or simulated) with the transfer check on.
inline Context host_device_code() {
  Context ctx;
  ctx.device_code_on_host = true;
  return ctx;
}
inline Context checked_device(const Device& device) {
  Context ctx;
  ctx.device = device;
  ctx.check_transfers = true;
  return ctx;
}

inline void compare_runs(const Run& cpu, const Run& dev) {
  REQUIRE(cpu.losses.size() == dev.losses.size());
  for (size_t i = 0; i < cpu.losses.size(); ++i) {
    INFO("iteration " << i << ": cpu loss " << cpu.losses[i] << ", device code " << dev.losses[i]);
    CHECK(std::fabs(dev.losses[i] - cpu.losses[i]) <= 1e-3 * (1 + std::fabs(cpu.losses[i])));
  }
  CHECK(std::fabs(dev.accuracy - cpu.accuracy) <= 0.02f);
  CHECK(std::fabs(dev.zero_fraction - cpu.zero_fraction) <= 0.01);
}


// The small LeNet with sparsity: magnitude pruning of conv2 and ip1 (GRADUAL from iteration 6,
// PRUNE at 14), k-means codes for ip1 and TTQ for ip2 from iteration 20.
inline std::string small_lenet_sparse_solver(const std::string& dir, int max_iter) {
  std::string text = small_lenet_solver(dir, max_iter) +
                     "schedule { phase { mode: GRADUAL start_iter: 6 prune_interval: 4 } "
                     "phase { mode: PRUNE start_iter: 14 } phase { mode: QUANTIZE start_iter: 20 lr_mult: 0.5 } }\n";
  auto add = [&](const std::string& layer, const std::string& field) { text = with_layer_field(text, layer, field); };
  add("conv2", "sparsity_param { policy: \"magnitude\" target_sparsity: 0.5 force: true }");
  add("ip1", "sparsity_param { policy: \"magnitude\" target_sparsity: 0.7 force: true }");
  add("ip1", "quant_param { bits: 4 }");
  add("ip2", "quant_param { method: TTQ threshold: 0.2 force: true }");
  return text;
}

}  // namespace dsg::test
