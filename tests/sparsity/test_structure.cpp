// Structured (filter / channel) sparsity: Convolution and InnerProduct with active_outputs /
// active_inputs against their dense selves, the graph pass that derives active_inputs, the load-time
// refusals of validate_structure, and an end-to-end run whose TEST accuracy the thinned model
// reproduces.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/model_file.hpp"
#include "runtime/parallel.hpp"
#include "runtime/solver.hpp"
#include "sparsity/controller.hpp"
#include "sparsity/structure.hpp"
#include "compress/thin.hpp"
#include "support/gradient_checker.hpp"
#include "support/net_tolerance.hpp"
#include "support/sparse_configs.hpp"
#include "support/tolerance.hpp"

using namespace dsg;
using test::schedule;
using test::TempDir;
using test::with_sparsity;

namespace {

LayerParameter conv_layer(int m, int k, int pad, int group = 1) {
  LayerParameter p;
  p.set_name("conv");
  p.set_type("Convolution");
  auto* cp = p.mutable_convolution_param();
  cp->set_num_output(m);
  cp->add_kernel_size(k);
  cp->add_pad(pad);
  cp->set_group(group);
  for (auto* f : {cp->mutable_weight_filler(), cp->mutable_bias_filler()}) {
    f->set_type("uniform");
    f->set_min(-1);
    f->set_max(1);
  }
  return p;
}

LayerParameter ip_layer(int n) {
  LayerParameter p;
  p.set_name("ip");
  p.set_type("InnerProduct");
  auto* ip = p.mutable_inner_product_param();
  ip->set_num_output(n);
  for (auto* f : {ip->mutable_weight_filler(), ip->mutable_bias_filler()}) {
    f->set_type("uniform");
    f->set_min(-1);
    f->set_max(1);
  }
  return p;
}

struct Pass {
  std::vector<float> y, dx, dw, db;
};

// Forward, then backward with a fixed dY pattern onto parameter diffs that start at 0.5.
// `absolute`: dY is the pattern's absolute value.
Pass run(Layer& layer, Tensor& x, Tensor& y, bool absolute = false) {
  layer.forward({&x}, {&y}, Context{});
  for (int64_t i = 0; i < y.count(); ++i) {
    const float dy = float((i * 7) % 13) / 13.0f - 0.5f;
    y.mutable_diff()[i] = absolute ? std::fabs(dy) : dy;
  }
  for (auto& b : layer.blobs()) std::fill(b->mutable_diff(), b->mutable_diff() + b->count(), 0.5f);
  layer.backward({&y}, {true}, {&x}, Context{});
  Pass p;
  p.y.assign(y.data(), y.data() + y.count());
  p.dx.assign(x.diff(), x.diff() + x.count());
  p.dw.assign(layer.blobs()[0]->diff(), layer.blobs()[0]->diff() + layer.blobs()[0]->count());
  p.db.assign(layer.blobs()[1]->diff(), layer.blobs()[1]->diff() + layer.blobs()[1]->count());
  return p;
}

// Reduction lengths of a pass (support/tolerance.hpp): y sums a filter's weights times inputs
// plus the bias, dx sums over the outputs (and kernel taps) an input feeds, dw and db sum over
// the batch and output positions onto their start value 0.5.
struct Terms {
  int64_t y, dx, dw;
};

struct Tolerances {
  std::vector<double> y, dx, dw, db;
};

// Elementwise tolerances for comparing two passes of the dense layer as set up now. The layer is
// bilinear in x and (W, b), and in dY and (W or x), so the same pass on |x| with |W|, |b| and
// |dY| gives every sum's magnitude M = sum |terms| (including the diffs' start value 0.5).
Tolerances tolerances(Layer& layer, const Tensor& x, const Terms& terms) {
  std::vector<std::vector<float>> saved;
  for (auto& b : layer.blobs()) {
    saved.emplace_back(b->data(), b->data() + b->count());
    for (int64_t i = 0; i < b->count(); ++i) b->mutable_data()[i] = std::fabs(b->data()[i]);
  }
  Tensor ax(x.shape()), ay;
  for (int64_t i = 0; i < x.count(); ++i) ax.mutable_data()[i] = std::fabs(x.data()[i]);
  const Pass m = run(layer, ax, ay, true);
  for (size_t b = 0; b < saved.size(); ++b) std::copy(saved[b].begin(), saved[b].end(), layer.blobs()[b]->mutable_data());
  auto tol = [](const std::vector<float>& mag, int64_t k) {
    std::vector<double> t(mag.size());
    for (size_t i = 0; i < t.size(); ++i) t[i] = test::reduction_tolerance(k, mag[i]);
    return t;
  };
  return Tolerances{tol(m.y, terms.y), tol(m.dx, terms.dx), tol(m.dw, terms.dw), tol(m.db, terms.dw)};
}

// Checks got[i] against want[i] within tol[i] where `compare(i)`, and got[i] == exact where not.
void check(const char* what, const std::vector<float>& got, const std::vector<float>& want, const std::vector<double>& tol,
           const std::function<bool(size_t)>& compare, float exact) {
  REQUIRE(got.size() == want.size());
  REQUIRE(tol.size() == want.size());
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool ok = compare(i) ? std::fabs(got[i] - want[i]) <= tol[i] : got[i] == exact;
    if (!ok && bad++ < 3) {
      INFO(what << " index " << i << ": got " << got[i] << ", dense " << want[i] << ", tolerance " << tol[i]
                << (compare(i) ? "" : " (skipped entry)"));
      CHECK(ok);
    }
  }
  INFO(what);
  CHECK(bad == 0);
}

