// End to end through the device code: a small LeNet-style net (Data, Convolution, Pooling, ReLU,
// BatchNorm, Scale, InnerProduct, Dropout, SoftmaxWithLoss, Accuracy) and an LSTM-free MLP with
// Adam train with every layer's device code run on the host (Context::device_code_on_host) and on
// the plain CPU path from the same seed. The device code computes the same functions with other
// summation orders (whole-batch GEMMs instead of chunks), so the two loss sequences differ only by
// rounding that training carries forward; a wrong kernel moves the loss by tenths within a few
// iterations. The same nets train on a real GPU in tests/gpu/test_gpu_training.cpp, and LeNet-5
// for one epoch in scripts/gpu_check.sh.
#include <catch2/catch.hpp>

#include <cmath>

#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "runtime/simulated_device.hpp"
#include "runtime/storage.hpp"
#include "support/device_training.hpp"

using namespace dsg;
using test::TempDir;

TEST_CASE("a conv net trains the same through the device code as on the CPU path", "[device_code][train_nets]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  const std::string text = test::small_lenet_solver(dir.path().string(), 40);
  const test::Run cpu = test::train(dir, text, Context{}, "cpu"), dev = test::train(dir, text, test::host_device_code(), "dev");
  test::compare_runs(cpu, dev);
  CHECK(cpu.losses.back() < cpu.losses.front());
}

TEST_CASE("the conv net trains on a simulated device without a copy inside an iteration", "[device_code][train_nets]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  const std::string text = test::small_lenet_solver(dir.path().string(), 20);
  const test::Run cpu = test::train(dir, text, Context{}, "cpu");
  test::Run dev;
  {
    SimulatedDevice sim;
    dev = test::train(dir, text, test::checked_device(Device::cuda(0)), "sim");  // throws naming a layer that copies
  }
  test::compare_runs(cpu, dev);
}

TEST_CASE("an MLP with Adam trains the same through the device code as on the CPU path", "[device_code][train_nets]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  const std::string text = test::tiny_mlp_solver(dir.path().string(), 40, "type: \"Adam\"\n", true);
  test::compare_runs(test::train(dir, text, Context{}, "cpu"), test::train(dir, text, test::host_device_code(), "dev"));
}

TEST_CASE("pruning and quantizing the conv net trains the same through the device code", "[device_code][train_nets]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  const std::string text = test::small_lenet_sparse_solver(dir.path().string(), 30);
  const test::Run cpu = test::train(dir, text, Context{}, "cpu");
  CHECK(cpu.zero_fraction > 0.3);  // the schedule pruned (most parameters are conv2's and ip1's)
  test::compare_runs(cpu, test::train(dir, text, test::host_device_code(), "dev"));
  test::Run sim;
  {
    SimulatedDevice device;
    sim = test::train(dir, text, test::checked_device(Device::cuda(0)), "sim");
  }
  test::compare_runs(cpu, sim);
}
