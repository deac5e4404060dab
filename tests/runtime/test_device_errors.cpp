// Running on a device a layer has no code for, or on a device this build or machine lacks, is a
// clear error naming the layer and the mode (no silent fallback), and nothing is allocated.
#include <catch2/catch.hpp>

#include <random>

#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/storage.hpp"

using namespace dsg;

namespace {

// A layer with CPU code only.
class CpuOnlyLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "TestCpuOnly"; }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override { top[0]->reshape_like(*bottom[0]); }
  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    top[0]->copy_from(*bottom[0]);
  }
  void backward_cpu(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}
};
DSG_REGISTER_LAYER("TestCpuOnly", CpuOnlyLayer);

}  // namespace

TEST_CASE("asking a layer without device code, or a missing device, for CUDA is a clear error", "[device]") {
  LayerParameter lp;
  lp.set_name("plain");
  lp.set_type("TestCpuOnly");
  auto layer = create_layer(lp);
  Tensor x({2, 3}), y;
  TensorVec bottom{&x}, top{&y};
  std::mt19937_64 rng(1);
  layer->setup(bottom, top, rng);
  Context gpu;
  gpu.device = Device::cuda(0);
  reset_transfer_stats();
  if (cuda_built())
    CHECK_THROWS_WITH(layer->forward(bottom, top, gpu),
                      Catch::Contains("layer 'plain' (TestCpuOnly)") && Catch::Contains("no implementation for device cuda:0"));
  else
    CHECK_THROWS_WITH(layer->forward(bottom, top, gpu), Catch::Contains("this build has no CUDA backend"));
  CHECK(transfer_stats().to_device_count == 0);

  // The same refusal when the device code runs on the host (the tests' stand-in for a GPU).
  Context host;
  host.device_code_on_host = true;
  CHECK_THROWS_WITH(layer->forward(bottom, top, host), Catch::Contains("no implementation for device cuda"));

  LayerParameter rp;
  rp.set_name("relu");
  rp.set_type("ReLU");
  auto relu = create_layer(rp);
  relu->setup(bottom, top, rng);
  CHECK(relu->supports(DeviceType::CUDA, LayerMode::kDense));
  CHECK_FALSE(relu->supports(DeviceType::CUDA, LayerMode::kActiveOutputs));
  std::string reason;
  if (cuda_device_count(&reason) == 0) CHECK_THROWS_AS(relu->forward(bottom, top, gpu), Error);
}