bool contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

TEST_CASE("Convolution and InnerProduct with active_outputs match the dense layer with zeroed filters", "[sparsity][structure]") {
  set_num_threads(1);
  struct ConvCase {
    int n, c, hw, m, group;
    std::vector<int> kept;
  };
  // The last case spans several column chunks with a remainder (3 images per chunk).
  for (const ConvCase& cc : {ConvCase{2, 4, 6, 6, 1, {1, 2, 5}}, ConvCase{3, 4, 5, 6, 2, {0, 3, 4}},
                             ConvCase{1, 3, 7, 4, 1, {3}}, ConvCase{8, 8, 32, 6, 1, {0, 1, 4}}}) {
    INFO("conv n" << cc.n << " c" << cc.c << " " << cc.hw << "x" << cc.hw << " m" << cc.m << " group " << cc.group);
    auto layer = create_layer(conv_layer(cc.m, 3, 1, cc.group));
    Tensor x({cc.n, cc.c, cc.hw, cc.hw}), y;
    test::fill_uniform(x, -1, 1, 3);
    std::mt19937_64 rng(2);
    layer->setup({&x}, {&y}, rng);
    const int64_t per = layer->blobs()[0]->count() / cc.m;
    for (int m = 0; m < cc.m; ++m)
      if (!contains(cc.kept, m)) {
        std::fill(layer->blobs()[0]->mutable_data() + m * per, layer->blobs()[0]->mutable_data() + (m + 1) * per, 0.0f);
        layer->blobs()[1]->mutable_data()[m] = 0.0f;
      }
    const Pass dense = run(*layer, x, y);
    const int64_t plane = int64_t(cc.hw) * cc.hw;
    const Tolerances tol = tolerances(*layer, x, {per + 1, cc.m / cc.group * 9, cc.n * plane + 1});
    layer->set_active_outputs(cc.kept);
    const Pass sparse = run(*layer, x, y);
    auto kept_channel = [&](size_t i) { return contains(cc.kept, int((i / plane) % cc.m)); };
    check("y", sparse.y, dense.y, tol.y, kept_channel, 0.0f);
    check("dx", sparse.dx, dense.dx, tol.dx, [](size_t) { return true; }, 0.0f);
    check("dw", sparse.dw, dense.dw, tol.dw, [&](size_t i) { return contains(cc.kept, int(i / per)); }, 0.5f);
    check("db", sparse.db, dense.db, tol.db, [&](size_t i) { return contains(cc.kept, int(i)); }, 0.5f);
  }
  auto layer = create_layer(ip_layer(5));
  Tensor x({4, 3, 2, 2}), y;
  test::fill_uniform(x, -1, 1, 4);
  std::mt19937_64 rng(2);
  layer->setup({&x}, {&y}, rng);
  const std::vector<int> kept{1, 3};
  for (int m = 0; m < 5; ++m)
    if (!contains(kept, m)) {
      std::fill(layer->blobs()[0]->mutable_data() + m * 12, layer->blobs()[0]->mutable_data() + (m + 1) * 12, 0.0f);
      layer->blobs()[1]->mutable_data()[m] = 0.0f;
    }
  const Pass dense = run(*layer, x, y);
  const Tolerances tol = tolerances(*layer, x, {12 + 1, 5, 4 + 1});
  layer->set_active_outputs(kept);
  const Pass sparse = run(*layer, x, y);
  check("ip y", sparse.y, dense.y, tol.y, [&](size_t i) { return contains(kept, int(i % 5)); }, 0.0f);
  check("ip dx", sparse.dx, dense.dx, tol.dx, [](size_t) { return true; }, 0.0f);
  check("ip dw", sparse.dw, dense.dw, tol.dw, [&](size_t i) { return contains(kept, int(i / 12)); }, 0.5f);
  check("ip db", sparse.db, dense.db, tol.db, [&](size_t i) { return contains(kept, int(i)); }, 0.5f);
}

