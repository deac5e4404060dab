// Which layers and modes have device code (issue #13's list), and that each of them is covered by
// at least one cross-device case (tests/cases/), so a layer cannot gain a CUDA claim untested.
#include <catch2/catch.hpp>

#include "runtime/layer.hpp"
#include "support/device_cases.hpp"

using namespace dsg;

namespace {

std::unique_ptr<Layer> make(const std::string& type) {
  LayerParameter lp;
  lp.set_name("l");
  lp.set_type(type);
  return create_layer(lp);
}

const char* const kDeviceLayers[] = {
    "Input",   "InnerProduct", "Convolution", "Pooling", "ReLU",   "Sigmoid", "TanH",
    "Dropout", "BatchNorm",    "Scale",       "Softmax", "SoftmaxWithLoss", "Accuracy", "Concat",
    "Eltwise", "Flatten",      "Reshape",     "Split",   "Slice",  "Silence", "Embed",
    "ImageToSequence", "LSTM"};

}  // namespace

TEST_CASE("every layer of the runtime has device code and cross-device cases", "[device_code][coverage]") {
  for (const char* type : kDeviceLayers) {
    INFO(type);
    CHECK(make(type)->supports(DeviceType::CUDA, LayerMode::kDense));
    CHECK_FALSE(test::device_cases_of(type).empty());
  }
  // The Data layer is checked by tests/datasets (its tops against the CPU path's).
  CHECK(make("Data")->supports(DeviceType::CUDA, LayerMode::kDense));
  for (const char* type : {"InnerProduct", "Convolution"}) {
    INFO(type);
    CHECK(make(type)->supports(DeviceType::CUDA, LayerMode::kActiveOutputs));
    CHECK(make(type)->supports(DeviceType::CUDA, LayerMode::kActiveInputs));
  }
}

TEST_CASE("every layer type that claims device code has cross-device cases", "[device_code][coverage]") {
  for (const std::string& type : layer_registry().names()) {
    if (type == "Data" || type.rfind("Test", 0) == 0) continue;
    std::unique_ptr<Layer> layer;
    try {
      layer = make(type);
    } catch (...) {
      continue;
    }
    // Data layers (the Data layer and tests' batch sources) are checked against their CPU tops
    // elsewhere (tests/datasets/test_data_layer_device.cpp).
    if (layer->is_data_layer() || !layer->supports(DeviceType::CUDA, LayerMode::kDense)) continue;
    INFO(type);
    CHECK_FALSE(test::device_cases_of(type).empty());
  }
}
