#include <catch2/catch.hpp>

#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/net.hpp"
#include "support/gradient_checker.hpp"

using namespace dsg;

static NetParameter parse_net(const std::string& text) {
  NetParameter net;
  parse_text_proto(text, "test-net", &net);
  return net;
}

// x -> ip_a -> a ; x -> ip_b -> b ; a + b -> sum (x fans out: a Split is needed).
static const char* kFanOut = R"(
  name: "fan"
  layer { name: "in" type: "Input" top: "x" top: "label" input_param { shape { dim: 4 dim: 6 } shape { dim: 4 } } }
  layer { name: "ip_a" type: "InnerProduct" bottom: "x" top: "a" inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
  layer { name: "ip_b" type: "InnerProduct" bottom: "x" top: "b" inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
  layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }
  layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label" top: "loss" }
  layer { name: "acc" type: "Accuracy" bottom: "s" bottom: "label" top: "accuracy" include { phase: TEST } }
)";

TEST_CASE("insert_splits adds a Split where a blob has several consumers", "[net]") {
  NetParameter split = insert_splits(parse_net(kFanOut));
  int splits = 0;
  for (const auto& l : split.layer()) splits += l.type() == "Split";
  // x feeds ip_a and ip_b; s and label feed loss and acc.
  CHECK(splits == 3);
  CHECK(split.layer(1).type() == "Split");
  CHECK(split.layer(1).top_size() == 2);
  CHECK(split.layer(2).type() == "Split");  // label
  CHECK(split.layer(3).bottom(0) == split.layer(1).top(0));
  CHECK(split.layer(4).bottom(0) == split.layer(1).top(1));
}

TEST_CASE("phase filtering keeps TRAIN and TEST layers apart", "[net]") {
  std::mt19937_64 rng(1);
  Net train(parse_net(kFanOut), TRAIN, rng);
  Net test(parse_net(kFanOut), TEST, rng);
  CHECK(train.layer_by_name("acc") == nullptr);
  CHECK(test.layer_by_name("acc") != nullptr);
  CHECK(train.output_names() == std::vector<std::string>{"loss"});
  CHECK(test.output_names() == std::vector<std::string>{"loss", "accuracy"});
}

TEST_CASE("net gradient through split, in-place ReLU and Eltwise matches finite differences", "[net][gradient]") {
  std::mt19937_64 rng(3);
  Net net(parse_net(kFanOut), TRAIN, rng);
  Tensor& x = net.blob("x");
  test::fill_uniform(x, -1, 1, 5);
  float* label = net.blob("label").mutable_data();
  for (int i = 0; i < 4; ++i) label[i] = float(i % 3);
  Context ctx;
  net.zero_param_diffs();
  net.forward_backward(ctx);
  // Check parameter gradients of both branches numerically.
  for (const auto& p : net.learnable_params()) {
    for (int64_t i = 0; i < p.tensor->count(); i += 2) {
      float orig = p.tensor->mutable_data()[i];
      const float h = 1e-2f;
      p.tensor->mutable_data()[i] = orig + h;
      double plus = net.forward(ctx);
      p.tensor->mutable_data()[i] = orig - h;
      double minus = net.forward(ctx);
      p.tensor->mutable_data()[i] = orig;
      double numeric = (plus - minus) / (2 * h);
      INFO(p.layer << "[" << p.index << "] element " << i);
      CHECK(p.tensor->diff()[i] == Approx(numeric).margin(2e-3));
    }
  }
}

TEST_CASE("parameters live in one contiguous arena and TEST shares TRAIN's weights", "[net]") {
  std::mt19937_64 rng(1);
  Net train(parse_net(kFanOut), TRAIN, rng);
  Net test(parse_net(kFanOut), TEST, rng);
  test.share_params_from(train);
  size_t expected = 2 * (3 * 6 + 3);
  CHECK(train.arena_size() == expected);
  const float* base = train.arena_data();
  size_t offset = 0;
  for (const auto& p : train.learnable_params()) {
    CHECK(p.tensor->data() == base + offset);
    offset += size_t(p.tensor->count());
  }
  train.learnable_params()[0].tensor->mutable_data()[0] = 123.0f;
  CHECK(test.layer_by_name("ip_a")->blobs()[0]->data()[0] == 123.0f);
}

TEST_CASE("net construction errors name the layer", "[net][errors]") {
  std::mt19937_64 rng(1);
  auto error_of = [&](const std::string& text) {
    try {
      Net net(parse_net(text), TRAIN, rng);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(error_of(R"(layer { name: "ip" type: "InnerProduct" bottom: "nope" top: "y" inner_product_param { num_output: 2 } })"),
             Catch::Contains("layer 'ip'") && Catch::Contains("unknown bottom blob 'nope'"));
  // Mismatched shapes: Eltwise of (2,3) and (2,4).
  std::string shapes = R"(
    layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 4 } } }
    layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "c" })";
  std::string e = error_of(shapes);
  CHECK_THAT(e, Catch::Contains("sum") && Catch::Contains("(2,3)") && Catch::Contains("(2,4)"));
  CHECK_THAT(error_of(R"(layer { name: "x" type: "Bogus" })"), Catch::Contains("unknown layer type 'Bogus'"));
  CHECK_THAT(error_of(R"(
    layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "in" type: "ReLU" bottom: "a" top: "b" })"), Catch::Contains("duplicate layer name"));
  CHECK_THAT(error_of(R"(
    layer { name: "in" type: "Input" top: "a" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "a" top: "a" inner_product_param { num_output: 3 } })"),
             Catch::Contains("cannot run in place"));
}

TEST_CASE("layer locations prefix net errors", "[net][errors]") {
  std::mt19937_64 rng(1);
  NetParameter p = parse_net(R"(layer { name: "ip" type: "InnerProduct" bottom: "nope" top: "y" inner_product_param { num_output: 2 } })");
  CHECK_THROWS_WITH(Net(p, TRAIN, rng, {"cfg.prototxt:7:3"}), Catch::StartsWith("cfg.prototxt:7:3: "));
}