TEST_CASE("Convolution and InnerProduct with active_inputs match the dense layer on inputs with zero channels", "[sparsity][structure]") {
  set_num_threads(1);
  struct ConvCase {
    int n, c, hw, m, group;
    std::vector<int> ins, outs;
  };
  for (const ConvCase& cc : {ConvCase{2, 5, 6, 4, 1, {0, 2, 3}, {}}, ConvCase{2, 4, 5, 4, 2, {1, 2}, {}},
                             ConvCase{8, 8, 32, 3, 1, {1, 2, 6, 7}, {}}, ConvCase{2, 5, 6, 4, 1, {1, 4}, {0, 3}}}) {
    INFO("conv n" << cc.n << " c" << cc.c << " m" << cc.m << " group " << cc.group << " outs " << cc.outs.size());
    auto layer = create_layer(conv_layer(cc.m, 3, 1, cc.group));
    Tensor x({cc.n, cc.c, cc.hw, cc.hw}), y;
    test::fill_uniform(x, -1, 1, 5);
    const int64_t plane = int64_t(cc.hw) * cc.hw;
    for (int64_t i = 0; i < x.count(); ++i)
      if (!contains(cc.ins, int((i / plane) % cc.c))) x.mutable_data()[i] = 0.0f;
    std::mt19937_64 rng(2);
    layer->setup({&x}, {&y}, rng);
    const int64_t per = layer->blobs()[0]->count() / cc.m;
    for (int m = 0; m < cc.m; ++m)
      if (!cc.outs.empty() && !contains(cc.outs, m)) {
        std::fill(layer->blobs()[0]->mutable_data() + m * per, layer->blobs()[0]->mutable_data() + (m + 1) * per, 0.0f);
        layer->blobs()[1]->mutable_data()[m] = 0.0f;
      }
    const Pass dense = run(*layer, x, y);
    const Tolerances tol = tolerances(*layer, x, {per + 1, cc.m / cc.group * 9, cc.n * plane + 1});
    layer->set_active_inputs(cc.ins);
    layer->set_active_outputs(cc.outs);
    const Pass sparse = run(*layer, x, y);
    auto out_kept = [&](int m) { return cc.outs.empty() || contains(cc.outs, m); };
    check("y", sparse.y, dense.y, tol.y, [&](size_t i) { return out_kept(int((i / (y.count(2))) % cc.m)); }, 0.0f);
    check("dx", sparse.dx, dense.dx, tol.dx, [&](size_t i) { return contains(cc.ins, int((i / plane) % cc.c)); }, 0.0f);
    // dW of a skipped input channel is dY * 0 = 0.5 + 0 in the dense layer and untouched here.
    check("dw", sparse.dw, dense.dw, tol.dw, [&](size_t i) { return out_kept(int(i / per)); }, 0.5f);
    check("db", sparse.db, dense.db, tol.db, [&](size_t i) { return out_kept(int(i)); }, 0.5f);
  }
  auto layer = create_layer(ip_layer(4));
  Tensor x({3, 3, 2, 2}), y;  // features of channel c: [4c, 4c + 4)
  test::fill_uniform(x, -1, 1, 6);
  std::vector<int> features;
  for (int c : {0, 2})
    for (int j = 0; j < 4; ++j) features.push_back(c * 4 + j);
  for (int64_t i = 0; i < x.count(); ++i)
    if (!contains(features, int(i % 12))) x.mutable_data()[i] = 0.0f;
  std::mt19937_64 rng(2);
  layer->setup({&x}, {&y}, rng);
  const Pass dense = run(*layer, x, y);
  const Tolerances tol = tolerances(*layer, x, {12 + 1, 4, 3 + 1});
  layer->set_active_inputs(features);
  const Pass sparse = run(*layer, x, y);
  check("ip y", sparse.y, dense.y, tol.y, [](size_t) { return true; }, 0.0f);
  check("ip dx", sparse.dx, dense.dx, tol.dx, [&](size_t i) { return contains(features, int(i % 12)); }, 0.0f);
  check("ip dw", sparse.dw, dense.dw, tol.dw, [](size_t) { return true; }, 0.5f);
  check("ip db", sparse.db, dense.db, tol.db, [](size_t) { return true; }, 0.5f);
}

