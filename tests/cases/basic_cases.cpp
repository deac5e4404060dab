// Device cases: ReLU, InnerProduct (dense), SoftmaxWithLoss.
#include "support/device_cases.hpp"

namespace dsg::test {
namespace {

// Class ids 0..C-1 (as floats), with one ignored label where `ignore` >= 0.
std::function<void(int, Tensor&)> labels_for_bottom1(int classes) {
  return [classes](int index, Tensor& t) {
    float* x = t.mutable_data();
    for (int i = 0; i < t.count(); ++i) x[i] = index == 1 ? float((i * 7 + 3) % classes) : float((i * 37 % 101) - 50) / 25.0f;
  };
}

DSG_DEVICE_CASES({
    {.name = "ReLU leaky", .layer = "name: 'r' type: 'ReLU' relu_param { negative_slope: 0.05 }", .bottoms = {{4, 3, 5}}},
    {.name = "ReLU in place", .layer = "name: 'r' type: 'ReLU'", .bottoms = {{4, 6}}, .in_place = true},
    {.name = "InnerProduct dense",
     .layer = "name: 'ip' type: 'InnerProduct' inner_product_param { num_output: 7 weight_filler { type: 'gaussian' } "
              "bias_filler { type: 'gaussian' } }",
     .bottoms = {{6, 2, 5}},
     .terms = 11},
    {.name = "InnerProduct transposed",
     .layer = "name: 'ip' type: 'InnerProduct' inner_product_param { num_output: 7 transpose: true weight_filler { "
              "type: 'gaussian' } bias_filler { type: 'gaussian' } }",
     .bottoms = {{6, 10}},
     .terms = 11},
    {.name = "SoftmaxWithLoss ignore label",
     .layer = "name: 'loss' type: 'SoftmaxWithLoss' loss_param { ignore_label: 2 }",
     .bottoms = {{8, 5}, {8}},
     .fill = labels_for_bottom1(5),
     .terms = 8},
});

}  // namespace
}  // namespace dsg::test
