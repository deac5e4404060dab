// ONNX export (apps/onnx_export.hpp): graph structure, Caffe-faithful attributes, exact weights,
// shared (codebook) weights, errors, and an independent check of every model by ONNX's C++ checker
// and strict shape inference, and by the Python onnx package when /usr/bin/python3 has it
// (check_model(full_check=True) + strict shape inference: infer_model, called infer_shapes in onnx 1.12,
// with the inferred output shapes
// compared against the net's blob shapes).
#include <catch2/catch.hpp>

#ifdef DSG_WITH_ONNX

#include <onnx/checker.h>
#include <onnx/shape_inference/implementation.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/onnx_export.hpp"
#include "datasets/synthetic_data.hpp"
#include "runtime/config.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/net.hpp"

namespace {

using dsg::Net;
using dsg::test::TempDir;

// A layer type that only exists in this test binary, so that the exporter has no mapping for it.
class OnnxTestOpaqueLayer : public dsg::Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "OnnxTestOpaque"; }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }

 protected:
  void reshape(const dsg::TensorVec& bottom, const dsg::TensorVec& top) override { top[0]->reshape_like(*bottom[0]); }
  void forward_cpu(const dsg::TensorVec& bottom, const dsg::TensorVec& top, const dsg::Context&) override {
    top[0]->copy_from(*bottom[0]);
  }
  void backward_cpu(const dsg::TensorVec&, const std::vector<bool>&, const dsg::TensorVec&,
                    const dsg::Context&) override {}
};
DSG_REGISTER_LAYER("OnnxTestOpaque", OnnxTestOpaqueLayer);

std::unique_ptr<Net> make_net(const std::string& text, dsg::Phase phase = dsg::TEST, uint64_t seed = 7) {
  dsg::NetParameter p;
  dsg::parse_text_proto(text, "onnx-test", &p);
  std::mt19937_64 rng(seed);
  return std::make_unique<Net>(p, phase, rng);
}

// Fills every parameter blob with distinct, non-trivial values (fillers leave biases at 0).
void randomize_params(Net& net, uint64_t seed = 11) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const auto& l : net.layers())
    for (const auto& b : l->blobs()) {
      float* d = b->mutable_data();
      for (int64_t k = 0; k < b->count(); ++k) d[k] = u(rng);
    }
}

// ---- ModelProto inspection ------------------------------------------------------------------------

std::vector<float> floats(const onnx::TensorProto& t) {
  REQUIRE(t.data_type() == onnx::TensorProto::FLOAT);
  std::vector<float> v;
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    REQUIRE(raw.size() % 4 == 0);
    for (size_t k = 0; k < raw.size(); k += 4) {
      uint32_t bits = 0;
      for (int b = 0; b < 4; ++b) bits |= uint32_t(uint8_t(raw[k + size_t(b)])) << (8 * b);
      float f;
      std::memcpy(&f, &bits, 4);
      v.push_back(f);
    }
  } else {
    v.assign(t.float_data().begin(), t.float_data().end());
  }
  return v;
}

std::vector<int64_t> ints(const onnx::TensorProto& t) {
  std::vector<int64_t> v;
  const int width = t.data_type() == onnx::TensorProto::INT64 ? 8 : t.data_type() == onnx::TensorProto::UINT8 ? 1 : 4;
  REQUIRE((t.data_type() == onnx::TensorProto::INT64 || t.data_type() == onnx::TensorProto::INT32 ||
           t.data_type() == onnx::TensorProto::UINT8));
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    for (size_t k = 0; k + size_t(width) <= raw.size(); k += size_t(width)) {
      uint64_t bits = 0;
      for (int b = 0; b < width; ++b) bits |= uint64_t(uint8_t(raw[k + size_t(b)])) << (8 * b);
      v.push_back(width == 8 ? int64_t(bits) : width == 1 ? int64_t(bits) : int64_t(int32_t(uint32_t(bits))));
    }
  } else if (width == 8) {
    v.assign(t.int64_data().begin(), t.int64_data().end());
  } else {
    v.assign(t.int32_data().begin(), t.int32_data().end());
  }
  return v;
}

std::vector<int64_t> dims(const onnx::TensorProto& t) { return {t.dims().begin(), t.dims().end()}; }

const onnx::TensorProto* initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

const onnx::NodeProto* producer(const onnx::ModelProto& m, const std::string& value) {
  for (const auto& n : m.graph().node())
    for (const auto& o : n.output())
      if (o == value) return &n;
  return nullptr;
}

std::vector<const onnx::NodeProto*> nodes(const onnx::ModelProto& m, const std::string& op) {
  std::vector<const onnx::NodeProto*> v;
  for (const auto& n : m.graph().node())
    if (n.op_type() == op) v.push_back(&n);
  return v;
}

const onnx::NodeProto& node_named(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& n : m.graph().node())
    if (n.name() == name) return n;
  FAIL("no node named " << name);
  throw 0;
}

std::vector<std::string> op_types(const onnx::ModelProto& m) {
  std::vector<std::string> v;
  for (const auto& n : m.graph().node()) v.push_back(n.op_type());
  return v;
}

const onnx::AttributeProto* attribute(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}
int64_t attr_i(const onnx::NodeProto& n, const std::string& name) {
  const auto* a = attribute(n, name);
  REQUIRE(a);
  return a->i();
}
std::vector<int64_t> attr_ints(const onnx::NodeProto& n, const std::string& name) {
  const auto* a = attribute(n, name);
  REQUIRE(a);
  return {a->ints().begin(), a->ints().end()};
}

std::vector<std::string> names(const google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>& v) {
  std::vector<std::string> out;
  for (const auto& vi : v) out.push_back(vi.name());
  return out;
}

// A dimension as "N" (or another named symbol), a number, or "?" (unknown; also for the "unk__<k>"
// symbols shape inference may generate).
std::string dim_text(const std::string& text) { return text.rfind("unk__", 0) == 0 ? "?" : text; }

