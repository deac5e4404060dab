// Whole nets on CUDA device 0 against the CPU path, from the same seed, with the transfer check on
// (no layer's forward or backward and no update copies between host and device): the small
// LeNet-style conv net (Data, Convolution, BatchNorm, Scale, ReLU, Pooling, InnerProduct, TanH,
// Dropout, SoftmaxWithLoss, Accuracy), the same net pruned and quantized (masks, k-means codes and
// TTQ on the device), and an MLP with Adam. Tolerances as in tests/runtime/test_device_train_nets.cpp.
#include <catch2/catch.hpp>

#include "runtime/parallel.hpp"
#include "support/device_training.hpp"

using namespace dsg;
using test::TempDir;

TEST_CASE("nets train on CUDA as on the CPU, with nothing copied inside an iteration", "[gpu][training]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  const Context gpu = test::checked_device(Device::cuda(0));
  SECTION("conv net") {
    const std::string text = test::small_lenet_solver(dir.path().string(), 40);
    test::compare_runs(test::train(dir, text, Context{}, "cpu"), test::train(dir, text, gpu, "gpu"));
  }
  SECTION("conv net pruned and quantized") {
    const std::string text = test::small_lenet_sparse_solver(dir.path().string(), 30);
    test::compare_runs(test::train(dir, text, Context{}, "cpu"), test::train(dir, text, gpu, "gpu"));
  }
  SECTION("MLP with Adam") {
    const std::string text = test::tiny_mlp_solver(dir.path().string(), 40, "type: \"Adam\"\n", true);
    test::compare_runs(test::train(dir, text, Context{}, "cpu"), test::train(dir, text, gpu, "gpu"));
  }
}
