// Layers describe themselves (runtime/layer.hpp): channel flow, prunable blobs, supported modes per
// device. These tests check the descriptions of every registered layer for consistency, that the
// modes a configuration asks for are refused on a device without them (no silent fallback), and
// that the channel pass follows the descriptions in both of its modes.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "runtime/channel_pass.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/net.hpp"

using namespace dsg;

namespace {

LayerParameter layer_param(const std::string& text) {
  LayerParameter p;
  parse_text_proto(text, "layer", &p);
  return p;
}

NetParameter net_param(const std::string& text) {
  NetParameter p;
  parse_text_proto(text, "net", &p);
  return p;
}

// A layer with kernels for the dense mode on every device and for no structured mode: asking it
// for active outputs must be an error on the device, not a dense run.
class DenseEverywhereLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "DenseEverywhere"; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override { top[0]->reshape_like(*bottom[0]); }
  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override { top[0]->copy_from(*bottom[0]); }
  void backward_cpu(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}
};

}  // namespace

TEST_CASE("every registered layer gives a consistent self-description", "[layer][describe]") {
  const auto names = layer_registry().names();
  REQUIRE(names.size() >= 25);
  int producers = 0, weight_layers = 0;
  for (const auto& type : names) {
    INFO("layer type " << type);
    LayerParameter p;
    p.set_name("x");
    p.set_type(type);
    std::unique_ptr<Layer> layer = create_layer(p);
    CHECK(std::string(layer->type()) == type);
    const ChannelFlow flow = layer->channel_flow();
    // Every layer runs its dense mode on the CPU, the reference device.
    CHECK(layer->supports(DeviceType::CPU, LayerMode::kDense));
    if (flow.kind == ChannelFlow::kProducer) {
      ++producers;
      // A layer computing new units has weights, and rows of them are its outputs (or it says not).
      REQUIRE(layer->weight_blobs() == std::vector<int>{0});
      if (flow.rows_are_outputs) {
        LayerParameter resized = p;
        layer->set_num_outputs(resized, 7);
        CHECK(resized.SerializeAsString() != p.SerializeAsString());
      }
    } else {
      LayerParameter resized = p;
      CHECK_THROWS_AS(layer->set_num_outputs(resized, 7), Error);
    }
    if (flow.rectifier) CHECK(flow.zero_preserving);
    weight_layers += !layer->weight_blobs().empty();
    CHECK_FALSE(layer->weight_row_blocks().empty());
  }
  CHECK(producers == 2);       // Convolution, InnerProduct
  CHECK(weight_layers == 4);   // and Embed, LSTM
}

TEST_CASE("the descriptions that the structure pass and thinning rely on", "[layer][describe]") {
  auto flow = [](const std::string& text) { return create_layer(layer_param(text))->channel_flow(); };
  CHECK(flow("name: 'r' type: 'ReLU'").rectifier);
  CHECK(flow("name: 't' type: 'TanH'").zero_preserving);
  CHECK_FALSE(flow("name: 't' type: 'TanH'").rectifier);
  CHECK_FALSE(flow("name: 's' type: 'Sigmoid'").zero_preserving);
  CHECK_FALSE(flow("name: 'b' type: 'BatchNorm'").zero_preserving);
  CHECK(flow("name: 's' type: 'Scale' scale_param { bias_term: false }").zero_preserving);
  CHECK_FALSE(flow("name: 's' type: 'Scale' scale_param { bias_term: true }").zero_preserving);
  CHECK(flow("name: 'e' type: 'Eltwise' eltwise_param { operation: PROD }").intersect);
  CHECK_FALSE(flow("name: 'e' type: 'Eltwise' eltwise_param { operation: SUM }").intersect);
  CHECK(flow("name: 'r' type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 } }").shape_follows_input);
  CHECK_FALSE(flow("name: 'r' type: 'Reshape' reshape_param { shape { dim: 0 dim: 12 } }").shape_follows_input);
  CHECK(flow("name: 'c' type: 'Convolution' convolution_param { num_output: 4 group: 2 }").groups == 2);
  CHECK_FALSE(flow("name: 'i' type: 'InnerProduct' inner_product_param { num_output: 4 transpose: true }").rows_are_outputs);
  CHECK(flow("name: 'i' type: 'InnerProduct' inner_product_param { num_output: 4 }").inputs == ChannelFlow::kFeatures);
  CHECK(create_layer(layer_param("name: 'a' type: 'Accuracy'"))->reads_class_scores());
  CHECK(create_layer(layer_param("name: 'l' type: 'SoftmaxWithLoss'"))->reads_class_scores());
  CHECK_FALSE(create_layer(layer_param("name: 'r' type: 'ReLU'"))->reads_class_scores());
  auto lstm = create_layer(layer_param("name: 'l' type: 'LSTM' recurrent_param { num_output: 3 }"));
  CHECK(lstm->weight_blobs() == std::vector<int>{0, 2});
  CHECK(lstm->weight_row_blocks() == std::vector<std::string>{"i", "f", "o", "g"});
  CHECK(lstm->blob_name(2) == "W_h");
}