std::vector<std::string> shape_of(const onnx::ValueInfoProto& vi) {
  std::vector<std::string> out;
  for (const auto& d : vi.type().tensor_type().shape().dim())
    out.push_back(d.has_dim_value() ? std::to_string(d.dim_value()) : d.has_dim_param() ? dim_text(d.dim_param()) : "?");
  return out;
}

// The net's shape with axis 0 written "N" when the batch is symbolic.
std::vector<std::string> expected_shape(const std::vector<int>& net_shape, bool dynamic) {
  std::vector<std::string> out;
  for (size_t k = 0; k < net_shape.size(); ++k)
    out.push_back(k == 0 && dynamic ? "N" : std::to_string(net_shape[k]));
  return out;
}

// Shapes the graph outputs should have: the net's blob of the same name, or `extra` (e.g. "prob").
std::map<std::string, std::vector<std::string>> expected_outputs(
    const onnx::ModelProto& m, const Net& net, bool dynamic,
    const std::map<std::string, std::string>& extra = {}) {
  std::map<std::string, std::vector<std::string>> want;
  for (const auto& o : m.graph().output()) {
    auto it = extra.find(o.name());
    const std::string blob = it == extra.end() ? o.name() : it->second;
    INFO("graph output " << o.name());
    REQUIRE(net.has_blob(blob));
    want[o.name()] = expected_shape(net.blob(blob).shape(), dynamic);
  }
  return want;
}

bool python_onnx_available() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") == 0;
  return ok;
}

std::string run_capture(const std::string& cmd, int* status) {
  FILE* pipe = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(pipe);
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int st = pclose(pipe);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// Independent validation of an exported model: ONNX's C++ checker and strict shape inference, SSA
// form, output shapes equal to the net's blob shapes, and the same through Python's onnx package.
void validate(const onnx::ModelProto& m, const std::map<std::string, std::vector<std::string>>& want_outputs) {
  REQUIRE_NOTHROW(onnx::checker::check_model(m));
  {
    onnx::ModelProto copy = m;
    REQUIRE_NOTHROW(onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(),
                                                       onnx::ShapeInferenceOptions(true, 1, false)));
    for (const auto& o : copy.graph().output()) {
      INFO("C++-inferred shape of output " << o.name());
      REQUIRE(want_outputs.count(o.name()));
      CHECK(shape_of(o) == want_outputs.at(o.name()));
    }
  }
  // SSA: every value is defined once (graph inputs, initializers, node outputs).
  std::set<std::string> defined;
  for (const auto& i : m.graph().input()) CHECK(defined.insert(i.name()).second);
  for (const auto& t : m.graph().initializer()) CHECK(defined.insert(t.name()).second);
  for (const auto& n : m.graph().node())
    for (const auto& o : n.output()) {
      INFO("value " << o << " of node " << n.name());
      CHECK(defined.insert(o).second);
    }
  CHECK(m.graph().output_size() == int(want_outputs.size()));
  for (const auto& o : m.graph().output()) {
    INFO("declared shape of output " << o.name());
    CHECK(shape_of(o) == want_outputs.at(o.name()));
  }

  if (!python_onnx_available()) {
    WARN("/usr/bin/python3 has no onnx package; skipping the Python checker");
    return;
  }
  TempDir dir;
  const std::string path = dir.file("model.onnx");
  {
    std::ofstream out(path, std::ios::binary);
    REQUIRE(m.SerializeToOstream(&out));
  }
  int status = 0;
  std::string out = run_capture(
      "/usr/bin/python3 -c 'import onnx,sys; m=onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True); "
      "si=onnx.shape_inference; getattr(si, \"infer_model\", si.infer_shapes)(m, strict_mode=True)' " + path,
      &status);
  INFO(out);
  REQUIRE(status == 0);
  // The shapes Python's inference derives from the inputs alone (declared output shapes removed).
  out = run_capture(
      "/usr/bin/python3 -c '"
      "import onnx,sys\n"
      "m=onnx.load(sys.argv[1])\n"
      "for o in m.graph.output: o.type.tensor_type.ClearField(\"shape\")\n"
      "m=onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)\n"
      "for o in m.graph.output:\n"
      "  print(o.name + \"=\" + \",\".join(d.dim_param if d.HasField(\"dim_param\") else "
      "str(d.dim_value) if d.HasField(\"dim_value\") else \"?\" for d in o.type.tensor_type.shape.dim))\n"
      "' " + path,
      &status);
  INFO(out);
  REQUIRE(status == 0);
  std::map<std::string, std::vector<std::string>> got;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const auto eq = line.rfind('=');
    REQUIRE(eq != std::string::npos);
    std::vector<std::string> d;
    std::istringstream parts(line.substr(eq + 1));
    for (std::string p; std::getline(parts, p, ',');) d.push_back(dim_text(p));
    got[line.substr(0, eq)] = d;
  }
  CHECK(got == want_outputs);
}

// The initializer feeding input `k` of node `n` (or the codebook expansion's output otherwise).
std::vector<float> init_values(const onnx::ModelProto& m, const onnx::NodeProto& n, int k) {
  REQUIRE(n.input_size() > k);
  const onnx::TensorProto* t = initializer(m, n.input(k));
  INFO("input " << k << " (" << n.input(k) << ") of node " << n.name());
  REQUIRE(t);
  return floats(*t);
}

std::vector<float> blob_values(const Net& net, const std::string& layer, int index) {
  const dsg::Layer* l = net.layer_by_name(layer);
  REQUIRE(l);
  const dsg::Tensor& t = *l->blobs()[size_t(index)];
  return std::vector<float>(t.data(), t.data() + t.count());
}

const char* kLeNet = R"(
  name: "lenet"
  layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 28 dim: 28 } } }
  layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
          convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } } }
  layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
  layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
          convolution_param { num_output: 50 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } } }
  layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
  layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
          inner_product_param { num_output: 500 weight_filler { type: "xavier" } } }
  layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
  layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
          inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
  layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }
)";

}  // namespace

