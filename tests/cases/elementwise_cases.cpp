// Device cases: Sigmoid, TanH, Dropout, Scale, Eltwise, Softmax, Accuracy.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "runtime/error.hpp"
#include "support/device_cases.hpp"

namespace dsg::test {
namespace {

// Values with many exact ties (multiples of 0.25 in [-1.25, 1.25]); bottom `labels` (if >= 0)
// gets class ids 0..classes-1 as floats instead.
std::function<void(int, Tensor&)> tied_values(int labels = -1, int classes = 1) {
  return [labels, classes](int index, Tensor& t) {
    float* x = t.mutable_data();
    for (int i = 0; i < t.count(); ++i)
      x[i] = index == labels ? float((i * 5 + i / 3) % classes) : float((i * 37 + index * 11) % 11 - 5) / 4.0f;
  };
}

// Uniform values, with zeros every fifth element (PROD's gradient must not divide).
void with_zeros(int index, Tensor& t) {
  float* x = t.mutable_data();
  for (int i = 0; i < t.count(); ++i)
    x[i] = (i + index) % 5 == 0 ? 0.0f : float((i * 53 + index * 17) % 97 - 48) / 40.0f;
}

DSG_DEVICE_CASES({
    {.name = "Sigmoid", .layer = "name: 's' type: 'Sigmoid'", .bottoms = {{3, 5, 7}}},
    {.name = "Sigmoid in place", .layer = "name: 's' type: 'Sigmoid'", .bottoms = {{37}}, .in_place = true},
    {.name = "TanH", .layer = "name: 't' type: 'TanH'", .bottoms = {{4, 3, 3, 3}}},
    {.name = "TanH in place", .layer = "name: 't' type: 'TanH'", .bottoms = {{5, 13}}, .in_place = true},

    // Dropout: several passes (iteration = pass), so the mask changes and must match every time.
    {.name = "Dropout train",
     .layer = "name: 'drop' type: 'Dropout' dropout_param { dropout_ratio: 0.3 }",
     .bottoms = {{7, 3, 11}},
     .passes = 3},
    {.name = "Dropout train in place",
     .layer = "name: 'drop2' type: 'Dropout'",
     .bottoms = {{5, 9}},
     .passes = 3,
     .in_place = true},
    {.name = "Dropout odd count", .layer = "name: 'd' type: 'Dropout' dropout_param { dropout_ratio: 0.7 }",
     .bottoms = {{3}}, .passes = 2},
    {.name = "Dropout ratio 0", .layer = "name: 'd' type: 'Dropout' dropout_param { dropout_ratio: 0 }",
     .bottoms = {{6, 7}}},
    {.name = "Dropout test", .layer = "name: 'drop' type: 'Dropout'", .bottoms = {{4, 10}}, .phase = TEST},
    {.name = "Dropout test in place",
     .layer = "name: 'drop' type: 'Dropout'",
     .bottoms = {{4, 10}},
     .phase = TEST,
     .in_place = true},

    // Scale: per channel, with a bias, scalar, several axes, in place, a frozen scale.
    {.name = "Scale per channel",
     .layer = "name: 'sc' type: 'Scale' scale_param { filler { type: 'gaussian' } }",
     .bottoms = {{3, 5, 2, 3}},
     .passes = 2},
    {.name = "Scale with bias",
     .layer = "name: 'sc' type: 'Scale' scale_param { bias_term: true filler { type: 'gaussian' } "
              "bias_filler { type: 'gaussian' } }",
     .bottoms = {{4, 7, 5}}},
    {.name = "Scale with bias in place",
     .layer = "name: 'sc' type: 'Scale' scale_param { bias_term: true filler { type: 'gaussian' } "
              "bias_filler { type: 'gaussian' } }",
     .bottoms = {{4, 7, 5}},
     .passes = 2,
     .in_place = true},
    {.name = "Scale scalar",
     .layer = "name: 'sc' type: 'Scale' scale_param { axis: 0 num_axes: 0 filler { type: 'gaussian' } }",
     .bottoms = {{3, 4, 5}}},
    {.name = "Scale two axes",
     .layer = "name: 'sc' type: 'Scale' scale_param { axis: 1 num_axes: 2 bias_term: true "
              "filler { type: 'gaussian' } bias_filler { type: 'gaussian' } }",
     .bottoms = {{2, 3, 5, 3}}},
    {.name = "Scale to the end, negative axis",
     .layer = "name: 'sc' type: 'Scale' scale_param { axis: -2 num_axes: -1 filler { type: 'gaussian' } }",
     .bottoms = {{3, 2, 3, 7}}},
    {.name = "Scale frozen scale",
     .layer = "name: 'sc' type: 'Scale' param { lr_mult: 0 } param { lr_mult: 1 } "
              "scale_param { bias_term: true filler { type: 'gaussian' } bias_filler { type: 'gaussian' } }",
     .bottoms = {{2, 9}}},

    // Eltwise: SUM with and without coefficients, PROD with zeros, MAX with ties, more bottoms
    // than one kernel launch takes, a bottom without gradient.
    {.name = "Eltwise SUM", .layer = "name: 'e' type: 'Eltwise'", .bottoms = {{3, 4, 5}, {3, 4, 5}}, .terms = 2},
    {.name = "Eltwise SUM coeff",
     .layer = "name: 'e' type: 'Eltwise' eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1.5 }",
     .bottoms = {{5, 7}, {5, 7}, {5, 7}},
     .terms = 3},
    {.name = "Eltwise SUM eleven bottoms",
     .layer = "name: 'e' type: 'Eltwise' eltwise_param { coeff: 1 coeff: 2 coeff: 3 coeff: 4 coeff: 5 coeff: 6 "
              "coeff: 7 coeff: 8 coeff: 9 coeff: 10 coeff: -11 }",
     .bottoms = {{3, 5}, {3, 5}, {3, 5}, {3, 5}, {3, 5}, {3, 5}, {3, 5}, {3, 5}, {3, 5}, {3, 5}, {3, 5}},
     .terms = 11},
    {.name = "Eltwise PROD",
     .layer = "name: 'e' type: 'Eltwise' eltwise_param { operation: PROD }",
     .bottoms = {{4, 9}, {4, 9}, {4, 9}},
     .fill = with_zeros,
     .terms = 3},
    {.name = "Eltwise PROD ten bottoms",
     .layer = "name: 'e' type: 'Eltwise' eltwise_param { operation: PROD }",
     .bottoms = {{2, 7}, {2, 7}, {2, 7}, {2, 7}, {2, 7}, {2, 7}, {2, 7}, {2, 7}, {2, 7}, {2, 7}},
     .fill = with_zeros,
     .terms = 10},
    {.name = "Eltwise MAX ties",
     .layer = "name: 'e' type: 'Eltwise' eltwise_param { operation: MAX }",
     .bottoms = {{6, 7}, {6, 7}, {6, 7}},
     .fill = tied_values(),
     .passes = 2},
    {.name = "Eltwise MAX nine bottoms",
     .layer = "name: 'e' type: 'Eltwise' eltwise_param { operation: MAX }",
     .bottoms = {{3, 11}, {3, 11}, {3, 11}, {3, 11}, {3, 11}, {3, 11}, {3, 11}, {3, 11}, {3, 11}},
     .fill = tied_values()},
    {.name = "Eltwise MAX partial backward",
     .layer = "name: 'e' type: 'Eltwise' eltwise_param { operation: MAX }",
     .bottoms = {{5, 5}, {5, 5}},
     .propagate = {false, true}},

    // Softmax over every kind of axis.
    {.name = "Softmax axis 1", .layer = "name: 'sm' type: 'Softmax'", .bottoms = {{5, 7}}, .terms = 7},
    {.name = "Softmax axis 1 spatial", .layer = "name: 'sm' type: 'Softmax'", .bottoms = {{3, 6, 2, 5}}, .terms = 6},
    {.name = "Softmax axis 0", .layer = "name: 'sm' type: 'Softmax' softmax_param { axis: 0 }", .bottoms = {{9, 4}},
     .terms = 9},
    {.name = "Softmax last axis", .layer = "name: 'sm' type: 'Softmax' softmax_param { axis: -1 }",
     .bottoms = {{2, 3, 13}}, .terms = 13},

    // Accuracy: top 1 and top k with ties, ignored labels, per-class accuracy, another axis.
    {.name = "Accuracy top 1",
     .layer = "name: 'acc' type: 'Accuracy'",
     .bottoms = {{37, 5}, {37}},
     .fill = tied_values(1, 5),
     .backward = false},
    {.name = "Accuracy top 3 ignore label per class",
     .layer = "name: 'acc' type: 'Accuracy' accuracy_param { top_k: 3 ignore_label: 2 }",
     .bottoms = {{300, 7}, {300}},
     .tops = 2,
     .fill = tied_values(1, 7),
     .backward = false},
    {.name = "Accuracy spatial axis per class",
     .layer = "name: 'acc' type: 'Accuracy' accuracy_param { top_k: 2 }",
     .bottoms = {{3, 4, 5, 2}, {3, 5, 2}},
     .tops = 2,
     .fill = tied_values(1, 4),
     .backward = false},
    {.name = "Accuracy last axis",
     .layer = "name: 'acc' type: 'Accuracy' accuracy_param { axis: -1 }",
     .bottoms = {{3, 5, 6}, {15}},
     .fill = tied_values(1, 6),
     .backward = false},
    {.name = "Accuracy every label ignored",
     .layer = "name: 'acc' type: 'Accuracy' accuracy_param { ignore_label: 0 }",
     .bottoms = {{4, 1}, {4}},
     .tops = 2,
     .fill = tied_values(1, 1),
     .backward = false},
});

}  // namespace
}  // namespace dsg::test

namespace dsg::test {
namespace {

// The device code cannot throw on a bad label without reading the labels back: it reports NaN.
TEST_CASE("Accuracy device code gives NaN for a label outside the classes", "[device_code]") {
  LayerParameter p;
  p.set_name("acc");
  p.set_type("Accuracy");
  auto layer = create_layer(p);
  Tensor x({2, 3}), label({2}), acc;
  std::fill(x.mutable_data(), x.mutable_data() + x.count(), 0.5f);
  label.mutable_data()[0] = 1;
  label.mutable_data()[1] = 3;
  std::mt19937_64 rng(1);
  layer->setup({&x, &label}, {&acc}, rng);
  Context host;
  host.device_code_on_host = true;
  layer->forward({&x, &label}, {&acc}, host);
  CHECK(std::isnan(acc.data()[0]));
  CHECK_THROWS_AS(layer->forward({&x, &label}, {&acc}, Context{}), Error);
}

}  // namespace
}  // namespace dsg::test