TEST_CASE("the modes a configuration uses are refused where the layer has no kernel for them", "[layer][describe][device]") {
  DenseEverywhereLayer layer(layer_param("name: 'd' type: 'DenseEverywhere'"));
  Tensor x({2, 3}), y;
  x.set_data(1.0f);
  std::mt19937_64 rng(1);
  layer.setup({&x}, {&y}, rng);
  CHECK(layer.modes_in_use() == std::vector<LayerMode>{LayerMode::kDense});
  layer.forward({&x}, {&y}, Context{});
  layer.set_active_outputs({0, 2});
  CHECK(layer.modes_in_use() == std::vector<LayerMode>{LayerMode::kDense, LayerMode::kActiveOutputs});
  CHECK_THROWS_WITH(layer.forward({&x}, {&y}, Context{}),
                    Catch::Contains("layer 'd'") && Catch::Contains("no active outputs") && Catch::Contains("device cpu"));
  Context cuda;
  cuda.device = Device::cuda(0);
  if (cuda_built())
    CHECK_THROWS_WITH(layer.forward({&x}, {&y}, cuda), Catch::Contains("device cuda:0"));
  else  // a CPU-only build refuses any CUDA run first
    CHECK_THROWS_WITH(layer.forward({&x}, {&y}, cuda), Catch::Contains("cuda:0") && Catch::Contains("no CUDA backend"));
  // The device code's refusal, also in a CPU-only build: the device code run on the host.
  Context host;
  host.device_code_on_host = true;
  CHECK_THROWS_WITH(layer.forward({&x}, {&y}, host), Catch::Contains("layer 'd'") && Catch::Contains("device cuda"));

  // Configuration alone asks for modes: the LSTM's fixed point, DSG on an InnerProduct.
  auto lstm = create_layer(layer_param("name: 'l' type: 'LSTM' recurrent_param { num_output: 3 } fixed_point_param { }"));
  const auto lstm_modes = lstm->modes_in_use();
  CHECK(std::count(lstm_modes.begin(), lstm_modes.end(), LayerMode::kFixedPoint) == 1);
  auto ip = create_layer(layer_param("name: 'i' type: 'InnerProduct' inner_product_param { num_output: 3 } dsg_param { gamma: 0.5 }"));
  const auto ip_modes = ip->modes_in_use();
  CHECK(std::count(ip_modes.begin(), ip_modes.end(), LayerMode::kDynamicSelection) == 1);
  CHECK(ip->supports(DeviceType::CPU, LayerMode::kDynamicSelection));
  // A layer without a fixed-point simulation refuses the parameter at setup.
  auto relu = create_layer(layer_param("name: 'r' type: 'ReLU' fixed_point_param { }"));
  Tensor rx({2, 2}), ry;
  CHECK_THROWS_WITH(relu->setup({&rx}, {&ry}, rng), Catch::Contains("fixed_point_param"));
}

// conv (4 filters, 0 and 2 kept) -> relu -> pool -> flatten -> ip; a BatchNorm branch after the
// pool blocks thinning but not the known-zero walk of the other branch.
static const char* kChain = R"(
  name: "chain"
  layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
  layer { name: "conv" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 4 kernel_size: 3 } }
  layer { name: "relu" type: "ReLU" bottom: "c" top: "c" }
  layer { name: "pool" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
  layer { name: "flat" type: "Flatten" bottom: "p" top: "f" }
  layer { name: "ip" type: "InnerProduct" bottom: "f" top: "y" inner_product_param { num_output: 5 } }
  layer { name: "bn" type: "BatchNorm" bottom: "p" top: "b" }
  layer { name: "flat2" type: "Flatten" bottom: "b" top: "f2" }
  layer { name: "ip2" type: "InnerProduct" bottom: "f2" top: "y2" inner_product_param { num_output: 5 } }
)";

TEST_CASE("the channel pass follows the descriptions in its known-zero and physical modes", "[net][describe]") {
  std::mt19937_64 rng(2);
  Net net(net_param(kChain), TEST, rng);
  const LayerGraph& g = net.graph();
  const int conv = g.index_of("conv"), ip = g.index_of("ip"), ip2 = g.index_of("ip2");
  REQUIRE(conv >= 0);
  std::vector<std::vector<int>> kept(g.size());
  kept[size_t(conv)] = {0, 2};
  // Pooled planes are 2x2 = 4 features per channel: channels 0 and 2 are features 0-3 and 8-11.
  const std::vector<int> features{0, 1, 2, 3, 8, 9, 10, 11};
  const UnitPassResult known = propagate_units(g, kept, UnitPassMode::kKnownZero);
  CHECK(known.inputs[size_t(ip)] == features);
  CHECK(known.inputs[size_t(ip2)].empty());  // BatchNorm shifts zeros
  CHECK(known.blocked.empty());
  const UnitPassResult physical = propagate_units(g, kept, UnitPassMode::kPhysical);
  CHECK(physical.inputs[size_t(ip)] == features);
  REQUIRE(physical.blocked.count("conv") == 1);
  CHECK_THAT(physical.blocked.at("conv"), Catch::Contains("'bn' (BatchNorm)"));

  // The Net's own structure pass sets the consumers' active inputs from the producers' outputs.
  net.layers()[size_t(conv)]->set_active_outputs({0, 2});
  net.propagate_structure();
  CHECK(net.layers()[size_t(ip)]->active_inputs() == features);
  CHECK(net.layers()[size_t(ip2)]->active_inputs().empty());
}