TEST_CASE("ONNX export: LeNet-5 maps layer by layer with the net's exact weights", "[onnx][apps]") {
  auto net = make_net(kLeNet);
  randomize_params(*net);
  const onnx::ModelProto m = dsg::to_onnx(*net);

  CHECK(m.opset_import_size() == 1);
  CHECK(m.opset_import(0).version() == 13);
  CHECK(m.producer_name() == "dsg");
  CHECK(op_types(m) == std::vector<std::string>{"Conv", "MaxPool", "Conv", "MaxPool", "Flatten", "Gemm", "Relu",
                                                 "Gemm", "Softmax"});
  REQUIRE(names(m.graph().input()) == std::vector<std::string>{"data"});
  CHECK(shape_of(m.graph().input(0)) == std::vector<std::string>{"N", "1", "28", "28"});
  REQUIRE(names(m.graph().output()) == std::vector<std::string>{"prob"});
  CHECK(shape_of(m.graph().output(0)) == std::vector<std::string>{"N", "10"});

  // Convolutions: attributes and exact weights and biases.
  for (const char* name : {"conv1", "conv2"}) {
    const onnx::NodeProto& c = node_named(m, name);
    INFO(name);
    CHECK(c.op_type() == "Conv");
    CHECK(attr_ints(c, "kernel_shape") == std::vector<int64_t>{5, 5});
    CHECK(attr_ints(c, "strides") == std::vector<int64_t>{1, 1});
    CHECK(attr_ints(c, "pads") == std::vector<int64_t>{0, 0, 0, 0});
    CHECK(attr_ints(c, "dilations") == std::vector<int64_t>{1, 1});
    CHECK(attr_i(c, "group") == 1);
    REQUIRE(c.input_size() == 3);
    CHECK(dims(*initializer(m, c.input(1))) == std::vector<int64_t>(net->layer_by_name(name)->blobs()[0]->shape().begin(),
                                                                   net->layer_by_name(name)->blobs()[0]->shape().end()));
    CHECK(init_values(m, c, 1) == blob_values(*net, name, 0));
    CHECK(init_values(m, c, 2) == blob_values(*net, name, 1));
  }
  for (const char* name : {"pool1", "pool2"}) {
    const onnx::NodeProto& p = node_named(m, name);
    CHECK(attr_ints(p, "kernel_shape") == std::vector<int64_t>{2, 2});
    CHECK(attr_ints(p, "strides") == std::vector<int64_t>{2, 2});
    CHECK(attr_ints(p, "pads") == std::vector<int64_t>{0, 0, 0, 0});
    CHECK(attr_i(p, "ceil_mode") == 1);  // Caffe's CEIL rounding
  }
  for (const char* name : {"ip1", "ip2"}) {
    const onnx::NodeProto& g = node_named(m, name);
    INFO(name);
    CHECK(g.op_type() == "Gemm");
    CHECK(attr_i(g, "transB") == 1);
    REQUIRE(g.input_size() == 3);
    CHECK(init_values(m, g, 1) == blob_values(*net, name, 0));
    CHECK(init_values(m, g, 2) == blob_values(*net, name, 1));
  }
  CHECK(attr_i(node_named(m, "ip1/flatten"), "axis") == 1);
  CHECK(attr_i(node_named(m, "prob"), "axis") == 1);

  // The in-place ReLU gets a fresh SSA value; the blob's last version keeps its name.
  const onnx::NodeProto& relu = node_named(m, "relu1");
  CHECK(relu.input(0) != relu.output(0));
  CHECK(relu.output(0) == "ip1");
  CHECK(producer(m, relu.input(0)) == &node_named(m, "ip1"));
  CHECK(node_named(m, "ip2").input(0) == "ip1");

  validate(m, expected_outputs(m, *net, true));
}

TEST_CASE("ONNX export: fixed batch size, opsets 11 and 17, and the file writer", "[onnx][apps]") {
  auto net = make_net(kLeNet);
  randomize_params(*net);
  dsg::OnnxExportOptions fixed;
  fixed.dynamic_batch = false;
  fixed.producer = "dsg-test";
  const onnx::ModelProto m = dsg::to_onnx(*net, fixed);
  CHECK(m.producer_name() == "dsg-test");
  CHECK(shape_of(m.graph().input(0)) == std::vector<std::string>{"2", "1", "28", "28"});
  CHECK(shape_of(m.graph().output(0)) == std::vector<std::string>{"2", "10"});
  validate(m, expected_outputs(m, *net, false));

  for (int opset : {11, 17}) {
    dsg::OnnxExportOptions o;
    o.opset = opset;
    INFO("opset " << opset);
    const onnx::ModelProto mo = dsg::to_onnx(*net, o);
    CHECK(mo.opset_import(0).version() == opset);
    validate(mo, expected_outputs(mo, *net, true));
  }
  dsg::OnnxExportOptions bad;
  bad.opset = 9;
  CHECK_THROWS_AS(dsg::to_onnx(*net, bad), dsg::Error);
  bad.opset = 99;
  CHECK_THROWS_AS(dsg::to_onnx(*net, bad), dsg::Error);

  TempDir dir;
  const std::string path = dir.file("lenet.onnx");
  dsg::export_onnx(*net, path);
  onnx::ModelProto back;
  {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(back.ParseFromIstream(&in));
  }
  CHECK(back.SerializeAsString() == dsg::to_onnx(*net).SerializeAsString());
  CHECK_THROWS_WITH(dsg::export_onnx(*net, dir.file("missing/dir/x.onnx")), Catch::Contains("missing/dir/x.onnx"));
}

