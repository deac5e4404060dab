// Dynamic Sparse Graph on InnerProduct and Convolution (dsg_param): the kept outputs equal the
// dense layer's, the others are exactly zero, PER_SAMPLE keeps (1 - gamma) n per sample and
// position, BATCH_SHARED one set for the batch (and shrinks the GEMM through active_outputs);
// numerical gradients through the selection; the Net's double mask after BatchNorm / Scale; the
// cost accounting; configuration errors.
// (Convolution's DSG path: layers/convolution_dsg.cpp.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include <google/protobuf/text_format.h>

#include "layers/dsg_select.hpp"
#include "runtime/net.hpp"
#include "runtime/net_cost.hpp"
#include "support/gradient_checker.hpp"
#include "support/tolerance.hpp"

using namespace dsg;
using dsg::test::check_layer_gradient;
using dsg::test::fill_uniform;
using dsg::test::GradientCheckOptions;
using dsg::test::ReductionBound;

namespace {

LayerParameter parse_layer(const std::string& text) {
  LayerParameter p;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(text, &p));
  return p;
}

LayerParameter with_dsg(LayerParameter p, DsgParameter::Selection sel, float gamma) {
  p.mutable_dsg_param()->set_gamma(gamma);
  p.mutable_dsg_param()->set_selection(sel);
  return p;
}

LayerParameter ip_param(int n, DsgParameter::Selection sel, float gamma) {
  LayerParameter p = parse_layer("name: 'ip' type: 'InnerProduct' inner_product_param { weight_filler { type: 'gaussian' std: 0.5 } "
                                 "bias_filler { type: 'gaussian' std: 0.5 } }");
  p.mutable_inner_product_param()->set_num_output(uint32_t(n));
  return with_dsg(p, sel, gamma);
}

LayerParameter conv_param(int n, DsgParameter::Selection sel, float gamma) {
  LayerParameter p = parse_layer("name: 'conv' type: 'Convolution' convolution_param { kernel_size: 3 pad: 1 "
                                 "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'gaussian' std: 0.5 } }");
  p.mutable_convolution_param()->set_num_output(uint32_t(n));
  return with_dsg(p, sel, gamma);
}

// The same layer without dsg_param, sharing the weights of `with`.
std::unique_ptr<Layer> dense_twin(const LayerParameter& p, Layer& with, Tensor& x, Tensor& y) {
  LayerParameter q = p;
  q.clear_dsg_param();
  auto layer = create_layer(q);
  std::mt19937_64 rng(9);
  layer->setup({&x}, {&y}, rng);
  for (size_t i = 0; i < layer->blobs().size(); ++i) layer->blobs()[i]->share_data(*with.blobs()[i]);
  return layer;
}

Context train_ctx() {
  Context ctx;
  ctx.phase = TRAIN;
  ctx.seed = 3;
  return ctx;
}

// Elementwise tolerances (support/tolerance.hpp) of the outputs of `with` without its dsg_param
// on input x. The layer is linear in x and in (W, b) jointly, so the dense layer run on |x| with
// |W| and |b| gives M = |b| + sum_k |w_k x_k| for every output; the reduction length is a
// filter's weight count (InnerProduct: inputs; Convolution: C / group * kh * kw) plus the bias.
std::vector<double> dense_tolerance(const LayerParameter& p, const Layer& with, const Tensor& x) {
  LayerParameter q = p;
  q.clear_dsg_param();
  auto layer = create_layer(q);
  Tensor ax(x.shape()), ay;
  for (int64_t i = 0; i < x.count(); ++i) ax.mutable_data()[i] = std::fabs(x.data()[i]);
  std::mt19937_64 rng(9);
  layer->setup({&ax}, {&ay}, rng);
  for (size_t b = 0; b < layer->blobs().size(); ++b)
    for (int64_t i = 0; i < with.blobs()[b]->count(); ++i)
      layer->blobs()[b]->mutable_data()[i] = std::fabs(with.blobs()[b]->data()[i]);
  layer->forward({&ax}, {&ay}, Context{});
  const Tensor& w = *with.blobs()[0];
  const int64_t terms = w.count() / w.shape()[0] + (with.blobs().size() > 1 ? 1 : 0);
  std::vector<double> tol(size_t(ay.count()));
  for (size_t i = 0; i < tol.size(); ++i) tol[i] = test::reduction_tolerance(terms, ay.data()[i]);
  return tol;
}

