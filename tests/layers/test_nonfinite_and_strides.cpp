// Hardening (#16, items 1 and 2): non-finite scores are never counted as hits (NaN compares false
// with everything, so a NaN row used to rank the true class first: 100% accuracy), on the CPU path
// and the device code run on the host; MAX / AVE pooling with a stride near 2^31 stays in bounds
// and windows that would start past the input are not produced.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "support/gradient_checker.hpp"

using namespace dsg;

namespace {

LayerParameter accuracy_param(int top_k) {
  LayerParameter p;
  p.set_name("acc");
  p.set_type("Accuracy");
  p.mutable_accuracy_param()->set_top_k(top_k);
  return p;
}

float accuracy_of(const std::vector<float>& scores, const std::vector<float>& labels, int classes, int top_k,
                  bool device_code) {
  auto layer = create_layer(accuracy_param(top_k));
  Tensor x({int(labels.size()), classes}), label({int(labels.size())}), acc;
  for (size_t i = 0; i < scores.size(); ++i) x.mutable_data()[i] = scores[i];
  for (size_t i = 0; i < labels.size(); ++i) label.mutable_data()[i] = labels[i];
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&acc}, rng);
  Context ctx;
  ctx.device_code_on_host = device_code;
  layer->forward({&x, &label}, {&acc}, ctx);
  return acc.data()[0];
}

}  // namespace

TEST_CASE("Accuracy counts rows with NaN or infinite scores as misses", "[layer][accuracy][hardening]") {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (bool device_code : {false, true}) {
    INFO("device code on the host: " << device_code);
    // All NaN: used to score 1.0.
    CHECK(accuracy_of({nan, nan, nan, nan, nan, nan}, {0, 1}, 3, 1, device_code) == 0.0f);
    // NaN only in a rival class, or only in the true class: misses, even at top-3 of 3.
    CHECK(accuracy_of({0.9f, nan, 0.1f}, {0}, 3, 1, device_code) == 0.0f);
    CHECK(accuracy_of({nan, 0.5f, 0.1f}, {0}, 3, 3, device_code) == 0.0f);
    CHECK(accuracy_of({inf, 0.5f, 0.1f}, {0}, 3, 1, device_code) == 0.0f);
    // Finite rows are unchanged: one hit of two.
    CHECK(accuracy_of({0.9f, 0.1f, 0.2f, 0.3f, 0.1f, 0.2f}, {0, 1}, 3, 1, device_code) == 0.5f);
  }
}

TEST_CASE("Pooling with a huge stride stays inside the input", "[layer][pooling][hardening]") {
  for (auto method : {PoolingParameter::MAX, PoolingParameter::AVE}) {
    LayerParameter p;
    p.set_name("pool");
    p.set_type("Pooling");
    p.mutable_pooling_param()->set_pool(method);
    p.mutable_pooling_param()->set_kernel_size(2);
    p.mutable_pooling_param()->set_stride(2147483600);  // near 2^31: o * stride overflowed an int
    auto layer = create_layer(p);
    Tensor x({1, 1, 6, 6}), y;
    for (int i = 0; i < 36; ++i) x.mutable_data()[i] = float(i);
    std::mt19937_64 rng(1);
    layer->setup({&x}, {&y}, rng);
    // One window per axis: a second would start past the input.
    REQUIRE(y.shape() == std::vector<int>{1, 1, 1, 1});
    layer->forward({&x}, {&y}, Context{});
    CHECK(y.data()[0] == (method == PoolingParameter::MAX ? 7.0f : (0 + 1 + 6 + 7) / 4.0f));
  }
  // A stride past the rest of the input without padding: Caffe would add an output of nothing.
  LayerParameter p;
  p.set_name("pool");
  p.set_type("Pooling");
  p.mutable_pooling_param()->set_pool(PoolingParameter::AVE);
  p.mutable_pooling_param()->set_kernel_size(4);
  p.mutable_pooling_param()->set_stride(8);
  auto layer = create_layer(p);
  Tensor x({1, 1, 5, 5}), y;
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  CHECK(y.shape() == std::vector<int>{1, 1, 1, 1});
}