TEST_CASE("ONNX export: BatchNorm folds with its Scale; lone BatchNorm and Scale broadcast per channel",
          "[onnx][apps]") {
  auto net = make_net(R"(
    name: "bn"
    layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
    layer { name: "conv1" type: "Convolution" bottom: "data" top: "c1"
            convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
    layer { name: "bn1" type: "BatchNorm" bottom: "c1" top: "c1" batch_norm_param { eps: 0.001 } }
    layer { name: "sc1" type: "Scale" bottom: "c1" top: "c1" scale_param { bias_term: true } }
    layer { name: "relu1" type: "ReLU" bottom: "c1" top: "c1" }
    layer { name: "bn2" type: "BatchNorm" bottom: "c1" top: "b2" }
    layer { name: "relu2" type: "ReLU" bottom: "b2" top: "b2" relu_param { negative_slope: 0.1 } }
    layer { name: "sc2" type: "Scale" bottom: "b2" top: "s2" }
  )");
  randomize_params(*net);
  for (const char* bn : {"bn1", "bn2"}) {  // positive variances and a moving-average factor
    auto& blobs = net->layer_by_name(bn)->blobs();
    for (int64_t k = 0; k < blobs[1]->count(); ++k) blobs[1]->mutable_data()[k] = 0.5f + float(k);
    blobs[2]->mutable_data()[0] = 2.5f;
  }
  const onnx::ModelProto m = dsg::to_onnx(*net);
  CHECK(op_types(m) == std::vector<std::string>{"Conv", "BatchNormalization", "Relu", "BatchNormalization",
                                                 "LeakyRelu", "Mul"});
  const onnx::NodeProto& bn1 = node_named(m, "bn1");
  CHECK(bn1.op_type() == "BatchNormalization");
  CHECK(attribute(bn1, "epsilon")->f() == 0.001f);
  const float s = 1.0f / 2.5f;
  std::vector<float> mean, var;
  for (float v : blob_values(*net, "bn1", 0)) mean.push_back(v * s);
  for (float v : blob_values(*net, "bn1", 1)) var.push_back(v * s);
  CHECK(init_values(m, bn1, 1) == blob_values(*net, "sc1", 0));  // folded Scale
  CHECK(init_values(m, bn1, 2) == blob_values(*net, "sc1", 1));
  CHECK(init_values(m, bn1, 3) == mean);
  CHECK(init_values(m, bn1, 4) == var);
  CHECK(bn1.output(0) != bn1.input(0));

  const onnx::NodeProto& bn2 = node_named(m, "bn2");
  CHECK(attribute(bn2, "epsilon")->f() == 1e-5f);
  CHECK(init_values(m, bn2, 1) == std::vector<float>(4, 1.0f));
  CHECK(init_values(m, bn2, 2) == std::vector<float>(4, 0.0f));
  mean.clear();
  for (float v : blob_values(*net, "bn2", 0)) mean.push_back(v * s);
  CHECK(init_values(m, bn2, 3) == mean);
  CHECK(attribute(node_named(m, "relu2"), "alpha")->f() == 0.1f);

  const onnx::NodeProto& sc2 = node_named(m, "sc2");
  CHECK(sc2.op_type() == "Mul");
  CHECK(dims(*initializer(m, sc2.input(1))) == std::vector<int64_t>{4, 1, 1});
  CHECK(init_values(m, sc2, 1) == blob_values(*net, "sc2", 0));
  CHECK(names(m.graph().output()) == std::vector<std::string>{"s2"});
  validate(m, expected_outputs(m, *net, true));

  // A Scale that does not directly follow its BatchNorm becomes Mul + Add.
  auto net2 = make_net(R"(
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" }
    layer { name: "r" type: "ReLU" bottom: "y" top: "y" }
    layer { name: "sc" type: "Scale" bottom: "y" top: "z" scale_param { bias_term: true } }
  )");
  randomize_params(*net2);
  auto& stats = net2->layer_by_name("bn")->blobs();
  for (int64_t k = 0; k < 3; ++k) stats[1]->mutable_data()[k] = 0.25f * float(k + 1);
  stats[2]->mutable_data()[0] = 1.0f;
  const onnx::ModelProto m2 = dsg::to_onnx(*net2);
  CHECK(op_types(m2) == std::vector<std::string>{"BatchNormalization", "Relu", "Mul", "Add"});
  const onnx::NodeProto& add = node_named(m2, "sc/bias");
  CHECK(dims(*initializer(m2, add.input(1))) == std::vector<int64_t>{3, 1, 1});
  CHECK(init_values(m2, add, 1) == blob_values(*net2, "sc", 1));
  CHECK(init_values(m2, node_named(m2, "bn"), 4) == blob_values(*net2, "bn", 1));  // factor 1
  validate(m2, expected_outputs(m2, *net2, true));
}

TEST_CASE("ONNX export: Eltwise SUM with coefficients, PROD, MAX and Concat", "[onnx][apps]") {
  auto net = make_net(R"(
    name: "elt"
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
    layer { name: "ca" type: "Convolution" bottom: "x" top: "a" convolution_param { num_output: 2 kernel_size: 1 } }
    layer { name: "cb" type: "Convolution" bottom: "x" top: "b" convolution_param { num_output: 2 kernel_size: 1 } }
    layer { name: "cc" type: "Convolution" bottom: "x" top: "c" convolution_param { num_output: 2 kernel_size: 1 } }
    layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }
    layer { name: "prod" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "p" eltwise_param { operation: PROD } }
    layer { name: "max" type: "Eltwise" bottom: "a" bottom: "c" top: "m" eltwise_param { operation: MAX } }
    layer { name: "plain" type: "Eltwise" bottom: "b" bottom: "c" top: "q" }
    layer { name: "cat" type: "Concat" bottom: "s" bottom: "p" bottom: "m" bottom: "q" top: "cat" }
    layer { name: "cat0" type: "Concat" bottom: "x" bottom: "x" top: "cat0" concat_param { axis: 0 } }
  )");
  randomize_params(*net);
  const onnx::ModelProto m = dsg::to_onnx(*net);
  CHECK(nodes(m, "Split").empty());  // fan-out reuses the value
  const onnx::NodeProto& sum = node_named(m, "sum");
  CHECK(sum.op_type() == "Sum");
  REQUIRE(sum.input_size() == 2);
  CHECK(sum.input(0) == node_named(m, "ca").output(0));
  const onnx::NodeProto* coeff = producer(m, sum.input(1));
  REQUIRE(coeff);
  CHECK(coeff->op_type() == "Mul");
  CHECK(coeff->input(0) == node_named(m, "cb").output(0));
  CHECK(init_values(m, *coeff, 1) == std::vector<float>{-0.5f});
  const onnx::NodeProto& prod = node_named(m, "prod");
  CHECK(prod.op_type() == "Mul");
  CHECK(producer(m, prod.input(0))->op_type() == "Mul");
  CHECK(node_named(m, "max").op_type() == "Max");
  CHECK(node_named(m, "max").input_size() == 2);
  CHECK(node_named(m, "plain").op_type() == "Sum");
  const onnx::NodeProto& cat = node_named(m, "cat");
  CHECK(cat.op_type() == "Concat");
  CHECK(attr_i(cat, "axis") == 1);
  CHECK(cat.input_size() == 4);
  CHECK(attr_i(node_named(m, "cat0"), "axis") == 0);
  CHECK(names(m.graph().output()) == std::vector<std::string>{"cat", "cat0"});
  auto want = expected_outputs(m, *net, true);
  want["cat0"][0] = "?";  // N + N
  validate(m, want);

  // Concat along the batch axis only makes sense with the batch size fixed.
  dsg::OnnxExportOptions fixed;
  fixed.dynamic_batch = false;
  const onnx::ModelProto mf = dsg::to_onnx(*net, fixed);
  validate(mf, expected_outputs(mf, *net, false));
}