// Checks top against the dense output: equal within tol where the mask is set, exactly 0 elsewhere.
void require_masked_dense(const Tensor& top, const Tensor& dense, const std::vector<uint8_t>& mask,
                          const std::vector<double>& tol) {
  REQUIRE(int64_t(mask.size()) == top.count());
  REQUIRE(int64_t(tol.size()) == top.count());
  for (int64_t i = 0; i < top.count(); ++i) {
    if (mask[size_t(i)]) REQUIRE(std::fabs(top.data()[i] - dense.data()[i]) <= tol[size_t(i)]);
    else REQUIRE(top.data()[i] == 0.0f);
  }
}

}  // namespace

TEST_CASE("DSG InnerProduct PER_SAMPLE keeps (1 - gamma) n outputs per sample, exactly as dense", "[layer][dsg]") {
  const LayerParameter p = ip_param(20, DsgParameter::PER_SAMPLE, 0.7f);
  auto layer = create_layer(p);
  Tensor x({8, 30}), y, yd;
  fill_uniform(x, -1, 1, 4);
  std::mt19937_64 rng(1);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, train_ctx());
  auto dense = dense_twin(p, *layer, x, yd);
  dense->forward({&x}, {&yd}, train_ctx());
  const std::vector<uint8_t>* mask = layer->dynamic_output_mask();
  REQUIRE(mask);
  require_masked_dense(y, yd, *mask, dense_tolerance(p, *layer, x));
  std::set<std::vector<uint8_t>> patterns;
  for (int i = 0; i < 8; ++i) {
    std::vector<uint8_t> row(mask->begin() + i * 20, mask->begin() + (i + 1) * 20);
    CHECK(std::count(row.begin(), row.end(), 1) == 6);  // round(0.3 * 20)
    patterns.insert(row);
  }
  CHECK(patterns.size() > 1);  // per sample, not shared
  // The selection follows the outputs: on average the kept ones are larger than the dropped ones.
  double kept = 0, dropped = 0;
  for (int64_t i = 0; i < y.count(); ++i) ((*mask)[size_t(i)] ? kept : dropped) += yd.data()[i] - layer->blobs()[1]->data()[i % 20];
  CHECK(kept / 48 > dropped / 112 + 0.2);
  const LayerMacs m = layer->macs();
  CHECK(m.dense_forward == 8.0 * 20 * 30);
  CHECK(m.forward == 8.0 * 6 * 30);
  CHECK(m.backward == 2 * m.forward);
  CHECK(m.search > 0);
}

TEST_CASE("DSG InnerProduct gradients through the per-sample and the shared selection", "[layer][dsg]") {
  for (auto sel : {DsgParameter::PER_SAMPLE, DsgParameter::BATCH_SHARED}) {
    auto layer = create_layer(ip_param(10, sel, 0.5f));
    Tensor x({4, 12}), y;
    fill_uniform(x, -1, 1, 5);
    std::mt19937_64 rng(2);
    layer->setup({&x}, {&y}, rng);
    GradientCheckOptions opt;
    opt.step = 1e-3f;
    check_layer_gradient(*layer, {&x}, {&y}, train_ctx(), opt);
  }
}

