// Device cases: Concat, Slice, Split, Flatten, Reshape, Silence, Input, ImageToSequence, Embed.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>

#include "runtime/error.hpp"
#include "support/device_cases.hpp"

namespace dsg::test {
namespace {

// Symbols 0..K-1 stored as floats, in a scattered order with repeats.
std::function<void(int, Tensor&)> symbols(int K) {
  return [K](int, Tensor& t) {
    float* x = t.mutable_data();
    for (int i = 0; i < t.count(); ++i) x[i] = float((i * 7 + 3) % K);
  };
}

DSG_DEVICE_CASES({
    // Concat along every kind of axis, the legacy concat_dim, a bottom without gradient.
    {.name = "Concat channels",
     .layer = "name: 'c' type: 'Concat'",
     .bottoms = {{2, 3, 4, 5}, {2, 1, 4, 5}, {2, 5, 4, 5}}},
    {.name = "Concat axis 0",
     .layer = "name: 'c' type: 'Concat' concat_param { axis: 0 }",
     .bottoms = {{3, 7}, {2, 7}}},
    {.name = "Concat last axis",
     .layer = "name: 'c' type: 'Concat' concat_param { axis: -1 }",
     .bottoms = {{3, 2, 5}, {3, 2, 1}, {3, 2, 3}}},
    {.name = "Concat concat_dim", .layer = "name: 'c' type: 'Concat' concat_param { concat_dim: 2 }",
     .bottoms = {{2, 3, 4}, {2, 3, 9}}},
    {.name = "Concat one bottom", .layer = "name: 'c' type: 'Concat'", .bottoms = {{3, 11}}},
    {.name = "Concat partial backward",
     .layer = "name: 'c' type: 'Concat'",
     .bottoms = {{4, 3}, {4, 6}},
     .propagate = {true, false}},

    // Slice: slice points, equal parts, another axis, the legacy slice_dim.
    {.name = "Slice points",
     .layer = "name: 's' type: 'Slice' slice_param { slice_point: 2 slice_point: 3 }",
     .bottoms = {{3, 7, 2, 3}},
     .tops = 3},
    {.name = "Slice equal parts axis 0", .layer = "name: 's' type: 'Slice' slice_param { axis: 0 }",
     .bottoms = {{6, 5}}, .tops = 3},
    {.name = "Slice last axis",
     .layer = "name: 's' type: 'Slice' slice_param { axis: -1 slice_point: 4 }",
     .bottoms = {{2, 3, 9}},
     .tops = 2},
    {.name = "Slice slice_dim", .layer = "name: 's' type: 'Slice' slice_param { slice_dim: 2 }",
     .bottoms = {{2, 3, 10}}, .tops = 2},
    {.name = "Slice one top", .layer = "name: 's' type: 'Slice'", .bottoms = {{4, 5}}},

    // Split: the tops share the bottom's data; their diffs add up.
    {.name = "Split three tops", .layer = "name: 'sp' type: 'Split'", .bottoms = {{3, 5, 7}}, .tops = 3, .terms = 3},
    {.name = "Split one top", .layer = "name: 'sp' type: 'Split'", .bottoms = {{13}}},

    {.name = "Flatten", .layer = "name: 'f' type: 'Flatten'", .bottoms = {{3, 4, 5, 2}}},
    {.name = "Flatten middle axes", .layer = "name: 'f' type: 'Flatten' flatten_param { axis: 1 end_axis: 2 }",
     .bottoms = {{3, 4, 5, 2}}},
    {.name = "Reshape", .layer = "name: 'r' type: 'Reshape' reshape_param { shape { dim: 0 dim: -1 dim: 2 } }",
     .bottoms = {{3, 4, 5, 2}}},
    {.name = "Reshape part of the axes",
     .layer = "name: 'r' type: 'Reshape' reshape_param { shape { dim: 5 dim: 2 } axis: 1 num_axes: 1 }",
     .bottoms = {{3, 10, 7}}},

    {.name = "Silence", .layer = "name: 'si' type: 'Silence'", .bottoms = {{3, 4}, {5}}, .tops = 0},
    {.name = "Silence partial backward",
     .layer = "name: 'si' type: 'Silence'",
     .bottoms = {{3, 4}, {5}},
     .tops = 0,
     .propagate = {false, true}},
    {.name = "Input", .layer = "name: 'in' type: 'Input' input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } }",
     .tops = 2},

    {.name = "ImageToSequence", .layer = "name: 'i2s' type: 'ImageToSequence'", .bottoms = {{3, 2, 5, 7}}, .tops = 2},
    {.name = "ImageToSequence one channel", .layer = "name: 'i2s' type: 'ImageToSequence'", .bottoms = {{4, 1, 6, 6}},
     .tops = 2},

    // Embed: repeated symbols accumulate into their weight rows.
    {.name = "Embed with bias",
     .layer = "name: 'emb' type: 'Embed' embed_param { num_output: 9 input_dim: 5 weight_filler { type: 'gaussian' } "
              "bias_filler { type: 'gaussian' } }",
     .bottoms = {{4, 6}},
     .fill = symbols(5),
     .passes = 2,
     .terms = 24},
    {.name = "Embed without bias",
     .layer = "name: 'emb' type: 'Embed' embed_param { num_output: 3 input_dim: 11 bias_term: false "
              "weight_filler { type: 'gaussian' } }",
     .bottoms = {{7}},
     .fill = symbols(11)},
    {.name = "Embed frozen weights",
     .layer = "name: 'emb' type: 'Embed' param { lr_mult: 0 } param { lr_mult: 1 } embed_param { num_output: 4 "
              "input_dim: 3 weight_filler { type: 'gaussian' } bias_filler { type: 'gaussian' } }",
     .bottoms = {{2, 5}},
     .fill = symbols(3),
     .terms = 10},
});

}  // namespace
}  // namespace dsg::test

namespace dsg::test {
namespace {

// The device code cannot throw on a bad symbol without reading the bottom back: its top row is
// NaN and it adds nothing to the weight gradient.
TEST_CASE("Embed device code gives NaN rows for invalid symbols", "[device_code]") {
  LayerParameter p;
  p.set_name("emb");
  p.set_type("Embed");
  p.mutable_embed_param()->set_num_output(2);
  p.mutable_embed_param()->set_input_dim(3);
  p.mutable_embed_param()->set_bias_term(false);
  auto layer = create_layer(p);
  Tensor index({3}), y;
  index.mutable_data()[0] = 1;
  index.mutable_data()[1] = 1.5f;
  index.mutable_data()[2] = 3;
  std::mt19937_64 rng(1);
  layer->setup({&index}, {&y}, rng);
  Context host;
  host.device_code_on_host = true;
  layer->forward({&index}, {&y}, host);
  CHECK(std::isfinite(y.data()[0]));
  for (int i = 2; i < 6; ++i) CHECK(std::isnan(y.data()[i]));
  std::fill(y.mutable_diff(), y.mutable_diff() + y.count(), 1.0f);
  Tensor& w = *layer->blobs()[0];
  std::fill(w.mutable_diff(), w.mutable_diff() + w.count(), 0.0f);
  layer->backward({&y}, {false}, {&index}, host);
  const float want[6] = {0, 0, 1, 1, 0, 0};
  for (int i = 0; i < 6; ++i) CHECK(w.diff()[i] == want[i]);
  CHECK_THROWS_AS(layer->forward({&index}, {&y}, Context{}), Error);
}

}  // namespace
}  // namespace dsg::test