TEST_CASE("ONNX export: Flatten, Reshape and InnerProduct on other axes keep Caffe's shapes", "[onnx][apps]") {
  auto net = make_net(R"(
    name: "shapes"
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
    layer { name: "flat" type: "Flatten" bottom: "x" top: "f" }
    layer { name: "flat2" type: "Flatten" bottom: "x" top: "f2" flatten_param { axis: 2 } }
    layer { name: "flat0" type: "Flatten" bottom: "x" top: "f0" flatten_param { axis: 0 end_axis: 1 } }
    layer { name: "rs" type: "Reshape" bottom: "f" top: "r" reshape_param { shape { dim: 0 dim: -1 dim: 4 } } }
    layer { name: "rs2" type: "Reshape" bottom: "x" top: "r2" reshape_param { shape { dim: 2 dim: 2 } axis: 2 num_axes: 1 } }
    layer { name: "rs3" type: "Reshape" bottom: "x" top: "r3" reshape_param { shape { dim: -1 dim: 8 } } }
    layer { name: "ip_ax2" type: "InnerProduct" bottom: "x" top: "y2"
            inner_product_param { num_output: 5 axis: 2 weight_filler { type: "xavier" } } }
    layer { name: "ip_t" type: "InnerProduct" bottom: "x" top: "yt"
            inner_product_param { num_output: 6 transpose: true bias_term: false weight_filler { type: "xavier" } } }
    layer { name: "ip_ax0" type: "InnerProduct" bottom: "r" top: "y0"
            inner_product_param { num_output: 3 axis: 0 weight_filler { type: "xavier" } } }
  )");
  randomize_params(*net);
  dsg::OnnxExportOptions fixed;
  fixed.dynamic_batch = false;
  for (bool dynamic : {true, false}) {
    INFO("dynamic batch " << dynamic);
    const onnx::ModelProto m = dsg::to_onnx(*net, dynamic ? dsg::OnnxExportOptions{} : fixed);
    CHECK(node_named(m, "flat").op_type() == "Flatten");
    CHECK(node_named(m, "flat2").op_type() == "Reshape");
    CHECK(node_named(m, "rs").op_type() == "Reshape");
    const std::vector<int64_t> b = {dynamic ? 0 : 2};
    CHECK(ints(*initializer(m, node_named(m, "flat2").input(1))) == std::vector<int64_t>{b[0], 3, 16});
    CHECK(ints(*initializer(m, node_named(m, "flat0").input(1))) == std::vector<int64_t>{dynamic ? -1 : 6, 4, 4});
    CHECK(ints(*initializer(m, node_named(m, "rs").input(1))) == std::vector<int64_t>{b[0], 12, 4});
    CHECK(ints(*initializer(m, node_named(m, "rs2").input(1))) == std::vector<int64_t>{b[0], 3, 2, 2, 4});
    CHECK(ints(*initializer(m, node_named(m, "rs3").input(1))) == std::vector<int64_t>{dynamic ? -1 : 12, 8});
    // axis 2: Reshape to [d0, d1, K], MatMul with W^T, Add bias.
    CHECK(node_named(m, "ip_ax2").op_type() == "MatMul");
    CHECK(ints(*initializer(m, node_named(m, "ip_ax2/reshape").input(1))) == std::vector<int64_t>{0, 0, -1});
    const onnx::NodeProto& tr = node_named(m, "ip_ax2/transpose");
    CHECK(init_values(m, tr, 0) == blob_values(*net, "ip_ax2", 0));
    CHECK(init_values(m, node_named(m, "ip_ax2/bias"), 1) == blob_values(*net, "ip_ax2", 1));
    // transpose: W is already [K, N], so Gemm without transB; no bias input.
    const onnx::NodeProto& gt = node_named(m, "ip_t");
    CHECK(gt.op_type() == "Gemm");
    CHECK(attr_i(gt, "transB") == 0);
    CHECK(gt.input_size() == 2);
    CHECK(init_values(m, gt, 1) == blob_values(*net, "ip_t", 0));
    CHECK(node_named(m, "ip_ax0").op_type() == "MatMul");
    if (dynamic) {
      // Reshapes that absorb the batch dimension leave it open.
      std::map<std::string, std::vector<std::string>> want = expected_outputs(m, *net, true);
      want["f0"] = {"?", "4", "4"};
      want["r3"] = {"?", "8"};
      want["y0"] = {"3"};
      validate(m, want);
    } else {
      validate(m, expected_outputs(m, *net, false));
    }
  }
}

