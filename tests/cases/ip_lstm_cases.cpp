// Device cases: InnerProduct's structured modes (active outputs / inputs) and the LSTM (dense).
#include <algorithm>
#include <string>

#include "support/device_cases.hpp"
#include "support/gradient_checker.hpp"

namespace dsg::test {
namespace {

std::string ip_layer(int num_output, bool bias, int axis = 1) {
  return "name: 'ip' type: 'InnerProduct' inner_product_param { num_output: " + std::to_string(num_output) +
         " axis: " + std::to_string(axis) + (bias ? "" : " bias_term: false") +
         " weight_filler { type: 'gaussian' } bias_filler { type: 'gaussian' } }";
}

std::function<void(Layer&)> structure(std::vector<int> outs, std::vector<int> ins) {
  return [outs, ins](Layer& layer) {
    layer.set_active_outputs(outs);
    layer.set_active_inputs(ins);
  };
}

// Bottom 0 uniform in [-1, 1); only the kept input features may be non-zero (active_inputs says the
// others are known zero; the layer skips them, so a non-zero there would differ from dense anyway).
std::function<void(int, Tensor&)> zero_outside(std::vector<int> ins, int features) {
  return [ins, features](int, Tensor& t) {
    const std::vector<float> v = uniform_vector(size_t(t.count()), 77);
    std::vector<bool> kept(size_t(features), ins.empty());
    for (int i : ins) kept[size_t(i)] = true;
    float* x = t.mutable_data();
    for (int64_t e = 0; e < t.count(); ++e) x[e] = kept[size_t(e % features)] ? v[size_t(e)] : 0.0f;
  };
}

DSG_DEVICE_CASES({
    {.name = "InnerProduct active outputs",
     .layer = ip_layer(11, true),
     .bottoms = {{9, 13}},
     .prepare = structure({0, 2, 3, 7, 10}, {}),
     .passes = 2,
     .terms = 14},
    {.name = "InnerProduct active outputs no bias, strided rows",
     .layer = ip_layer(11, false),
     .bottoms = {{9, 13}},
     .prepare = structure({1, 4, 7, 10}, {}),
     .passes = 2,
     .terms = 14},
    {.name = "InnerProduct active outputs, one output",
     .layer = ip_layer(6, true),
     .bottoms = {{5, 7}},
     .prepare = structure({4}, {}),
     .terms = 8},
    {.name = "InnerProduct active inputs",
     .layer = ip_layer(7, true),
     .bottoms = {{9, 3, 5}},
     .fill = zero_outside({0, 1, 2, 5, 6, 9, 12, 13, 14}, 15),
     .prepare = structure({}, {0, 1, 2, 5, 6, 9, 12, 13, 14}),
     .passes = 2,
     .terms = 16},
    {.name = "InnerProduct active inputs no bias, interleaved",
     .layer = ip_layer(7, false),
     .bottoms = {{6, 15}},
     .fill = zero_outside({1, 3, 5, 7, 9, 11, 13}, 15),
     .prepare = structure({}, {1, 3, 5, 7, 9, 11, 13}),
     .terms = 16},
    {.name = "InnerProduct active outputs and inputs",
     .layer = ip_layer(10, true),
     .bottoms = {{7, 12}},
     .fill = zero_outside({0, 3, 4, 5, 8, 11}, 12),
     .prepare = structure({1, 2, 6, 9}, {0, 3, 4, 5, 8, 11}),
     .passes = 2,
     .terms = 13},
    {.name = "InnerProduct active outputs and inputs no bias",
     .layer = ip_layer(10, false),
     .bottoms = {{7, 12}},
     .fill = zero_outside({2, 3, 4, 5, 6, 7, 8}, 12),
     .prepare = structure({0, 3, 6, 9}, {2, 3, 4, 5, 6, 7, 8}),
     .terms = 13},
    {.name = "InnerProduct active outputs and inputs, axis 2",
     .layer = ip_layer(9, true, 2),
     .bottoms = {{3, 5, 11}},
     .fill = zero_outside({0, 1, 4, 7, 10}, 11),
     .prepare = structure({0, 5, 8}, {0, 1, 4, 7, 10}),
     .passes = 2,
     .terms = 16},
    {.name = "InnerProduct active outputs, axis -1",
     .layer = ip_layer(9, true, -1),
     .bottoms = {{2, 3, 6}},
     .prepare = structure({2, 3, 4, 8}, {}),
     .terms = 7},
    {.name = "InnerProduct active inputs, frozen weights",
     .layer = ip_layer(5, true) + " param { lr_mult: 0 } param { lr_mult: 1 }",
     .bottoms = {{4, 9}},
     .fill = zero_outside({2, 4, 8}, 9),
     .prepare = structure({}, {2, 4, 8}),
     .terms = 10},
});

std::string lstm_layer(int num_output) {
  return "name: 'lstm' type: 'LSTM' recurrent_param { num_output: " + std::to_string(num_output) +
         " weight_filler { type: 'uniform' min: -0.5 max: 0.5 } bias_filler { type: 'uniform' min: -0.3 max: 0.3 } }";
}

// Bottom 0 (x) uniform in [-1, 1); bottom 1 (cont [T, N]) from cont(t, n).
std::function<void(int, Tensor&)> lstm_inputs(std::function<float(int, int)> cont) {
  return [cont](int index, Tensor& t) {
    float* v = t.mutable_data();
    if (index == 0) {
      const std::vector<float> u = uniform_vector(size_t(t.count()), 91);
      std::copy(u.begin(), u.end(), v);
      return;
    }
    const int T = t.shape(0), N = t.shape(1);
    for (int s = 0; s < T; ++s)
      for (int n = 0; n < N; ++n) v[s * N + n] = cont(s, n);
  };
}

// terms: the recurrence chains every step's GEMMs (D + H) and the parameter diffs sum over T N rows.
DSG_DEVICE_CASES({
    {.name = "LSTM continuous sequences",
     .layer = lstm_layer(5),
     .bottoms = {{6, 3, 7}, {6, 3}},
     .fill = lstm_inputs([](int t, int) { return t == 0 ? 0.0f : 1.0f; }),
     .passes = 2,
     .terms = 6 * (7 + 5 + 3)},
    {.name = "LSTM restarts within the batch",
     .layer = lstm_layer(9),
     .bottoms = {{7, 4, 3}, {7, 4}},
     .fill = lstm_inputs([](int t, int n) { return t == 0 || (t + n) % 3 == 0 ? 0.0f : 1.0f; }),
     .passes = 2,
     .terms = 7 * (3 + 9 + 4)},
    {.name = "LSTM every stream restarts at one step, cont at t = 0 set",
     .layer = lstm_layer(4),
     .bottoms = {{5, 2, 6}, {5, 2}},
     .fill = lstm_inputs([](int t, int) { return t == 2 ? 0.0f : 1.0f; }),
     .passes = 2,
     .terms = 5 * (6 + 4 + 2)},
    {.name = "LSTM one step",
     .layer = lstm_layer(3),
     .bottoms = {{1, 5, 4}, {1, 5}},
     .fill = lstm_inputs([](int, int) { return 0.0f; }),
     .terms = 4 + 3 + 5},
    {.name = "LSTM frozen input weights",
     .layer = lstm_layer(6) + " param { lr_mult: 0 } param { lr_mult: 1 } param { lr_mult: 1 }",
     .bottoms = {{4, 3, 5}, {4, 3}},
     .fill = lstm_inputs([](int t, int n) { return t == 0 || (t == 2 && n == 1) ? 0.0f : 1.0f; }),
     .terms = 4 * (5 + 6 + 3)},
});

}  // namespace
}  // namespace dsg::test