TEST_CASE("DSG InnerProduct BATCH_SHARED: one set of neurons for the batch, computed by a smaller GEMM", "[layer][dsg]") {
  const LayerParameter p = ip_param(16, DsgParameter::BATCH_SHARED, 0.75f);
  auto layer = create_layer(p);
  Tensor x({6, 10}), y, yd;
  fill_uniform(x, -1, 1, 6);
  std::mt19937_64 rng(3);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, train_ctx());
  auto dense = dense_twin(p, *layer, x, yd);
  dense->forward({&x}, {&yd}, train_ctx());
  const std::vector<uint8_t>& mask = *layer->dynamic_output_mask();
  require_masked_dense(y, yd, mask, dense_tolerance(p, *layer, x));
  REQUIRE(layer->active_outputs().size() == 4);
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 16; ++j) REQUIRE(mask[size_t(i * 16 + j)] == mask[size_t(j)]);
  CHECK(layer->macs().forward == 6.0 * 4 * 10);
  // TEST with in_test: false runs dense again.
  LayerParameter q = p;
  q.mutable_dsg_param()->set_in_test(false);
  auto test_layer = create_layer(q);
  Tensor yt;
  test_layer->setup({&x}, {&yt}, rng);
  for (size_t i = 0; i < test_layer->blobs().size(); ++i) test_layer->blobs()[i]->share_data(*layer->blobs()[i]);
  Context test = train_ctx();
  test.phase = TEST;
  test_layer->forward({&x}, {&yt}, test);
  CHECK(test_layer->dynamic_output_mask() == nullptr);
  const std::vector<double> tol = dense_tolerance(p, *layer, x);
  for (int64_t i = 0; i < yt.count(); ++i) REQUIRE(std::fabs(yt.data()[i] - yd.data()[i]) <= tol[size_t(i)]);
}

TEST_CASE("DSG Convolution PER_SAMPLE keeps (1 - gamma) of the channels at every position", "[layer][dsg]") {
  const LayerParameter p = conv_param(10, DsgParameter::PER_SAMPLE, 0.6f);
  auto layer = create_layer(p);
  Tensor x({3, 4, 5, 5}), y, yd;
  fill_uniform(x, -1, 1, 7);
  std::mt19937_64 rng(4);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, train_ctx());
  auto dense = dense_twin(p, *layer, x, yd);
  dense->forward({&x}, {&yd}, train_ctx());
  const std::vector<uint8_t>& mask = *layer->dynamic_output_mask();
  require_masked_dense(y, yd, mask, dense_tolerance(p, *layer, x));
  std::set<std::vector<uint8_t>> patterns;
  for (int n = 0; n < 3; ++n)
    for (int pos = 0; pos < 25; ++pos) {
      std::vector<uint8_t> chans;
      for (int c = 0; c < 10; ++c) chans.push_back(mask[size_t((n * 10 + c) * 25 + pos)]);
      REQUIRE(std::count(chans.begin(), chans.end(), 1) == 4);
      patterns.insert(chans);
    }
  CHECK(patterns.size() > 5);
  CHECK(layer->macs().forward == 3.0 * 25 * 4 * 36);
  GradientCheckOptions opt;
  opt.step = 1e-4f;  // small enough that no window's selection flips
  check_layer_gradient(*layer, {&x}, {&y}, train_ctx(), opt);
}

TEST_CASE("DSG Convolution BATCH_SHARED computes the kept channels only", "[layer][dsg]") {
  const LayerParameter p = conv_param(8, DsgParameter::BATCH_SHARED, 0.5f);
  auto layer = create_layer(p);
  Tensor x({2, 3, 6, 6}), y, yd;
  fill_uniform(x, -1, 1, 8);
  std::mt19937_64 rng(5);
  layer->setup({&x}, {&y}, rng);
  layer->forward({&x}, {&y}, train_ctx());
  auto dense = dense_twin(p, *layer, x, yd);
  dense->forward({&x}, {&yd}, train_ctx());
  require_masked_dense(y, yd, *layer->dynamic_output_mask(), dense_tolerance(p, *layer, x));
  REQUIRE(layer->active_outputs().size() == 4);
  CHECK(layer->macs().forward == 2.0 * 36 * 4 * 27);
  GradientCheckOptions opt;
  opt.step = 1e-3f;
  check_layer_gradient(*layer, {&x}, {&y}, train_ctx(), opt);
}