TEST_CASE("ONNX export: pooling reproduces Caffe's output sizes, AVE divisors and Dropout is dropped",
          "[onnx][apps]") {
  auto net = make_net(R"(
    name: "pool"
    layer { name: "in" type: "Input" top: "x" top: "x7" top: "x5"
            input_param { shape { dim: 2 dim: 3 dim: 7 dim: 6 } shape { dim: 2 dim: 3 dim: 7 dim: 7 }
                          shape { dim: 2 dim: 3 dim: 5 dim: 6 } } }
    # Last window of W runs past the padded input: explicit Pad + count_include_pad 0.
    layer { name: "ave_pad" type: "Pooling" bottom: "x" top: "ap" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
    # Unpadded, last window clipped at the border.
    layer { name: "ave_clip" type: "Pooling" bottom: "x" top: "ac" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
    # Every window inside the padded input: AveragePool counting the padding, ceil_mode 1.
    layer { name: "ave_in" type: "Pooling" bottom: "x7" top: "ai" pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
    layer { name: "ave_floor" type: "Pooling" bottom: "x" top: "af"
            pooling_param { pool: AVE kernel_size: 2 stride: 2 round_mode: FLOOR } }
    layer { name: "gap" type: "Pooling" bottom: "x" top: "gap" pooling_param { pool: AVE global_pooling: true } }
    layer { name: "gmp" type: "Pooling" bottom: "x" top: "gmp" pooling_param { pool: MAX global_pooling: true } }
    layer { name: "max_ceil" type: "Pooling" bottom: "x" top: "mc" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
    # H loses its last window to Caffe's padding rule (floor size), W rounds up (ceil size).
    layer { name: "max_mixed" type: "Pooling" bottom: "x5" top: "mm"
            pooling_param { pool: MAX kernel_h: 2 kernel_w: 3 stride: 2 pad_h: 1 pad_w: 1 } }
    layer { name: "ave_mixed" type: "Pooling" bottom: "x5" top: "am"
            pooling_param { pool: AVE kernel_h: 2 kernel_w: 3 stride: 2 pad_h: 1 pad_w: 1 } }
    layer { name: "drop1" type: "Dropout" bottom: "ai" top: "ai" dropout_param { dropout_ratio: 0.3 } }
    layer { name: "relu" type: "ReLU" bottom: "ai" top: "ai" }
    layer { name: "drop2" type: "Dropout" bottom: "gap" top: "gd" }
    layer { name: "ip" type: "InnerProduct" bottom: "gd" top: "ip" inner_product_param { num_output: 4 } }
  )");
  randomize_params(*net);
  CHECK(net->blob("ap").shape() == std::vector<int>{2, 3, 4, 4});
  CHECK(net->blob("ac").shape() == std::vector<int>{2, 3, 4, 3});
  CHECK(net->blob("ai").shape() == std::vector<int>{2, 3, 4, 4});
  CHECK(net->blob("af").shape() == std::vector<int>{2, 3, 3, 3});
  CHECK(net->blob("mm").shape() == std::vector<int>{2, 3, 3, 4});
  const onnx::ModelProto m = dsg::to_onnx(*net);
  CHECK(nodes(m, "Dropout").empty());
  CHECK(names(m.graph().input()) == std::vector<std::string>{"x", "x7", "x5"});

  const onnx::NodeProto& ap = node_named(m, "ave_pad");
  CHECK(ap.op_type() == "AveragePool");
  CHECK(attr_i(ap, "count_include_pad") == 0);
  CHECK(attr_i(ap, "ceil_mode") == 0);
  CHECK(attr_ints(ap, "pads") == std::vector<int64_t>{0, 0, 0, 1});
  const onnx::NodeProto* pad = producer(m, ap.input(0));
  REQUIRE(pad);
  CHECK(pad->op_type() == "Pad");
  CHECK(ints(*initializer(m, pad->input(1))) == std::vector<int64_t>{0, 0, 1, 1, 0, 0, 1, 1});

  const onnx::NodeProto& ac = node_named(m, "ave_clip");
  CHECK(ac.input(0) == "x");
  CHECK(attr_i(ac, "count_include_pad") == 0);
  CHECK(attr_ints(ac, "pads") == std::vector<int64_t>{0, 0, 1, 0});

  const onnx::NodeProto& ai = node_named(m, "ave_in");
  CHECK(attr_i(ai, "count_include_pad") == 1);
  CHECK(attr_i(ai, "ceil_mode") == 1);
  CHECK(attr_ints(ai, "pads") == std::vector<int64_t>{1, 1, 1, 1});
  CHECK(attr_i(node_named(m, "ave_floor"), "ceil_mode") == 0);
  CHECK(node_named(m, "gap").op_type() == "GlobalAveragePool");
  CHECK(node_named(m, "gmp").op_type() == "GlobalMaxPool");

  const onnx::NodeProto& mc = node_named(m, "max_ceil");
  CHECK(mc.op_type() == "MaxPool");
  CHECK(attr_i(mc, "ceil_mode") == 1);
  CHECK(attr_ints(mc, "pads") == std::vector<int64_t>{1, 1, 1, 1});
  const onnx::NodeProto& mm = node_named(m, "max_mixed");
  CHECK(attr_i(mm, "ceil_mode") == 0);
  CHECK(attr_ints(mm, "pads") == std::vector<int64_t>{1, 1, 1, 2});
  CHECK(producer(m, node_named(m, "ave_mixed").input(0))->op_type() == "Pad");

  // Dropout in place and not: the consumers read the dropped layer's bottom value.
  CHECK(node_named(m, "relu").input(0) == ai.output(0));
  CHECK(node_named(m, "ip/flatten").input(0) == node_named(m, "gap").output(0));
  validate(m, expected_outputs(m, *net, true));
}

TEST_CASE("ONNX export: labels, Accuracy and loss are dropped; SoftmaxWithLoss becomes prob", "[onnx][apps]") {
  const char* text = R"(
    name: "fan"
    layer { name: "in" type: "Input" top: "x" top: "label" input_param { shape { dim: 4 dim: 6 } shape { dim: 4 } } }
    layer { name: "ip_a" type: "InnerProduct" bottom: "x" top: "a" inner_product_param { num_output: 3 } }
    layer { name: "ip_b" type: "InnerProduct" bottom: "x" top: "b" inner_product_param { num_output: 3 } }
    layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }
    layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "s" }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "s" bottom: "label" top: "loss" }
    layer { name: "acc" type: "Accuracy" bottom: "s" bottom: "label" top: "accuracy" include { phase: TEST } }
  )";
  auto net = make_net(text);
  randomize_params(*net);
  const onnx::ModelProto m = dsg::to_onnx(*net);
  CHECK(names(m.graph().input()) == std::vector<std::string>{"x"});
  CHECK(names(m.graph().output()) == std::vector<std::string>{"prob"});
  CHECK(op_types(m) == std::vector<std::string>{"Gemm", "Gemm", "Relu", "Sum", "Softmax"});
  CHECK(node_named(m, "loss").input(0) == "s");
  CHECK(attr_i(node_named(m, "loss"), "axis") == 1);
  validate(m, expected_outputs(m, *net, true, {{"prob", "s"}}));

  // The TRAIN net is refused.
  auto train = make_net(text, dsg::TRAIN);
  CHECK_THROWS_WITH(dsg::to_onnx(*train), Catch::Contains("TEST"));

  // A Data layer: its label top is dropped and the input records the transform.
  TempDir dir;
  const std::string images = dsg::test::write_idx_pair(dir, "t", 10, 6, 6);
  auto data_net = make_net(R"(
    name: "withdata"
    layer { name: "mnist" type: "Data" top: "data" top: "label"
            transform_param { scale: 0.00390625 }
            data_param { source: ")" + images + R"(" backend: IDX batch_size: 4 } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 10 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" top: "probs" }
    layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" }
  )");
  const onnx::ModelProto md = dsg::to_onnx(*data_net);
  REQUIRE(names(md.graph().input()) == std::vector<std::string>{"data"});
  CHECK(shape_of(md.graph().input(0)) == std::vector<std::string>{"N", "1", "6", "6"});
  CHECK_THAT(md.graph().input(0).doc_string(), Catch::Contains("0.00390625"));
  CHECK(names(md.graph().output()) == std::vector<std::string>{"probs"});  // the loss layer's second top
  validate(md, expected_outputs(md, *data_net, true));

  // normalize_inputs: the transform as Sub(mean) and Mul(scale) nodes on the raw data input.
  auto mean_net = make_net(R"(
    name: "withmean"
    layer { name: "mnist" type: "Data" top: "data" top: "label"
            transform_param { scale: 0.5 mean_value: 100 }
            data_param { source: ")" + images + R"(" backend: IDX batch_size: 4 } }
    layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 10 } }
  )");
  dsg::OnnxExportOptions normalize;
  normalize.normalize_inputs = true;
  const onnx::ModelProto mn = dsg::to_onnx(*mean_net, normalize);
  REQUIRE(names(mn.graph().input()) == std::vector<std::string>{"data"});
  CHECK_THAT(mn.graph().input(0).doc_string(), Catch::Contains("raw pixel values"));
  CHECK(op_types(mn) == std::vector<std::string>{"Sub", "Mul", "Flatten", "Gemm"});
  const onnx::NodeProto& sub = node_named(mn, "data/subtract_mean");
  CHECK(sub.input(0) == "data");
  CHECK(init_values(mn, sub, 1) == std::vector<float>{100.0f});
  const onnx::NodeProto& mul = node_named(mn, "data/scale");
  CHECK(mul.input(0) == sub.output(0));
  CHECK(init_values(mn, mul, 1) == std::vector<float>{0.5f});
  validate(mn, expected_outputs(mn, *mean_net, true));
  // Without the option the graph has no such nodes.
  CHECK(op_types(dsg::to_onnx(*mean_net)) == std::vector<std::string>{"Flatten", "Gemm"});
}

