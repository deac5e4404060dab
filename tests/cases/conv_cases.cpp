// Device cases: Convolution (dense and structured; layers/convolution_device.cpp), Pooling, BatchNorm.
#include <catch2/catch.hpp>

#include <string>

#include "runtime/device.hpp"
#include "layers/conv_kernels.hpp"
#include "support/device_cases.hpp"
#include "support/gradient_checker.hpp"

namespace dsg::test {
namespace {

std::string conv(const std::string& extra) {
  return "name: 'conv' type: 'Convolution' convolution_param { weight_filler { type: 'gaussian' std: 0.5 } "
         "bias_filler { type: 'gaussian' std: 0.5 } " + extra + " }";
}

std::function<void(Layer&)> structure(std::vector<int> outs, std::vector<int> ins) {
  return [outs, ins](Layer& layer) {
    layer.set_active_outputs(outs);
    layer.set_active_inputs(ins);
  };
}

// Input channels not in `ins` are zero (what active_inputs promises).
std::function<void(int, Tensor&)> zero_channels_except(std::vector<int> ins) {
  return [ins](int index, Tensor& t) {
    const std::vector<float> v = uniform_vector(size_t(t.count()), 100 + uint32_t(index));
    const int64_t plane = t.count(2);
    float* x = t.mutable_data();
    for (int64_t i = 0; i < t.count(); ++i) {
      const int c = int((i / plane) % t.shape(1));
      bool kept = false;
      for (int k : ins) kept = kept || k == c;
      x[i] = kept ? v[size_t(i)] : 0.0f;
    }
  };
}

// Values on a coarse grid, so that pooling windows hold ties (the first maximum wins).
void coarse(int, Tensor& t) {
  float* x = t.mutable_data();
  for (int64_t i = 0; i < t.count(); ++i) x[i] = float((i * 7 + 3) % 5) - 2.0f;
}

// Running statistics of a BatchNorm that has seen batches already (channel 1 never computed).
void seen_statistics(Layer& layer) {
  for (int b = 0; b < 2; ++b) {
    Tensor& t = *layer.blobs()[size_t(b)];
    float* p = t.mutable_data();
    for (int c = 0; c < t.count(); ++c) p[c] = c == 1 ? 0.0f : (b == 0 ? 0.3f * float(c) - 0.4f : 0.5f + 0.25f * float(c));
  }
  layer.blobs()[2]->mutable_data()[0] = 2.5f;
}

// Channel 1 is zero for the whole batch (not computed this pass).
void zero_channel_1(int, Tensor& t) {
  const std::vector<float> v = uniform_vector(size_t(t.count()), 100);
  const int64_t plane = t.count(2);
  float* x = t.mutable_data();
  for (int64_t i = 0; i < t.count(); ++i) x[i] = (i / plane) % t.shape(1) == 1 ? 0.0f : v[size_t(i)];
}

DSG_DEVICE_CASES({
    // --- Convolution, dense ---
    {.name = "Convolution dense 3x3 pad 1",
     .layer = conv("num_output: 5 kernel_size: 3 pad: 1"),
     .bottoms = {{2, 3, 7, 6}},
     .terms = 84},
    {.name = "Convolution group 2",
     .layer = conv("num_output: 6 group: 2 kernel_size: 2"),
     .bottoms = {{3, 4, 6, 5}},
     .terms = 60},
    {.name = "Convolution stride 2 pad 2 dilation 2",
     .layer = conv("num_output: 4 kernel_size: 3 stride: 2 pad: 2 dilation: 2"),
     .bottoms = {{2, 3, 9, 11}},
     .terms = 60},
    {.name = "Convolution two bottoms",
     .layer = conv("num_output: 4 kernel_size: 3 pad: 1 stride: 2"),
     .bottoms = {{2, 3, 5, 5}, {2, 3, 5, 5}},
     .tops = 2,
     .terms = 40},
    {.name = "Convolution no bias, rectangular kernel and stride",
     .layer = conv("num_output: 3 bias_term: false kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0"),
     .bottoms = {{2, 2, 6, 7}},
     .terms = 40},
    {.name = "Convolution odd sizes, two passes",
     .layer = conv("num_output: 7 kernel_size: 5 pad: 2 stride: 3"),
     .bottoms = {{3, 5, 13, 7}},
     .passes = 2,
     .terms = 180},
    {.name = "Convolution 1x1 group 3",
     .layer = conv("num_output: 6 group: 3 kernel_size: 1"),
     .bottoms = {{2, 9, 3, 5}},
     .terms = 30},
    // --- Convolution, structured ---
    {.name = "Convolution active outputs",
     .layer = conv("num_output: 6 kernel_size: 3 pad: 1"),
     .bottoms = {{2, 3, 5, 6}},
     .prepare = structure({0, 2, 5}, {}),
     .passes = 2,
     .terms = 60},
    {.name = "Convolution active inputs",
     .layer = conv("num_output: 4 kernel_size: 3 stride: 2"),
     .bottoms = {{2, 5, 7, 8}},
     .fill = zero_channels_except({1, 3, 4}),
     .prepare = structure({}, {1, 3, 4}),
     .passes = 2,
     .terms = 50},
    {.name = "Convolution active outputs and inputs, group 2",
     .layer = conv("num_output: 6 group: 2 kernel_size: 3 pad: 1 dilation: 2"),
     .bottoms = {{2, 6, 7, 5}},
     .fill = zero_channels_except({0, 2, 5}),
     .prepare = structure({1, 3, 4}, {0, 2, 5}),
     .passes = 2,
     .terms = 80},
    {.name = "Convolution group without kept outputs",
     .layer = conv("num_output: 4 group: 2 kernel_size: 2"),
     .bottoms = {{2, 4, 5, 5}},
     .prepare = structure({0, 1}, {}),
     .terms = 40},
    {.name = "Convolution group without kept inputs, two bottoms",
     .layer = conv("num_output: 4 group: 2 kernel_size: 3 pad: 1"),
     .bottoms = {{2, 4, 5, 4}, {2, 4, 5, 4}},
     .tops = 2,
     .fill = zero_channels_except({0, 1}),
     .prepare = structure({}, {0, 1}),
     .terms = 40},
    // --- Pooling ---
    {.name = "Pooling max 3x3 stride 2 pad 1 with mask top",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }",
     .bottoms = {{2, 3, 7, 8}},
     .tops = 2,
     .terms = 9},
    {.name = "Pooling max 3x3 stride 2 pad 1",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }",
     .bottoms = {{2, 3, 7, 8}},
     .terms = 9},
    {.name = "Pooling max ties, 2x2 stride 2 odd sizes",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 2 stride: 2 }",
     .bottoms = {{2, 2, 5, 7}},
     .fill = coarse,
     .terms = 4},
    {.name = "Pooling max overlapping ties, 3x3 stride 1 pad 2",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 2 }",
     .bottoms = {{1, 3, 6, 5}},
     .fill = coarse,
     .terms = 9},
    {.name = "Pooling ave 3x3 stride 2 pad 1",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 }",
     .bottoms = {{2, 3, 9, 10}},
     .terms = 9},
    {.name = "Pooling ave rectangular floor",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 "
              "pad_h: 1 pad_w: 1 round_mode: FLOOR }",
     .bottoms = {{1, 2, 8, 11}},
     .terms = 6},
    {.name = "Pooling max rectangular ceil",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 3 stride_w: 2 "
              "pad_h: 1 pad_w: 2 }",
     .bottoms = {{2, 2, 10, 9}},
     .terms = 6},
    {.name = "Pooling global ave",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: AVE global_pooling: true }",
     .bottoms = {{2, 3, 5, 6}},
     .terms = 30},
    {.name = "Pooling global max with mask top",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: MAX global_pooling: true }",
     .bottoms = {{2, 4, 3, 7}},
     .tops = 2,
     .terms = 21},
    {.name = "Pooling global max",
     .layer = "name: 'p' type: 'Pooling' pooling_param { pool: MAX global_pooling: true }",
     .bottoms = {{2, 4, 3, 7}},
     .terms = 21},
    // --- BatchNorm ---
    {.name = "BatchNorm train, 2 passes",
     .layer = "name: 'bn' type: 'BatchNorm' batch_norm_param { moving_average_fraction: 0.9 }",
     .bottoms = {{4, 3, 5, 6}},
     .passes = 2,
     .terms = 120},
    {.name = "BatchNorm train, several runs per channel",
     .layer = "name: 'bn' type: 'BatchNorm'",
     .bottoms = {{4, 2, 30, 20}},
     .passes = 2,
     .terms = 2400},
    {.name = "BatchNorm train (N, C), 3 passes",
     .layer = "name: 'bn' type: 'BatchNorm'",
     .bottoms = {{7, 5}},
     .passes = 3,
     .terms = 7},
    {.name = "BatchNorm train in place, 2 passes",
     .layer = "name: 'bn' type: 'BatchNorm' batch_norm_param { eps: 0.001 }",
     .bottoms = {{3, 4, 3, 5}},
     .passes = 2,
     .terms = 45,
     .in_place = true},
    {.name = "BatchNorm train, a channel not computed",
     .layer = "name: 'bn' type: 'BatchNorm' batch_norm_param { moving_average_fraction: 0.8 }",
     .bottoms = {{3, 4, 2, 3}},
     .fill = zero_channel_1,
     .prepare = seen_statistics,
     .passes = 2,
     .terms = 18},
    {.name = "BatchNorm train, first statistics of a channel",
     .layer = "name: 'bn' type: 'BatchNorm' batch_norm_param { moving_average_fraction: 0.8 }",
     .bottoms = {{3, 4, 2, 3}},
     .prepare = seen_statistics,
     .passes = 2,
     .terms = 18},
    {.name = "BatchNorm test phase",
     .layer = "name: 'bn' type: 'BatchNorm'",
     .bottoms = {{3, 4, 3, 5}},
     .prepare = seen_statistics,
     .phase = TEST,
     .passes = 2,
     .terms = 4},
    {.name = "BatchNorm use_global_stats in training",
     .layer = "name: 'bn' type: 'BatchNorm' batch_norm_param { use_global_stats: true eps: 0.01 }",
     .bottoms = {{2, 5, 4, 3}},
     .prepare = seen_statistics,
     .terms = 4},
    {.name = "BatchNorm use_global_stats false in test",
     .layer = "name: 'bn' type: 'BatchNorm' batch_norm_param { use_global_stats: false }",
     .bottoms = {{2, 5, 4, 3}},
     .phase = TEST,
     .passes = 2,
     .terms = 24},
});