TEST_CASE("DSG configuration errors", "[layer][dsg]") {
  Tensor x({2, 5}), y;
  std::mt19937_64 rng(6);
  LayerParameter p = ip_param(4, DsgParameter::PER_SAMPLE, 1.0f);
  CHECK_THROWS_WITH(create_layer(p)->setup({&x}, {&y}, rng), Catch::Contains("gamma must be in [0, 1)"));
  p = ip_param(4, DsgParameter::PER_SAMPLE, 0.5f);
  p.mutable_dsg_param()->set_epsilon(0);
  CHECK_THROWS_WITH(create_layer(p)->setup({&x}, {&y}, rng), Catch::Contains("epsilon"));
  p = ip_param(4, DsgParameter::PER_SAMPLE, 0.5f);
  p.mutable_inner_product_param()->set_transpose(true);
  CHECK_THROWS_WITH(create_layer(p)->setup({&x}, {&y}, rng), Catch::Contains("transpose"));
  LayerParameter c = conv_param(4, DsgParameter::PER_SAMPLE, 0.5f);
  c.mutable_convolution_param()->set_group(2);
  Tensor xc({1, 4, 5, 5}), yc;
  CHECK_THROWS_WITH(create_layer(c)->setup({&xc}, {&yc}, rng), Catch::Contains("group 1"));
}

namespace {

const char* kDmsNet = R"(
  name: "dms"
  layer { name: "in" type: "Input" top: "data" top: "label"
          input_param { shape { dim: 4 dim: 2 dim: 6 dim: 6 } shape { dim: 4 } } }
  layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
          convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } }
          dsg_param { gamma: 0.5 } }
  layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
  layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "bn" }
  layer { name: "scale" type: "Scale" bottom: "bn" top: "bn" scale_param { bias_term: true } }
  layer { name: "ip" type: "InnerProduct" bottom: "bn" top: "ip"
          inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
  layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
)";

NetParameter parse_net(const std::string& text) {
  NetParameter p;
  REQUIRE(google::protobuf::TextFormat::ParseFromString(text, &p));
  return p;
}

}  // namespace

TEST_CASE("DSG double-mask selection: the mask is applied again after BatchNorm and Scale", "[net][dsg]") {
  for (bool double_mask : {true, false}) {
    NetParameter np = parse_net(kDmsNet);
    np.mutable_layer(1)->mutable_dsg_param()->set_double_mask(double_mask);
    std::mt19937_64 rng(7);
    Net net(np, TRAIN, rng);
    fill_uniform(net.blob("data"), -1, 1, 11);
    float* label = net.blob("label").mutable_data();
    for (int i = 0; i < 4; ++i) label[i] = float(i % 3);
    Context ctx = train_ctx();
    net.forward_backward(ctx);
    const Layer& conv = *net.layer_by_name("conv");
    const std::vector<uint8_t>& mask = *conv.dynamic_output_mask();
    const Tensor& bn = net.blob("bn");
    REQUIRE(int64_t(mask.size()) == bn.count());
    int64_t masked = 0, masked_nonzero = 0, masked_diff_nonzero = 0;
    for (int64_t i = 0; i < bn.count(); ++i) {
      if (mask[size_t(i)]) continue;
      ++masked;
      masked_nonzero += bn.data()[i] != 0.0f;
      masked_diff_nonzero += bn.diff()[i] != 0.0f;
    }
    REQUIRE(masked == bn.count() / 2);
    if (double_mask) {
      CHECK(masked_nonzero == 0);
      CHECK(masked_diff_nonzero == 0);  // the mask is applied to the gradient too
      CHECK(net.double_mask_source(4) == 1);  // after 'scale' (layers: in, conv, relu, bn, scale)
    } else {
      CHECK(masked_nonzero > masked / 2);  // BatchNorm shifts the zeros
      CHECK(net.double_mask_source(4) == -1);
    }
    const NetCost cost = measure_net_cost(net);
    CHECK(cost.forward_macs < cost.dense_forward_macs);
    CHECK(cost.activation_nonzeros < cost.activation_values);
  }
}

