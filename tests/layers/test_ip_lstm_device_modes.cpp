// Which modes InnerProduct and LSTM have device code for (the numbers are checked by the device
// cases in tests/cases/ip_lstm_cases.cpp), and that the others are refused by the device code.
#include <catch2/catch.hpp>
#include <google/protobuf/text_format.h>

#include "runtime/layer.hpp"

using namespace dsg;

namespace {

std::unique_ptr<Layer> make(const std::string& text) {
  LayerParameter p;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(text, &p));
  return create_layer(p);
}

Context on_host() {
  Context c;
  c.device_code_on_host = true;
  return c;
}

}  // namespace

TEST_CASE("InnerProduct device code: dense and structured modes only", "[layer][inner_product][device_code]") {
  auto ip = make("name: 'i' type: 'InnerProduct' inner_product_param { num_output: 3 }");
  for (LayerMode m : {LayerMode::kDense, LayerMode::kActiveOutputs, LayerMode::kActiveInputs})
    CHECK(ip->supports(DeviceType::CUDA, m));
  for (LayerMode m : {LayerMode::kWeightOperator, LayerMode::kFixedPoint, LayerMode::kSparseBackward,
                      LayerMode::kDynamicSelection})
    CHECK_FALSE(ip->supports(DeviceType::CUDA, m));
  auto tr = make("name: 't' type: 'InnerProduct' inner_product_param { num_output: 3 transpose: true }");
  CHECK(tr->supports(DeviceType::CUDA, LayerMode::kDense));
  CHECK_FALSE(tr->supports(DeviceType::CUDA, LayerMode::kActiveOutputs));
  CHECK_FALSE(tr->supports(DeviceType::CUDA, LayerMode::kActiveInputs));

  // DSG selection stays on the CPU: the device code refuses it.
  auto dsg = make("name: 'd' type: 'InnerProduct' inner_product_param { num_output: 4 } dsg_param { gamma: 0.5 }");
  Tensor x({2, 5}), y;
  x.set_data(1.0f);
  std::mt19937_64 rng(1);
  dsg->setup({&x}, {&y}, rng);
  CHECK_THROWS_WITH(dsg->forward({&x}, {&y}, on_host()), Catch::Contains("dynamic"));
}

TEST_CASE("LSTM device code: the dense recurrence only", "[layer][lstm][device_code]") {
  auto lstm = make("name: 'l' type: 'LSTM' recurrent_param { num_output: 3 }");
  CHECK(lstm->supports(DeviceType::CUDA, LayerMode::kDense));
  CHECK_FALSE(lstm->supports(DeviceType::CUDA, LayerMode::kFixedPoint));
  CHECK_FALSE(lstm->supports(DeviceType::CUDA, LayerMode::kSparseBackward));
  CHECK(lstm->supports(DeviceType::CPU, LayerMode::kFixedPoint));

  auto fixed = make("name: 'f' type: 'LSTM' recurrent_param { num_output: 3 } fixed_point_param { }");
  Tensor x({2, 2, 4}), cont({2, 2}), h;
  x.set_data(0.5f);
  std::mt19937_64 rng(1);
  fixed->setup({&x, &cont}, {&h}, rng);
  CHECK_THROWS_WITH(fixed->forward({&x, &cont}, {&h}, on_host()), Catch::Contains("fixed"));
}