namespace {

std::unique_ptr<Net> net_from(const std::string& text, Phase phase = TEST) {
  NetParameter param;
  parse_text_proto(text, "net", &param);
  std::mt19937_64 rng(1);
  return std::make_unique<Net>(param, phase, rng);
}

std::string conv(const std::string& name, const std::string& bottom, int m, const std::string& extra = "") {
  return "layer { name: \"" + name + "\" type: \"Convolution\" bottom: \"" + bottom + "\" top: \"" + name +
         "\" convolution_param { num_output: " + std::to_string(m) + " kernel_size: 3 pad: 1 } " + extra + "}\n";
}

std::string layer(const std::string& name, const std::string& type, const std::vector<std::string>& bottoms,
                  const std::string& top, const std::string& params = "") {
  std::string s = "layer { name: \"" + name + "\" type: \"" + type + "\"";
  for (const auto& b : bottoms) s += " bottom: \"" + b + "\"";
  return s + " top: \"" + top + "\" " + params + " }\n";
}

const std::string kInput = "layer { name: \"in\" type: \"Input\" top: \"data\" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }\n";

}  // namespace

TEST_CASE("the graph pass derives active_inputs through ReLU, pooling, flatten, concat and eltwise", "[sparsity][structure]") {
  SECTION("conv -> relu -> pool -> conv; conv -> pool -> flatten -> ip; global pool -> ip") {
    auto net = net_from(kInput + conv("conv1", "data", 6) + layer("relu1", "ReLU", {"conv1"}, "conv1") +
                        layer("pool1", "Pooling", {"conv1"}, "pool1", "pooling_param { pool: MAX kernel_size: 2 stride: 2 }") +
                        conv("conv2", "pool1", 4) +
                        layer("pool2", "Pooling", {"conv2"}, "pool2", "pooling_param { pool: AVE kernel_size: 2 stride: 2 }") +
                        layer("flat", "Flatten", {"pool2"}, "flat") +
                        layer("ip1", "InnerProduct", {"flat"}, "ip1", "inner_product_param { num_output: 3 }") +
                        layer("gpool", "Pooling", {"conv2"}, "gpool", "pooling_param { pool: AVE global_pooling: true }") +
                        layer("ip2", "InnerProduct", {"gpool"}, "ip2", "inner_product_param { num_output: 3 }") +
                        layer("relu3", "ReLU", {"ip1"}, "ip1") +
                        layer("ip3", "InnerProduct", {"ip1"}, "ip3", "inner_product_param { num_output: 2 }"));
    net->layer_by_name("conv1")->set_active_outputs({1, 4});
    net->layer_by_name("conv2")->set_active_outputs({0, 3});
    net->layer_by_name("ip1")->set_active_outputs({0, 2});
    net->propagate_structure();
    CHECK(net->layer_by_name("conv1")->active_inputs().empty());
    CHECK(net->layer_by_name("conv2")->active_inputs() == std::vector<int>{1, 4});
    // pool2 is [2, 4, 2, 2]: channel c -> features [4c, 4c + 4).
    CHECK(net->layer_by_name("ip1")->active_inputs() == std::vector<int>{0, 1, 2, 3, 12, 13, 14, 15});
    CHECK(net->layer_by_name("ip2")->active_inputs() == std::vector<int>{0, 3});
    CHECK(net->layer_by_name("ip3")->active_inputs() == std::vector<int>{0, 2});
    // Releasing conv2 clears what depended on it.
    net->layer_by_name("conv2")->set_active_outputs({});
    net->propagate_structure();
    CHECK(net->layer_by_name("ip1")->active_inputs().empty());
    CHECK(net->layer_by_name("conv2")->active_inputs() == std::vector<int>{1, 4});
  }
  SECTION("concat of two pruned convolutions, eltwise SUM / PROD, and layers that stop propagation") {
    auto net = net_from(kInput + conv("ca", "data", 4) + conv("cb", "data", 4) +
                        layer("cat", "Concat", {"ca", "cb"}, "cat") + conv("cc", "cat", 2) +
                        conv("ea", "data", 4) + conv("eb", "data", 4) +
                        layer("sum", "Eltwise", {"ea", "eb"}, "sum") + layer("relu", "ReLU", {"sum"}, "sum") +
                        conv("ed", "sum", 2) +
                        layer("prod", "Eltwise", {"ea", "eb"}, "prod", "eltwise_param { operation: PROD }") +
                        conv("ep", "prod", 2) + layer("sig", "Sigmoid", {"ea"}, "sig") + conv("es", "sig", 2) +
                        layer("bn", "BatchNorm", {"eb"}, "bn") + conv("eq", "bn", 2) +
                        layer("sc", "Scale", {"ea"}, "sc", "scale_param { bias_term: false }") + conv("er", "sc", 2));
    net->layer_by_name("ca")->set_active_outputs({0, 2});
    net->layer_by_name("cb")->set_active_outputs({1});
    net->layer_by_name("ea")->set_active_outputs({0, 1});
    net->layer_by_name("eb")->set_active_outputs({1, 3});
    net->propagate_structure();
    CHECK(net->layer_by_name("cc")->active_inputs() == std::vector<int>{0, 2, 5});
    CHECK(net->layer_by_name("ed")->active_inputs() == std::vector<int>{0, 1, 3});
    CHECK(net->layer_by_name("ep")->active_inputs() == std::vector<int>{1});
    CHECK(net->layer_by_name("es")->active_inputs().empty());  // sigmoid(0) = 0.5
    CHECK(net->layer_by_name("eq")->active_inputs().empty());  // BatchNorm shifts
    CHECK(net->layer_by_name("er")->active_inputs() == std::vector<int>{0, 1});
    // An unpruned input of a SUM makes every channel live; of a PROD it does not matter.
    net->layer_by_name("eb")->set_active_outputs({});
    net->propagate_structure();
    CHECK(net->layer_by_name("ed")->active_inputs().empty());
    CHECK(net->layer_by_name("ep")->active_inputs() == std::vector<int>{0, 1});
    CHECK(net->layer_by_name("cc")->active_inputs() == std::vector<int>{0, 2, 5});
  }
}