TEST_CASE("DSG needs a ReLU after the selecting layer", "[net][dsg]") {
  NetParameter np = parse_net(kDmsNet);
  np.mutable_layer(2)->set_type("TanH");
  std::mt19937_64 rng(8);
  CHECK_THROWS_WITH(Net(np, TRAIN, rng), Catch::Contains("CONV/FC -> ReLU"));
}

TEST_CASE("BatchNorm keeps the running statistics of a channel that is zero for the whole batch", "[layer][dsg]") {
  LayerParameter p = parse_layer("name: 'bn' type: 'BatchNorm'");
  auto layer = create_layer(p);
  Tensor x({4, 2, 3}), y;
  std::mt19937_64 rng(9);
  layer->setup({&x}, {&y}, rng);
  fill_uniform(x, 1, 3, 12);
  Context ctx = train_ctx();
  layer->forward({&x}, {&y}, ctx);
  const float* run = layer->blobs()[0]->data();
  const float* factor = layer->blobs()[2]->data();
  const float mean0 = run[0] / factor[0], mean1 = run[1] / factor[0];
  for (int n = 0; n < 4; ++n)
    for (int s = 0; s < 3; ++s) {
      x.mutable_data()[(n * 2 + 1) * 3 + s] = 0.0f;  // channel 1 not computed
      x.mutable_data()[(n * 2) * 3 + s] += 5.0f;
    }
  layer->forward({&x}, {&y}, ctx);
  CHECK(run[1] / factor[0] == Approx(mean1));
  CHECK(run[0] / factor[0] != Approx(mean0));  // channel 0 saw new data
}

TEST_CASE("DSG batch-shared: the next layer skips the channels the double mask zeroed", "[net][dsg]") {
  NetParameter np = parse_net(R"(
    name: "shared"
    layer { name: "in" type: "Input" top: "data" top: "label"
            input_param { shape { dim: 4 dim: 2 dim: 6 dim: 6 } shape { dim: 4 } } }
    layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
            convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.5 } }
            dsg_param { gamma: 0.5 selection: BATCH_SHARED } }
    layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
    layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "bn1" }
    layer { name: "scale1" type: "Scale" bottom: "bn1" top: "bn1" scale_param { bias_term: true } }
    layer { name: "pool1" type: "Pooling" bottom: "bn1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
    layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
            convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } }
            dsg_param { gamma: 0.5 selection: BATCH_SHARED } }
    layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
    layer { name: "bn2" type: "BatchNorm" bottom: "conv2" top: "bn2" }
    layer { name: "scale2" type: "Scale" bottom: "bn2" top: "bn2" scale_param { bias_term: true } }
    layer { name: "ip" type: "InnerProduct" bottom: "bn2" top: "ip"
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
  )");
  std::mt19937_64 rng(12);
  Net net(np, TRAIN, rng);
  fill_uniform(net.blob("data"), -1, 1, 13);
  for (int i = 0; i < 4; ++i) net.blob("label").mutable_data()[i] = float(i % 3);
  Context ctx = train_ctx();
  for (int pass = 0; pass < 2; ++pass) {
    ctx.iteration = pass;
    net.forward_backward(ctx);
    Layer& conv1 = *net.layer_by_name("conv1");
    Layer& conv2 = *net.layer_by_name("conv2");
    REQUIRE(conv1.active_outputs().size() == 4);
    CHECK(conv2.active_inputs() == conv1.active_outputs());  // K shrinks to the kept channels
    CHECK(net.layer_by_name("ip")->active_inputs().size() == 3);  // conv2's 3 kept channels (1 x 1 each)
    // conv2 computed from the kept channels equals a dense convolution of its whole input.
    Tensor out2;
    auto dense = dense_twin(conv2.param(), conv2, net.blob("pool1"), out2);
    dense->forward({&net.blob("pool1")}, {&out2}, ctx);
    const std::vector<uint8_t>& mask = *conv2.dynamic_output_mask();
    const Tensor& y2 = net.blob("conv2");
    const std::vector<double> tol = dense_tolerance(conv2.param(), conv2, net.blob("pool1"));
    for (int64_t i = 0; i < y2.count(); ++i)
      if (mask[size_t(i)]) REQUIRE(std::fabs(y2.data()[i] - std::max(0.0f, out2.data()[i])) <= tol[size_t(i)]);
  }
}