TEST_CASE("ONNX export: shared weights become Gather(codebook, indices) reproducing the weights", "[onnx][apps]") {
  auto net = make_net(kLeNet);
  randomize_params(*net);
  const std::vector<float> codebook{-0.75f, -0.125f, 0.0f, 0.3f, 0.6875f};
  dsg::OnnxExportOptions options;
  for (auto key : {std::make_pair(std::string("conv1"), 0), std::make_pair(std::string("ip1"), 0),
                   std::make_pair(std::string("ip2"), 1)}) {
    dsg::Tensor& w = *net->layer_by_name(key.first)->blobs()[size_t(key.second)];
    dsg::OnnxSharedWeights s;
    s.codebook = codebook;
    for (int64_t k = 0; k < w.count(); ++k) {
      const int32_t c = int32_t((k * 7 + 3) % int64_t(codebook.size()));
      s.codes.push_back(c);
      w.mutable_data()[k] = codebook[size_t(c)];
    }
    options.shared[key] = s;
  }
  const onnx::ModelProto m = dsg::to_onnx(*net, options);
  CHECK(nodes(m, "Gather").size() == 3);
  auto check_gather = [&](const std::string& value, const std::string& layer, int index) {
    INFO(layer << " parameter " << index);
    const onnx::NodeProto* g = producer(m, value);
    REQUIRE(g);
    REQUIRE(g->op_type() == "Gather");
    CHECK(attr_i(*g, "axis") == 0);
    const onnx::TensorProto* cb = initializer(m, g->input(0));
    // Codes of <= 8 bits: a UINT8 initializer widened by Cast(to = INT32) (Gather takes int32 / int64).
    const onnx::NodeProto* cast = producer(m, g->input(1));
    REQUIRE(cast);
    CHECK(cast->op_type() == "Cast");
    CHECK(attr_i(*cast, "to") == onnx::TensorProto::INT32);
    const onnx::TensorProto* idx = initializer(m, cast->input(0));
    REQUIRE(cb);
    REQUIRE(idx);
    CHECK(floats(*cb) == codebook);
    CHECK(idx->data_type() == onnx::TensorProto::UINT8);
    const dsg::Tensor& w = *net->layer_by_name(layer)->blobs()[size_t(index)];
    CHECK(dims(*idx) == std::vector<int64_t>(w.shape().begin(), w.shape().end()));  // Gather yields the blob shape
    const std::vector<int64_t> codes = ints(*idx);
    REQUIRE(int64_t(codes.size()) == w.count());
    const std::vector<float> book = floats(*cb);
    std::vector<float> decoded;
    for (int64_t c : codes) decoded.push_back(book[size_t(c)]);
    CHECK(decoded == blob_values(*net, layer, index));
    CHECK(codes == std::vector<int64_t>(options.shared.at({layer, index}).codes.begin(),
                                        options.shared.at({layer, index}).codes.end()));
  };
  check_gather(node_named(m, "conv1").input(1), "conv1", 0);
  check_gather(node_named(m, "ip1").input(1), "ip1", 0);
  check_gather(node_named(m, "ip2").input(2), "ip2", 1);
  // More than 256 codebook entries: INT32 indices straight into the Gather.
  {
    auto wide_net = make_net(kLeNet);
    randomize_params(*wide_net);
    dsg::Tensor& w = *wide_net->layer_by_name("ip1")->blobs()[0];
    dsg::OnnxSharedWeights s;
    for (int k = 0; k < 300; ++k) s.codebook.push_back(float(k) / 300.0f);
    for (int64_t k = 0; k < w.count(); ++k) {
      s.codes.push_back(int32_t(k % 300));
      w.mutable_data()[k] = s.codebook[size_t(k % 300)];
    }
    dsg::OnnxExportOptions wide;
    wide.shared[{"ip1", 0}] = s;
    const onnx::ModelProto mw = dsg::to_onnx(*wide_net, wide);
    const onnx::NodeProto* g = producer(mw, node_named(mw, "ip1").input(1));
    REQUIRE(g);
    REQUIRE(g->op_type() == "Gather");
    const onnx::TensorProto* idx = initializer(mw, g->input(1));
    REQUIRE(idx);
    CHECK(idx->data_type() == onnx::TensorProto::INT32);
    CHECK(ints(*idx) == std::vector<int64_t>(s.codes.begin(), s.codes.end()));
  }
  CHECK(init_values(m, node_named(m, "conv1"), 2) == blob_values(*net, "conv1", 1));  // dense bias
  CHECK(init_values(m, node_named(m, "ip2"), 1) == blob_values(*net, "ip2", 0));
  validate(m, expected_outputs(m, *net, true));

  // Entries that do not describe the weights are refused, naming the layer.
  auto bad = options;
  bad.shared.at({"conv1", 0}).codes.pop_back();
  CHECK_THROWS_WITH(dsg::to_onnx(*net, bad), Catch::Contains("conv1") && Catch::Contains("codes"));
  bad = options;
  bad.shared.at({"ip1", 0}).codebook[2] = 0.5f;
  CHECK_THROWS_WITH(dsg::to_onnx(*net, bad), Catch::Contains("ip1") && Catch::Contains("reproduce"));
  bad = options;
  bad.shared.at({"ip1", 0}).codes[3] = 5;
  CHECK_THROWS_WITH(dsg::to_onnx(*net, bad), Catch::Contains("ip1") && Catch::Contains("outside the codebook"));
  bad = options;
  bad.shared[{"nosuch", 0}] = options.shared.at({"ip1", 0});
  CHECK_THROWS_WITH(dsg::to_onnx(*net, bad), Catch::Contains("nosuch"));
  bad = options;
  bad.shared[{"ip1", 2}] = options.shared.at({"ip1", 0});
  CHECK_THROWS_WITH(dsg::to_onnx(*net, bad), Catch::Contains("ip1") && Catch::Contains("parameter 2"));
}