namespace {

const std::string kTrainInput =
    "layer { name: \"in\" type: \"Input\" top: \"data\" top: \"label\" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } "
    "shape { dim: 2 } } }\n";

using Policies = std::vector<std::unique_ptr<SparsityPolicy>>;

void add_policy(Policies& pols, Net& net, const std::string& name, const std::string& body) {
  SparsityParameter sp;
  parse_text_proto(body, "sparsity_param", &sp);
  pols.push_back(policy_registry().create(sp.policy(), sp, *net.layer_by_name(name)));
}

std::string refusal(const Net& net, const Policies& pols) {
  try {
    validate_structure(net, pols);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

const std::string kFilter50 = "policy: \"magnitude\" granularity: FILTER target_sparsity: 0.5";

}  // namespace

TEST_CASE("validate_structure refuses classifiers, unevenly pruned coupled layers and transposed InnerProducts", "[sparsity][structure]") {
  auto net = net_from(kTrainInput + conv("c1", "data", 4) + conv("ea", "c1", 4) + conv("eb", "c1", 4) +
                          layer("sum", "Eltwise", {"ea", "eb"}, "sum") + layer("relu", "ReLU", {"sum"}, "sum") +
                          layer("ip1", "InnerProduct", {"sum"}, "ip1", "inner_product_param { num_output: 6 }") +
                          layer("ipt", "InnerProduct", {"ip1"}, "ipt", "inner_product_param { num_output: 6 transpose: true }") +
                          layer("ip2", "InnerProduct", {"ipt"}, "ip2", "inner_product_param { num_output: 3 }") +
                          layer("drop", "Dropout", {"ip2"}, "ip2") +
                          layer("loss", "SoftmaxWithLoss", {"ip2", "label"}, "loss"),
                      TRAIN);
  Policies pols;
  SECTION("accepted: coupled layers pruned alike, a hidden InnerProduct") {
    add_policy(pols, *net, "ea", kFilter50);
    add_policy(pols, *net, "eb", kFilter50);
    add_policy(pols, *net, "ip1", kFilter50);
    CHECK(refusal(*net, pols).empty());
    CHECK(coupled_groups(net->graph()).size() == 1);
    CHECK(coupled_groups(net->graph())[0].owners == std::vector<std::string>{"ea", "eb"});
  }
  SECTION("the classifier feeding SoftmaxWithLoss (through Dropout)") {
    add_policy(pols, *net, "ip2", kFilter50);
    CHECK_THAT(refusal(*net, pols), Catch::Contains("'ip2'") && Catch::Contains("'loss' (SoftmaxWithLoss)") &&
                                        Catch::Contains("label space"));
  }
  SECTION("coupled Eltwise branches pruned differently or only one of them") {
    add_policy(pols, *net, "ea", kFilter50);
    CHECK_THAT(refusal(*net, pols), Catch::Contains("'ea', 'eb'") && Catch::Contains("channel-coupled") &&
                                        Catch::Contains("Eltwise 'sum'") && Catch::Contains("'eb' (Convolution) is not"));
    add_policy(pols, *net, "eb", "policy: \"magnitude\" granularity: FILTER target_sparsity: 0.25");
    CHECK_THAT(refusal(*net, pols), Catch::Contains("channel-coupled") && Catch::Contains("target_sparsity 0.5") &&
                                        Catch::Contains("target_sparsity 0.25"));
  }
  SECTION("a transposed InnerProduct") {
    add_policy(pols, *net, "ipt", kFilter50);
    CHECK_THAT(refusal(*net, pols), Catch::Contains("'ipt'") && Catch::Contains("transpose: true"));
  }
}

TEST_CASE("filter pruning trains through the Solver and the thinned model reproduces its TEST accuracy", "[sparsity][structure][thin]") {
  TempDir dir;
  test::write_learnable_idx(dir);
  set_num_threads(1);
  std::string text = test::tiny_conv_solver(
      dir.path().string(), 60, schedule("phase { mode: DENSE start_iter: 0 } phase { mode: PRUNE start_iter: 20 }"));
  text = with_sparsity(text, "conv1", kFilter50 + " force: true");
  text = with_sparsity(text, "ip1", kFilter50);
  std::ofstream(dir.file("solver.prototxt")) << text;
  LoadedConfig c = load_solver_config(dir.file("solver.prototxt"));
  Context ctx;
  ctx.seed = 7;
  Solver s(c.solver, c.net_locations, ctx, dir.file("filter"));
  install_sparsity(s);
  float accuracy = -1;
  s.on_test = [&](const TestReport& r) {
    for (const auto& kv : r.outputs)
      if (kv.first == "accuracy") accuracy = kv.second;
  };
  s.solve();
  REQUIRE(accuracy > 0.5f);
  const Layer& conv1 = *s.test_net()->layer_by_name("conv1");
  const Layer& ip1 = *s.test_net()->layer_by_name("ip1");
  REQUIRE(conv1.active_outputs().size() == 2);
  CHECK(ip1.active_inputs().size() == 2 * 100);  // conv1 is [N, 4, 10, 10]
  CHECK(ip1.active_outputs().size() == 16);
  CHECK(s.test_net()->layer_by_name("ip2")->active_inputs() == ip1.active_outputs());

  // Thinning needs no dataset: the snapshot records the data layers' shapes.
  const ModelFile snapshot = read_model_file(s.last_snapshot());
  CHECK(snapshot.source_shape_size() == 2);  // the TRAIN and TEST data layers
  std::filesystem::rename(dir.file("train-images-idx3-ubyte"), dir.file("moved-train"));
  std::filesystem::rename(dir.file("t10k-images-idx3-ubyte"), dir.file("moved-test"));
  ThinnedModel thin = thin_model(snapshot, s.last_snapshot());
  CHECK(thin.thinned_layers == 2);
  std::filesystem::rename(dir.file("moved-train"), dir.file("train-images-idx3-ubyte"));
  std::filesystem::rename(dir.file("moved-test"), dir.file("t10k-images-idx3-ubyte"));
  std::mt19937_64 rng(0);
  REQUIRE_FALSE(thin.solver.net_param().layer(2).has_sparsity_param());
  CHECK_FALSE(thin.solver.has_schedule());
  Net plain(thin.solver.net_param(), TEST, rng);
  plain.params_from_proto(thin.model);
  CHECK(plain.layer_by_name("conv1")->blobs()[0]->shape() == std::vector<int>{2, 1, 3, 3});
  CHECK(plain.layer_by_name("ip1")->blobs()[0]->shape() == std::vector<int>{16, 200});
  CHECK(plain.layer_by_name("ip2")->blobs()[0]->shape() == std::vector<int>{4, 16});
  double sum = 0;
  Context test_ctx;
  test_ctx.phase = TEST;
  for (int i = 0; i < 4; ++i) {
    plain.forward(test_ctx);
    sum += plain.blob("accuracy").data()[0];
  }
  CHECK(float(sum / 4) == Approx(accuracy).margin(1e-6));
  const auto lines = thin_report(thin);
  CHECK_THAT(lines[1], Catch::Contains("conv1") && Catch::Contains("4 -> 2"));
}

TEST_CASE("thinning keeps the union of coupled layers and leaves a layer feeding BatchNorm at full width", "[sparsity][structure][thin]") {
  const std::string filter = "sparsity_param { policy: \"magnitude\" granularity: FILTER target_sparsity: 0.5 } ";
  const std::string text =
      kInput + conv("ca", "data", 4, filter) + conv("cb", "data", 4, filter) + layer("sum", "Eltwise", {"ca", "cb"}, "sum") +
      layer("relu", "ReLU", {"sum"}, "sum") + conv("cd", "sum", 3, filter) + layer("flat", "Flatten", {"cd"}, "flat") +
      layer("ip", "InnerProduct", {"flat"}, "ip", "inner_product_param { num_output: 5 weight_filler { type: \"xavier\" } }") +
      conv("ce", "data", 4, filter) + layer("bn", "BatchNorm", {"ce"}, "bn") + conv("cf", "bn", 2);
  NetParameter param;
  parse_text_proto(text, "net", &param);
  for (auto& l : *param.mutable_layer())
    if (l.type() == "Convolution") {
      l.mutable_convolution_param()->mutable_weight_filler()->set_type("xavier");
      l.mutable_convolution_param()->mutable_bias_filler()->set_type("uniform");
    }
  std::mt19937_64 rng(3);
  Net net(param, TEST, rng);
  ModelFile model;
  *model.mutable_net() = param;
  const std::map<std::string, std::vector<int>> kept{{"ca", {0, 1}}, {"cb", {1, 2}}, {"cd", {0, 2}}, {"ce", {0, 3}}};
  for (const auto& kv : kept) {
    Layer& l = *net.layer_by_name(kv.first);
    Tensor& w = *l.blobs()[0];
    const int64_t per = w.count(1);
    std::string bits(size_t((w.count() + 7) / 8), '\0');
    for (int m = 0; m < w.shape(0); ++m)
      for (int64_t i = m * per; i < (m + 1) * per; ++i) {
        if (contains(kv.second, m)) bits[size_t(i / 8)] = char(uint8_t(bits[size_t(i / 8)]) | (1u << (i % 8)));
        else w.mutable_data()[i] = 0.0f;
      }
    for (int m = 0; m < w.shape(0); ++m)
      if (!contains(kv.second, m)) l.blobs()[1]->mutable_data()[m] = 0.0f;
    PolicyState* s = model.add_policy();
    s->set_layer(kv.first);
    s->set_policy("magnitude");
    s->set_active(true);
    s->add_mask(bits);
  }
  net.params_to_proto(&model);
  ThinnedModel thin = thin_model(model, "coupled");
  std::map<std::string, ThinLayer> rows;
  for (const auto& r : thin.layers) rows[r.name] = r;
  CHECK(rows.at("ca").outputs_after == 3);  // {0, 1} | {1, 2}
  CHECK(rows.at("cb").outputs_after == 3);
  CHECK(rows.at("cd").outputs_after == 2);
  CHECK(rows.at("cd").params_after == 2 * (3 * 9 + 1));
  CHECK(rows.at("ip").params_after == 5 * (2 * 64 + 1));
  CHECK(rows.at("ip").macs_after == 5 * 2 * 64);
  CHECK(rows.at("ce").outputs_after == 4);
  CHECK_THAT(rows.at("ce").note, Catch::Contains("'bn' (BatchNorm)"));
  CHECK(thin.thinned_layers == 3);

  std::mt19937_64 rng2(0);
  Net plain(thin.model.net(), TEST, rng2);
  plain.params_from_proto(thin.model);
  test::fill_uniform(net.blob("data"), -1, 1, 9);
  plain.blob("data").copy_from(net.blob("data"));
  net.forward(Context{});
  plain.forward(Context{});
  // Chain reduction lengths (support/net_tolerance.hpp): ip = ca (3 * 9 + 1) + sum (1) + cd
  // (4 * 9 + 1) + ip (3 * 64 + 1); cf = ce (3 * 9 + 1) + bn (2) + cf (4 * 9 + 1).
  const auto mag = test::magnitude_net(param, model, {{"data", &net.blob("data")}});
  for (const auto& [blob, terms] : std::map<std::string, int64_t>{{"ip", 28 + 1 + 37 + 193}, {"cf", 28 + 2 + 37}}) {
    const Tensor &a = net.blob(blob), &b = plain.blob(blob), &m = mag->blob(blob);
    REQUIRE(a.shape() == b.shape());
    for (int64_t i = 0; i < a.count(); ++i) {
      INFO(blob << " " << i << ": thin " << b.data()[i] << ", masked " << a.data()[i]);
      REQUIRE(std::fabs(b.data()[i] - a.data()[i]) <= test::reduction_tolerance(terms, m.data()[i]));
    }
  }
}

TEST_CASE("a filter-pruned classifier is refused when the solver loads the schedule", "[sparsity][structure]") {
  TempDir dir;
  test::write_learnable_idx(dir, 64, 20);
  std::string text = test::tiny_mlp_solver(dir.path().string(), 10, schedule("phase { mode: PRUNE start_iter: 0 }"));
  std::ofstream(dir.file("solver.prototxt")) << with_sparsity(text, "ip2", kFilter50);
  LoadedConfig c = load_solver_config(dir.file("solver.prototxt"));
  Context ctx;
  Solver s(c.solver, c.net_locations, ctx, dir.file("x"));
  REQUIRE_THROWS_WITH(install_sparsity(s), Catch::Contains("layer 'ip2'") && Catch::Contains("'loss' (SoftmaxWithLoss)") &&
                                        Catch::Contains("label space"));
}