TEST_CASE("DSG row kernels (layers/dsg_select.cpp) against naive loops", "[dsg]") {
  const int rows = 7, d = 13, n = 9, keep = 3;
  std::vector<float> x(size_t(rows) * d), w(size_t(n) * d), g(size_t(rows) * keep);
  std::mt19937_64 rng(31);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& v : x) v = u(rng);
  for (auto& v : w) v = u(rng);
  for (auto& v : g) v = u(rng);
  std::vector<int> sel;
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < keep; ++j) sel.push_back((r + 2 * j) % n);  // distinct per row
  std::vector<float> out(size_t(rows) * keep), dx(size_t(rows) * d), dw(size_t(n) * d, 0.5f), db(size_t(n), 0.25f);
  dsg_forward_rows(x.data(), rows, d, w.data(), d, sel.data(), keep, out.data());
  dsg_backward_rows(x.data(), rows, d, w.data(), n, d, sel.data(), keep, g.data(), dx.data(), d, dw.data(), db.data());
  // The oracle in double, with each sum's bound; dW and db accumulate onto their start values.
  std::vector<double> ref_dx(size_t(rows) * d, 0.0), ref_dw(size_t(n) * d, 0.5), ref_db(size_t(n), 0.25);
  std::vector<ReductionBound> bound_dx(ref_dx.size()), bound_dw(ref_dw.size()), bound_db(ref_db.size());
  for (auto& b : bound_dw) b.add(0.5);
  for (auto& b : bound_db) b.add(0.25);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < keep; ++j) {
      const int m = sel[size_t(r * keep + j)];
      double dot = 0;
      ReductionBound bound;
      for (int c = 0; c < d; ++c) {
        dot += double(x[size_t(r * d + c)]) * w[size_t(m * d + c)];
        bound.add(double(x[size_t(r * d + c)]) * w[size_t(m * d + c)]);
      }
      REQUIRE(std::fabs(out[size_t(r * keep + j)] - dot) <= bound.tolerance());
      const double gv = g[size_t(r * keep + j)];
      ref_db[size_t(m)] += gv;
      bound_db[size_t(m)].add(gv);
      for (int c = 0; c < d; ++c) {
        ref_dx[size_t(r * d + c)] += gv * w[size_t(m * d + c)];
        bound_dx[size_t(r * d + c)].add(gv * w[size_t(m * d + c)]);
        ref_dw[size_t(m * d + c)] += gv * x[size_t(r * d + c)];
        bound_dw[size_t(m * d + c)].add(gv * x[size_t(r * d + c)]);
      }
    }
  for (size_t i = 0; i < dx.size(); ++i) REQUIRE(std::fabs(dx[i] - ref_dx[i]) <= bound_dx[i].tolerance());
  for (size_t i = 0; i < dw.size(); ++i) REQUIRE(std::fabs(dw[i] - ref_dw[i]) <= bound_dw[i].tolerance());
  for (size_t i = 0; i < db.size(); ++i) REQUIRE(std::fabs(db[i] - ref_db[i]) <= bound_db[i].tolerance());
}