TEST_CASE("ONNX export: layers without an ONNX equivalent throw dsg::Error naming the layer", "[onnx][apps]") {
  auto opaque = make_net(R"(
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "mystery" type: "OnnxTestOpaque" bottom: "x" top: "y" }
  )");
  CHECK_THROWS_AS(dsg::to_onnx(*opaque), dsg::Error);
  CHECK_THROWS_WITH(dsg::to_onnx(*opaque), Catch::Contains("'mystery'") && Catch::Contains("OnnxTestOpaque"));

  auto batch_stats = make_net(R"(
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "bn_live" type: "BatchNorm" bottom: "x" top: "y" batch_norm_param { use_global_stats: false } }
  )");
  CHECK_THROWS_WITH(dsg::to_onnx(*batch_stats), Catch::Contains("'bn_live'") && Catch::Contains("use_global_stats"));

  auto mask = make_net(R"(
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
    layer { name: "pool_mask" type: "Pooling" bottom: "x" top: "y" top: "argmax" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
  )");
  CHECK_THROWS_WITH(dsg::to_onnx(*mask), Catch::Contains("'pool_mask'"));

  // A kept layer reading the output of a dropped one.
  auto uses_loss = make_net(R"(
    layer { name: "in" type: "Input" top: "x" top: "label" input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" top: "loss" }
    layer { name: "twice" type: "ReLU" bottom: "loss" top: "l2" }
  )");
  CHECK_THROWS_WITH(dsg::to_onnx(*uses_loss), Catch::Contains("'twice'") && Catch::Contains("'loss'"));
}

#else  // !DSG_WITH_ONNX

TEST_CASE("ONNX export is not built (no ONNX library)", "[onnx][apps]") {
  WARN("DSG_WITH_ONNX is not defined: install libonnx-dev and re-run cmake to build and test the ONNX export");
  REQUIRE(true);
}

#endif