// Convolution's device code in several im2col + GEMM steps per batch (the budget of columns per
// step lowered to one or two images), against the CPU path: on the host, and on CUDA device 0
// where there is one.
TEST_CASE("Convolution device code in several steps per batch", "[device_code]") {
  const std::vector<DeviceCase> cases = {
      {.name = "Convolution chunked, dense, two bottoms",
       .layer = conv("num_output: 5 kernel_size: 3 pad: 1 stride: 2"),
       .bottoms = {{5, 3, 7, 6}, {5, 3, 7, 6}},
       .tops = 2,
       .passes = 2,
       .terms = 80},
      {.name = "Convolution chunked, active outputs and inputs, group 2",
       .layer = conv("num_output: 6 group: 2 kernel_size: 3 pad: 1"),
       .bottoms = {{5, 6, 5, 7}},
       .fill = zero_channels_except({0, 2, 5}),
       .prepare = structure({1, 3, 4}, {0, 2, 5}),
       .passes = 2,
       .terms = 180},
  };
  std::vector<Context> targets(1);
  targets[0].device_code_on_host = true;
  if (cuda_device_count() > 0) {
    targets.emplace_back();
    targets.back().device = Device::cuda(0);
  }
  struct Restore {
    int64_t saved = conv_kernels::device_column_floats;
    ~Restore() { conv_kernels::device_column_floats = saved; }
  } restore;
  for (const int64_t budget : {int64_t(1), int64_t(2 * 27 * 4 * 3)}) {
    conv_kernels::device_column_floats = budget;
    for (const Context& target : targets)
      for (const DeviceCase& c : cases) {
        INFO(c.name << " on " << target.device.name() << ", column budget " << budget);
        run_device_case(c, target);
      }
  }
}

}  // namespace
}  // namespace dsg::test
