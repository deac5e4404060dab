// ONNX export of a TEST-phase Net; see onnx_export.hpp for the mapping.
#include "apps/onnx_export.hpp"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>

#include "runtime/batch_source.hpp"
#include "runtime/error.hpp"

namespace dsg {
namespace {

using Dims = std::vector<int64_t>;

Dims dims_of(const std::vector<int>& shape) { return Dims(shape.begin(), shape.end()); }

std::string dims_string(const Dims& d) {
  std::string s = "(";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + ")";
}

int64_t product(const Dims& d) {
  int64_t p = 1;
  for (int64_t v : d) p *= v;
  return p;
}

std::string describe(const Layer& l) { return "layer '" + l.name() + "' (" + l.type() + ")"; }

[[noreturn]] void fail(const Layer& l, const std::string& why) {
  throw Error(describe(l) + ": cannot export to ONNX: " + why);
}

// Little-endian bytes, as ONNX's raw_data requires, whatever the host order.
void put_le32(std::string& s, uint32_t v) {
  for (int k = 0; k < 4; ++k) s.push_back(char((v >> (8 * k)) & 0xff));
}
void put_le64(std::string& s, uint64_t v) {
  for (int k = 0; k < 8; ++k) s.push_back(char((v >> (8 * k)) & 0xff));
}

// How the exporter treats a layer (decided from the layer's description and the op mapping).
enum class Kind {
  Input,       // data layers (Layer::is_data_layer: Input, Data): their tops may become graph inputs
  Drop,        // metrics (Layer::label_scoring: Accuracy) and losses without an op mapping: no node;
               // consuming their tops is an error
  LossOutput,  // a loss with an op mapping (SoftmaxWithLoss): its output without the loss (a Softmax)
  Alias,       // the op mapping says no node (Split, Dropout): the tops are the bottom's value
  FoldedBN,    // BatchNorm folded into the following Scale
  Normal,
};

int canonical(int axis, int num_axes, const Layer& l, const char* what) {
  if (axis < -num_axes || axis >= num_axes) fail(l, std::string(what) + " " + std::to_string(axis) + " out of range");
  return axis < 0 ? axis + num_axes : axis;
}

// One version of a Caffe blob.
struct Ref {
  enum Type { Value, Input, Dropped } type = Value;
  std::string value;  // Value: the ONNX value name
  int input = -1;     // Input: index into Exporter::inputs_
  int layer = -1;     // Dropped: the producing layer
};

class Exporter {
 public:
  Exporter(const Net& net, const OnnxExportOptions& options) : net_(net), opt_(options), layers_(net.layers()) {}

  onnx::ModelProto run() {
    if (net_.phase() != TEST)
      throw Error("ONNX export needs the TEST-phase net of '" + net_.name() + "' (got the TRAIN net)");
    const auto range = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map().at(onnx::ONNX_DOMAIN);
    max_opset_ = range.second;
    if (opt_.opset < 11 || opt_.opset > max_opset_)
      throw Error("ONNX opset " + std::to_string(opt_.opset) + " is not supported; use 11 to " +
                  std::to_string(max_opset_));
    graph_ = model_.mutable_graph();
    classify();
    check_shared();
    decide_batch();
    for (size_t i = 0; i < layers_.size(); ++i) emit(int(i));
    finish();
    return std::move(model_);
  }

 private:
  // ---- the op mapping: which ONNX nodes a DSG layer type becomes ---------------------------------
  using Emit = void (Exporter::*)(int);
  struct OpMapping {
    Emit emit = nullptr;  // emits layer i's nodes (nullptr for an alias)
    bool alias = false;   // no node: the tops are the bottom's value (ONNX values may fan out)
  };
  static const std::map<std::string, OpMapping>& op_mappings() {
    static const std::map<std::string, OpMapping> m = {
        {"Convolution", {&Exporter::convolution}},
        {"InnerProduct", {&Exporter::inner_product}},
        {"Pooling", {&Exporter::pooling}},
        {"ReLU", {&Exporter::relu}},
        {"Sigmoid", {&Exporter::sigmoid}},
        {"TanH", {&Exporter::tan_h}},
        {"Softmax", {&Exporter::softmax}},
        {"SoftmaxWithLoss", {&Exporter::softmax_loss}},
        {"BatchNorm", {&Exporter::batch_norm_alone}},
        {"Scale", {&Exporter::scale_or_folded_bn}},
        {"Eltwise", {&Exporter::eltwise}},
        {"Concat", {&Exporter::concat}},
        {"Flatten", {&Exporter::flatten}},
        {"Reshape", {&Exporter::reshape}},
        {"Split", {nullptr, true}},
        {"Dropout", {nullptr, true}},
    };
    return m;
  }
  // The layer's op mapping, or nullptr when its type has none.
  static const OpMapping* op_mapping(const Layer& l) {
    auto it = op_mappings().find(l.type());
    return it == op_mappings().end() ? nullptr : &it->second;
  }
  static bool emitted_by(const Layer& l, Emit emit) {
    const OpMapping* op = op_mapping(l);
    return op && op->emit == emit;
  }

  // ---- planning ---------------------------------------------------------------------------------
  void classify() {
    const int n = int(layers_.size());
    kinds_.assign(size_t(n), Kind::Normal);
    for (int i = 0; i < n; ++i) {
      const Layer& l = *layers_[i];
      const OpMapping* op = op_mapping(l);
      Kind k = Kind::Normal;
      if (l.is_data_layer()) k = Kind::Input;
      else if (l.default_loss_weight(0) != 0.0f) k = op ? Kind::LossOutput : Kind::Drop;
      else if (l.label_scoring()) k = Kind::Drop;
      else if (op && op->alias) k = Kind::Alias;
      else if (emitted_by(l, &Exporter::batch_norm_alone) && can_fold(i)) k = Kind::FoldedBN;
      kinds_[i] = k;
      for (const auto& t : l.param().top()) reserved_.insert(t);
    }
    // The last exported writer of each blob gives its value the blob's name.
    for (int i = 0; i < n; ++i) {
      const LayerParameter& lp = layers_[i]->param();
      if (kinds_[i] == Kind::Normal)
        for (const auto& t : lp.top()) last_writer_[t] = i;
      else if (kinds_[i] == Kind::LossOutput && lp.top_size() > 1)
        last_writer_[lp.top(1)] = i;
    }
  }

  // A BatchNorm directly followed by a channel-wise Scale of its top becomes one BatchNormalization.
  bool can_fold(int i) const {
    if (i + 1 >= int(layers_.size())) return false;
    const Layer& bn = *layers_[i];
    const Layer& sc = *layers_[i + 1];
    if (!emitted_by(sc, &Exporter::scale_or_folded_bn) || sc.param().bottom_size() != 1 || bn.param().top_size() != 1 ||
        sc.param().bottom(0) != bn.param().top(0) || sc.blobs().empty())
      return false;
    const Tensor& x = net_.blob(bn.param().top(0));
    if (x.num_axes() < 2) return false;
    const auto& sp = sc.param().scale_param();
    const int axis = sp.axis() < 0 ? sp.axis() + x.num_axes() : sp.axis();
    const std::vector<int> c{x.shape(1)};
    return axis == 1 && sc.blobs()[0]->shape() == c && (sc.blobs().size() < 2 || sc.blobs()[1]->shape() == c);
  }

  void check_shared() const {
    for (const auto& kv : opt_.shared) {
      const std::string& name = kv.first.first;
      const int index = kv.first.second;
      const Layer* l = net_.layer_by_name(name);
      if (!l) throw Error("ONNX export: shared weights given for layer '" + name + "', which the TEST net lacks");
      if (index < 0 || index >= int(l->blobs().size()))
        throw Error(describe(*l) + ": shared weights given for parameter " + std::to_string(index) + ", but it has " +
                    std::to_string(l->blobs().size()) + " parameter blob(s)");
      const Tensor& t = *l->blobs()[size_t(index)];
      const OnnxSharedWeights& s = kv.second;
      const std::string what = describe(*l) + " parameter " + std::to_string(index) + ": shared weights ";
      if (int64_t(s.codes.size()) != t.count())
        throw Error(what + "have " + std::to_string(s.codes.size()) + " codes for " + std::to_string(t.count()) +
                    " values");
      if (s.codebook.empty()) throw Error(what + "have an empty codebook");
      const float* v = t.data();
      for (size_t k = 0; k < s.codes.size(); ++k) {
        const int32_t c = s.codes[k];
        if (c < 0 || size_t(c) >= s.codebook.size())
          throw Error(what + "code " + std::to_string(c) + " at " + std::to_string(k) + " is outside the codebook of " +
                      std::to_string(s.codebook.size()));
        if (!(s.codebook[size_t(c)] == v[k]))
          throw Error(what + strfmt("do not reproduce value %zu: codebook[%d] = %.9g, weight = %.9g", k, c,
                                    double(s.codebook[size_t(c)]), double(v[k])));
      }
    }
  }

  // Which Input / Data tops an exported layer consumes (through Split / Dropout), and whether they
  // share one axis-0 size that can become the symbolic batch "N".
  void decide_batch() {
    std::map<std::string, std::string> origin;  // blob -> the input blob it aliases
    std::set<std::string> used;
    auto use = [&](const std::string& b) {
      auto it = origin.find(b);
      if (it != origin.end()) used.insert(it->second);
    };
    for (size_t i = 0; i < layers_.size(); ++i) {
      const LayerParameter& lp = layers_[i]->param();
      switch (kinds_[i]) {
        case Kind::Input:
          for (const auto& t : lp.top()) origin[t] = t;
          continue;
        case Kind::Alias: {
          auto it = origin.find(lp.bottom(0));
          const std::string from = it == origin.end() ? "" : it->second;
          for (const auto& t : lp.top()) {
            if (from.empty()) origin.erase(t);
            else origin[t] = from;
          }
          continue;
        }
        case Kind::Drop: break;
        case Kind::LossOutput: use(lp.bottom(0)); break;
        case Kind::FoldedBN:
        case Kind::Normal:
          for (const auto& b : lp.bottom()) use(b);
          break;
      }
      for (const auto& t : lp.top()) origin.erase(t);
    }
    dynamic_ = opt_.dynamic_batch && !used.empty();
    batch_ = -1;
    for (const auto& name : used) {
      const Tensor& t = net_.blob(name);
      if (t.num_axes() < 1 || (batch_ >= 0 && t.shape(0) != batch_)) dynamic_ = false;
      else batch_ = t.shape(0);
    }
    if (!dynamic_) batch_ = -1;
  }

  // ---- names and graph building ----------------------------------------------------------------
  std::string fresh(const std::string& base) {
    std::string n = base;
    for (int k = 1; used_.count(n) || reserved_.count(n); ++k) n = base + "_" + std::to_string(k);
    used_.insert(n);
    return n;
  }

  // The ONNX value for top j of layer i: the blob's own name for its last version, else a fresh one.
  std::string top_value(int i, int j) {
    const std::string& blob = layers_[i]->param().top(j);
    auto it = last_writer_.find(blob);
    if (it != last_writer_.end() && it->second == i && !used_.count(blob)) {
      used_.insert(blob);
      return blob;
    }
    return fresh(blob + "/" + layers_[i]->name());
  }

  void define(const std::string& blob, const std::string& value) {
    Ref r;
    r.value = value;
    current_[blob] = r;
    value_shape_[value] = dims_of(net_.blob(blob).shape());
  }

  std::string resolve(int i, int j) {
    const Layer& l = *layers_[i];
    const std::string& blob = l.param().bottom(j);
    auto it = current_.find(blob);
    if (it == current_.end()) fail(l, "its bottom '" + blob + "' has no ONNX value");
    Ref& r = it->second;
    switch (r.type) {
      case Ref::Value: return r.value;
      case Ref::Input: inputs_[size_t(r.input)].used = true; return inputs_[size_t(r.input)].name;
      case Ref::Dropped: break;
    }
    fail(l, "its bottom '" + blob + "' comes from " + describe(*layers_[r.layer]) + ", which is not exported");
  }

  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in,
                        const std::vector<std::string>& out, const std::string& name) {
    onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    std::string nn = name;
    for (int k = 1; !node_names_.insert(nn).second; ++k) nn = name + "_" + std::to_string(k);
    n->set_name(nn);
    for (const auto& v : in) {
      n->add_input(v);
      consumed_.insert(v);
    }
    for (const auto& v : out) {
      n->add_output(v);
      produced_.push_back(v);
    }
    return n;
  }

  static void attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto* n, const std::string& name, const Dims& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void attr_f(onnx::NodeProto* n, const std::string& name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }

  onnx::TensorProto* initializer(const std::string& base, const Dims& dims, int type, std::string* name) {
    *name = fresh(base);
    onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(*name);
    t->set_data_type(type);
    for (int64_t d : dims) t->add_dims(d);
    return t;
  }

  std::string float_init(const std::string& base, const Dims& dims, const float* data) {
    std::string name;
    onnx::TensorProto* t = initializer(base, dims, onnx::TensorProto::FLOAT, &name);
    const int64_t n = product(dims);
    std::string* raw = t->mutable_raw_data();
    raw->reserve(size_t(n) * 4);
    for (int64_t k = 0; k < n; ++k) {
      uint32_t bits;
      std::memcpy(&bits, data + k, 4);
      put_le32(*raw, bits);
    }
    return name;
  }

  std::string float_init(const std::string& base, const Dims& dims, const std::vector<float>& data) {
    return float_init(base, dims, data.data());
  }

  std::string int64_init(const std::string& base, const Dims& values) {
    std::string name;
    onnx::TensorProto* t = initializer(base, {int64_t(values.size())}, onnx::TensorProto::INT64, &name);
    for (int64_t v : values) put_le64(*t->mutable_raw_data(), uint64_t(v));
    return name;
  }

  // Parameter blob p of layer i as a value of shape `dims` (default: the blob's own shape): a float
  // initializer, or Gather(codebook, indices) for shared weights.
  std::string param_value(int i, int p, const std::string& suffix, Dims dims = {}) {
    const Layer& l = *layers_[i];
    if (p >= int(l.blobs().size())) fail(l, "parameter blob " + std::to_string(p) + " is missing");
    const Tensor& t = *l.blobs()[size_t(p)];
    if (dims.empty()) dims = dims_of(t.shape());
    if (product(dims) != t.count()) fail(l, "parameter " + std::to_string(p) + " does not fit shape " + dims_string(dims));
    const std::string base = l.name() + "/" + suffix;
    auto it = opt_.shared.find({l.name(), p});
    if (it == opt_.shared.end()) return float_init(base, dims, t.data());
    const OnnxSharedWeights& s = it->second;
    const std::string codebook = float_init(base + "/codebook", {int64_t(s.codebook.size())}, s.codebook);
    std::string indices;
    onnx::TensorProto* ti = initializer(base + "/indices", dims, onnx::TensorProto::INT32, &indices);
    std::string* raw = ti->mutable_raw_data();
    raw->reserve(s.codes.size() * 4);
    for (int32_t c : s.codes) put_le32(*raw, uint32_t(c));
    const std::string out = fresh(base);
    attr(node("Gather", {codebook, indices}, {out}, l.name() + "/" + suffix + "/gather"), "axis", int64_t(0));
    return out;
  }

  // Reshape target for the top of layer i: the top's shape; under dynamic_batch axis 0 becomes 0
  // (copied from the bottom) or -1 (inferred) so that other batch sizes work. `axis0` is 'c' (top
  // axis 0 is the bottom's), 'i' (axis 0 absorbs the batch) or 'f' (fixed by the configuration).
  Dims reshape_target(int i, char axis0) const {
    Dims t = dims_of(net_.blob(layers_[i]->param().top(0)).shape());
    if (dynamic_ && !t.empty()) {
      if (axis0 == 'c') t[0] = 0;
      else if (axis0 == 'i') t[0] = -1;
    }
    for (size_t k = 1; k < t.size(); ++k)
      if (t[k] == 0) fail(*layers_[i], "a reshape to a zero-size dimension cannot be expressed");
    return t;
  }

  // ---- layers ------------------------------------------------------------------------------------
  void emit(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    switch (kinds_[i]) {
      case Kind::Input:
        for (const auto& t : lp.top()) {
          used_.insert(t);
          Ref r;
          r.type = Ref::Input;
          r.input = int(inputs_.size());
          current_[t] = r;
          PendingInput in;
          in.name = t;
          in.shape = dims_of(net_.blob(t).shape());
          in.doc = input_doc(l);
          inputs_.push_back(in);
        }
        return;
      case Kind::Drop:
        for (const auto& t : lp.top()) {
          Ref r;
          r.type = Ref::Dropped;
          r.layer = i;
          current_[t] = r;
        }
        return;
      case Kind::Alias: {
        if (lp.bottom_size() != 1) fail(l, "expected one bottom");
        auto it = current_.find(lp.bottom(0));
        if (it == current_.end()) fail(l, "its bottom '" + lp.bottom(0) + "' has no ONNX value");
        const Ref r = it->second;
        for (const auto& t : lp.top()) current_[t] = r;
        return;
      }
      case Kind::FoldedBN: return;  // emitted with the Scale that follows
      case Kind::LossOutput:
      case Kind::Normal: break;
    }
    const OpMapping* op = op_mapping(l);
    if (!op) fail(l, "no ONNX mapping for layer type '" + std::string(l.type()) + "'");
    (this->*op->emit)(i);
  }

  // A data layer fed from a dataset (a BatchSource) documents the transform its input has had.
  std::string input_doc(const Layer& l) const {
    if (!dynamic_cast<const BatchSource*>(&l)) return "";
    const auto& tp = l.param().transform_param();
    std::string doc = "DSG Data layer '" + l.name() + "': the graph takes transformed values (pixel";
    if (tp.mean_value_size() > 0) {
      doc += " - mean_value [";
      for (int k = 0; k < tp.mean_value_size(); ++k) doc += (k ? ", " : "") + strfmt("%g", double(tp.mean_value(k)));
      doc += "]";
    }
    doc += strfmt(") * %g", double(tp.scale()));
    if (tp.crop_size() > 0) doc += strfmt(", center crop %u", tp.crop_size());
    return doc;
  }

  void relu(int i) {
    const Layer& l = *layers_[i];
    const float slope = l.param().relu_param().negative_slope();
    const std::string x = resolve(i, 0), y = top_value(i, 0);
    if (slope == 0.0f) {
      node("Relu", {x}, {y}, l.name());
    } else {
      attr_f(node("LeakyRelu", {x}, {y}, l.name()), "alpha", slope);
    }
    define(l.param().top(0), y);
  }

  void unary(int i, const char* op) {
    const Layer& l = *layers_[i];
    const std::string x = resolve(i, 0), y = top_value(i, 0);
    node(op, {x}, {y}, l.name());
    define(l.param().top(0), y);
  }
  void sigmoid(int i) { unary(i, "Sigmoid"); }
  void tan_h(int i) { unary(i, "Tanh"); }

  void softmax(int i) {
    const LayerParameter& lp = layers_[i]->param();
    const std::string x = resolve(i, 0), y = top_value(i, 0);
    softmax_node(i, x, y, lp.softmax_param().axis());
    define(lp.top(0), y);
  }

  void concat(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    const Tensor& x = net_.blob(lp.bottom(0));
    const auto& cp = lp.concat_param();
    const int axis = canonical(cp.has_concat_dim() ? int(cp.concat_dim()) : cp.axis(), x.num_axes(), l, "axis");
    std::vector<std::string> in;
    for (int b = 0; b < lp.bottom_size(); ++b) in.push_back(resolve(i, b));
    const std::string y = top_value(i, 0);
    attr(node("Concat", in, {y}, l.name()), "axis", int64_t(axis));
    define(lp.top(0), y);
  }

  void softmax_node(int i, const std::string& x, const std::string& y, int axis_param) {
    const Layer& l = *layers_[i];
    const Tensor& t = net_.blob(l.param().bottom(0));
    const int axis = canonical(axis_param, t.num_axes(), l, "axis");
    // Before opset 13 Softmax normalises over all axes from `axis` on, equal to Caffe's only when
    // the trailing axes are all 1.
    if (opt_.opset < 13 && t.count(axis + 1) != 1)
      fail(l, "a softmax over axis " + std::to_string(axis) + " of " + t.shape_string() + " needs opset 13 or later");
    attr(node("Softmax", {x}, {y}, l.name()), "axis", int64_t(axis));
  }

  void softmax_loss(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    const std::string x = resolve(i, 0);
    const std::string y = lp.top_size() > 1 ? top_value(i, 1) : fresh("prob");
    softmax_node(i, x, y, lp.softmax_param().axis());
    value_shape_[y] = dims_of(net_.blob(lp.bottom(0)).shape());
    if (lp.top_size() > 1) define(lp.top(1), y);
    Ref r;
    r.type = Ref::Dropped;
    r.layer = i;
    current_[lp.top(0)] = r;
  }

  void convolution(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    const ConvolutionParameter& p = lp.convolution_param();
    auto pick = [&](const char* what, const google::protobuf::RepeatedField<uint32_t>& v, int64_t def, int64_t& h,
                    int64_t& w) {
      if (v.size() == 0) h = w = def;
      else if (v.size() == 1) h = w = v.Get(0);
      else if (v.size() == 2) h = v.Get(0), w = v.Get(1);
      else fail(l, std::string(what) + " must have 1 or 2 values");
    };
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    if (p.has_kernel_h() || p.has_kernel_w()) kh = p.kernel_h(), kw = p.kernel_w();
    else pick("kernel_size", p.kernel_size(), 0, kh, kw);
    if (p.has_stride_h() || p.has_stride_w()) sh = p.stride_h(), sw = p.stride_w();
    else pick("stride", p.stride(), 1, sh, sw);
    if (p.has_pad_h() || p.has_pad_w()) ph = p.pad_h(), pw = p.pad_w();
    else pick("pad", p.pad(), 0, ph, pw);
    pick("dilation", p.dilation(), 1, dh, dw);
    if (lp.bottom_size() != lp.top_size()) fail(l, "needs as many tops as bottoms");
    const std::string w = param_value(i, 0, "weight");
    const std::string b = p.bias_term() ? param_value(i, 1, "bias") : "";
    for (int k = 0; k < lp.bottom_size(); ++k) {
      std::vector<std::string> in{resolve(i, k), w};
      if (!b.empty()) in.push_back(b);
      const std::string y = top_value(i, k);
      onnx::NodeProto* n = node("Conv", in, {y}, l.name());
      attr(n, "kernel_shape", Dims{kh, kw});
      attr(n, "strides", Dims{sh, sw});
      attr(n, "pads", Dims{ph, pw, ph, pw});
      attr(n, "dilations", Dims{dh, dw});
      attr(n, "group", int64_t(p.group()));
      define(lp.top(k), y);
    }
  }

  void inner_product(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    const InnerProductParameter& p = lp.inner_product_param();
    const Tensor& xt = net_.blob(lp.bottom(0));
    const int axis = canonical(p.axis(), xt.num_axes(), l, "axis");
    std::string x = resolve(i, 0);
    const std::string w = param_value(i, 0, "weight");
    const std::string b = p.bias_term() ? param_value(i, 1, "bias") : "";
    const std::string y = top_value(i, 0);
    if (axis == 1) {
      if (xt.num_axes() > 2) {
        const std::string f = fresh(l.name() + "/flatten");
        attr(node("Flatten", {x}, {f}, l.name() + "/flatten"), "axis", int64_t(1));
        x = f;
      }
      std::vector<std::string> in{x, w};
      if (!b.empty()) in.push_back(b);
      attr(node("Gemm", in, {y}, l.name()), "transB", int64_t(p.transpose() ? 0 : 1));
    } else {
      // Y[shape[0..axis), N] = X viewed as [shape[0..axis), K] times W^T (+ b).
      Dims target(size_t(axis), 0);
      target.push_back(-1);
      const std::string shape = int64_init(l.name() + "/shape", target);
      const std::string r = fresh(l.name() + "/reshaped");
      node("Reshape", {x, shape}, {r}, l.name() + "/reshape");
      std::string wt = w;
      if (!p.transpose()) {
        wt = fresh(l.name() + "/weight_t");
        attr(node("Transpose", {w}, {wt}, l.name() + "/transpose"), "perm", Dims{1, 0});
      }
      if (b.empty()) {
        node("MatMul", {r, wt}, {y}, l.name());
      } else {
        const std::string m = fresh(l.name() + "/matmul");
        node("MatMul", {r, wt}, {m}, l.name());
        node("Add", {m, b}, {y}, l.name() + "/bias");
      }
    }
    define(lp.top(0), y);
  }

  void pooling(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    const PoolingParameter& p = lp.pooling_param();
    if (lp.top_size() > 1) fail(l, "the MAX pooling mask (second top) has no ONNX equivalent");
    if (p.pool() != PoolingParameter::MAX && p.pool() != PoolingParameter::AVE)
      fail(l, "only MAX and AVE pooling can be exported");
    const bool max = p.pool() == PoolingParameter::MAX;
    const std::string x = resolve(i, 0);
    const std::string y = top_value(i, 0);
    if (p.global_pooling()) {
      node(max ? "GlobalMaxPool" : "GlobalAveragePool", {x}, {y}, l.name());
      return define(lp.top(0), y);
    }
    int64_t k[2], pad[2], s[2];
    if (p.has_kernel_size()) k[0] = k[1] = p.kernel_size();
    else k[0] = p.kernel_h(), k[1] = p.kernel_w();
    if (p.has_pad_h() || p.has_pad_w()) pad[0] = p.pad_h(), pad[1] = p.pad_w();
    else pad[0] = pad[1] = p.pad();
    if (p.has_stride_h() || p.has_stride_w()) s[0] = p.stride_h(), s[1] = p.stride_w();
    else s[0] = s[1] = p.stride();
    const Tensor& in = net_.blob(lp.bottom(0));
    const Tensor& out = net_.blob(lp.top(0));
    if (in.num_axes() != 4 || out.num_axes() != 4) fail(l, "expects 4-axis NCHW blobs");
    // Per spatial axis: Caffe's output size, and those of ONNX's floor and ceil formulas.
    bool ceil_ok = true, floor_ok = true, overflow = false;
    int64_t need[2];
    for (int d = 0; d < 2; ++d) {
      const int64_t size = in.shape(2 + d), q = size + 2 * pad[d] - k[d];
      need[d] = out.shape(2 + d);
      if (q < 0 || s[d] <= 0) fail(l, "invalid pooling geometry");
      ceil_ok = ceil_ok && need[d] == (q + s[d] - 1) / s[d] + 1;
      floor_ok = floor_ok && need[d] == q / s[d] + 1;
      // Whether the last window reaches past the padded input (Caffe clips it there).
      overflow = overflow || (need[d] - 1) * s[d] + k[d] > size + 2 * pad[d];
    }
    const bool caffe_ceil = p.round_mode() == PoolingParameter::CEIL;
    if (!max && overflow) {
      // Caffe divides by the window clipped to the padded input: pad explicitly with zeros, then
      // average over the cells inside that tensor (count_include_pad = 0) with end pads for the
      // clipped windows.
      std::string src = x;
      if (pad[0] > 0 || pad[1] > 0) {
        const std::string pads = int64_init(l.name() + "/pads", Dims{0, 0, pad[0], pad[1], 0, 0, pad[0], pad[1]});
        src = fresh(l.name() + "/padded");
        node("Pad", {x, pads}, {src}, l.name() + "/pad");
      }
      Dims end(2);
      for (int d = 0; d < 2; ++d)
        end[d] = std::max<int64_t>(0, (need[d] - 1) * s[d] + k[d] - (in.shape(2 + d) + 2 * pad[d]));
      onnx::NodeProto* n = node("AveragePool", {src}, {y}, l.name());
      attr(n, "kernel_shape", Dims{k[0], k[1]});
      attr(n, "strides", Dims{s[0], s[1]});
      attr(n, "pads", Dims{0, 0, end[0], end[1]});
      attr(n, "count_include_pad", int64_t(0));
      attr(n, "ceil_mode", int64_t(0));
      return define(lp.top(0), y);
    }
    Dims pads{pad[0], pad[1], pad[0], pad[1]};
    int64_t ceil_mode;
    if (ceil_ok && (caffe_ceil || !floor_ok)) {
      ceil_mode = 1;
    } else if (floor_ok) {
      ceil_mode = 0;
    } else {
      // One axis rounds up, the other lost its last window to Caffe's padding rule: floor
      // rounding with end pads that make room for exactly Caffe's windows (MAX ignores padding).
      ceil_mode = 0;
      for (int d = 0; d < 2; ++d)
        if (need[d] != (in.shape(2 + d) + 2 * pad[d] - k[d]) / s[d] + 1)
          pads[2 + d] = (need[d] - 1) * s[d] + k[d] - in.shape(2 + d) - pad[d];
    }
    onnx::NodeProto* n = node(max ? "MaxPool" : "AveragePool", {x}, {y}, l.name());
    attr(n, "kernel_shape", Dims{k[0], k[1]});
    attr(n, "strides", Dims{s[0], s[1]});
    attr(n, "pads", pads);
    attr(n, "ceil_mode", ceil_mode);
    if (!max) attr(n, "count_include_pad", int64_t(1));
    define(lp.top(0), y);
  }

  void batch_norm_alone(int i) { batch_norm(i, -1); }

  // A Scale after a BatchNorm that folds into it emits both; otherwise a Mul (+ Add).
  void scale_or_folded_bn(int i) {
    if (i > 0 && kinds_[i - 1] == Kind::FoldedBN) return batch_norm(i - 1, i);
    scale(i);
  }

  // BatchNorm layer bn, folded with Scale layer sc when sc >= 0.
  void batch_norm(int bn, int sc) {
    const Layer& l = *layers_[bn];
    const auto& bp = l.param().batch_norm_param();
    if (bp.has_use_global_stats() && !bp.use_global_stats())
      fail(l, "use_global_stats: false normalises with batch statistics at test time");
    if (l.blobs().size() != 3) fail(l, "expected 3 statistics blobs");
    const int64_t c = l.blobs()[0]->count();
    const float* run_mean = l.blobs()[0]->data();
    const float* run_var = l.blobs()[1]->data();
    const float factor = l.blobs()[2]->data()[0];
    // Exactly the layer's TEST-phase arithmetic.
    const float s = factor == 0.0f ? 0.0f : 1.0f / factor;
    std::vector<float> mean(static_cast<size_t>(c)), var(static_cast<size_t>(c));
    for (int64_t k = 0; k < c; ++k) {
      mean[size_t(k)] = run_mean[k] * s;
      var[size_t(k)] = run_var[k] * s;
    }
    const std::string x = resolve(bn, 0);
    std::string scale, bias;
    if (sc >= 0) {
      scale = param_value(sc, 0, "scale", {c});
      if (layers_[sc]->blobs().size() > 1) bias = param_value(sc, 1, "bias", {c});
    } else {
      scale = float_init(l.name() + "/scale", {c}, std::vector<float>(size_t(c), 1.0f));
    }
    if (bias.empty()) bias = float_init(l.name() + "/bias", {c}, std::vector<float>(size_t(c), 0.0f));
    const std::string m = float_init(l.name() + "/mean", {c}, mean);
    const std::string v = float_init(l.name() + "/var", {c}, var);
    const int out_layer = sc >= 0 ? sc : bn;
    const std::string y = top_value(out_layer, 0);
    onnx::NodeProto* n = node("BatchNormalization", {x, scale, bias, m, v}, {y}, l.name());
    attr_f(n, "epsilon", bp.eps());
    define(layers_[out_layer]->param().top(0), y);
  }

  void scale(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    if (lp.bottom_size() != 1) fail(l, "the two-bottom form is not supported");
    const Tensor& xt = net_.blob(lp.bottom(0));
    const auto& sp = lp.scale_param();
    const int axis = sp.axis() < 0 ? sp.axis() + xt.num_axes() : sp.axis();
    Dims dims = dims_of(l.blobs()[0]->shape());
    const int trailing = xt.num_axes() - axis - int(dims.size());
    if (axis < 0 || trailing < 0) fail(l, "scale shape does not fit the bottom");
    dims.insert(dims.end(), size_t(trailing), 1);  // broadcast over the axes after the scaled ones
    const std::string x = resolve(i, 0);
    const std::string s = param_value(i, 0, "scale", dims);
    const std::string b = l.blobs().size() > 1 ? param_value(i, 1, "bias", dims) : "";
    const std::string y = top_value(i, 0);
    if (b.empty()) {
      node("Mul", {x, s}, {y}, l.name());
    } else {
      const std::string m = fresh(l.name() + "/scaled");
      node("Mul", {x, s}, {m}, l.name());
      node("Add", {m, b}, {y}, l.name() + "/bias");
    }
    define(lp.top(0), y);
  }

  void eltwise(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    const auto& ep = lp.eltwise_param();
    std::vector<std::string> in;
    for (int b = 0; b < lp.bottom_size(); ++b) in.push_back(resolve(i, b));
    if (ep.coeff_size() > 0 && ep.coeff_size() != lp.bottom_size()) fail(l, "needs one coeff per bottom");
    const std::string y = top_value(i, 0);
    switch (ep.operation()) {
      case EltwiseParameter::SUM:
        for (int b = 0; b < ep.coeff_size(); ++b) {
          if (ep.coeff(b) == 1.0f) continue;
          const float c = ep.coeff(b);
          const std::string cv = float_init(l.name() + "/coeff" + std::to_string(b), {}, &c);
          const std::string m = fresh(l.name() + "/scaled" + std::to_string(b));
          node("Mul", {in[size_t(b)], cv}, {m}, l.name() + "/coeff" + std::to_string(b));
          in[size_t(b)] = m;
        }
        node("Sum", in, {y}, l.name());
        break;
      case EltwiseParameter::PROD: {
        if (ep.coeff_size() > 0) fail(l, "coeff is only defined for SUM");
        std::string acc = in[0];
        for (size_t b = 1; b < in.size(); ++b) {
          const std::string out = b + 1 == in.size() ? y : fresh(l.name() + "/prod" + std::to_string(b));
          node("Mul", {acc, in[b]}, {out}, b + 1 == in.size() ? l.name() : l.name() + "/prod" + std::to_string(b));
          acc = out;
        }
        break;
      }
      case EltwiseParameter::MAX: node("Max", in, {y}, l.name()); break;
      default: fail(l, "unknown operation");
    }
    define(lp.top(0), y);
  }

  void flatten(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    const Tensor& xt = net_.blob(lp.bottom(0));
    const int n = xt.num_axes();
    const int start = canonical(lp.flatten_param().axis(), n, l, "axis");
    const int end = canonical(lp.flatten_param().end_axis(), n, l, "end_axis");
    const std::string x = resolve(i, 0), y = top_value(i, 0);
    if (start == 1 && end == n - 1) {
      attr(node("Flatten", {x}, {y}, l.name()), "axis", int64_t(1));
    } else {
      const std::string shape = int64_init(l.name() + "/shape", reshape_target(i, start > 0 ? 'c' : 'i'));
      node("Reshape", {x, shape}, {y}, l.name());
    }
    define(lp.top(0), y);
  }

  void reshape(int i) {
    const Layer& l = *layers_[i];
    const LayerParameter& lp = l.param();
    const auto& rp = lp.reshape_param();
    const int n = net_.blob(lp.bottom(0)).num_axes();
    const int start = rp.axis() >= 0 ? rp.axis() : n + rp.axis() + 1;
    const int end = rp.num_axes() == -1 ? n : start + rp.num_axes();
    char axis0 = 'f';
    if (start > 0) axis0 = 'c';
    else if (rp.shape().dim_size() == 0) axis0 = end == 0 ? 'c' : 'f';
    else if (rp.shape().dim(0) == 0) axis0 = 'c';
    else if (rp.shape().dim(0) == -1) axis0 = 'i';
    const std::string x = resolve(i, 0), y = top_value(i, 0);
    const std::string shape = int64_init(l.name() + "/shape", reshape_target(i, axis0));
    node("Reshape", {x, shape}, {y}, l.name());
    define(lp.top(0), y);
  }

  // ---- graph interface and verification ------------------------------------------------------
  static void set_shape(onnx::ValueInfoProto* vi, const Dims& dims, int64_t symbolic_batch) {
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = tt->mutable_shape();
    for (size_t k = 0; k < dims.size(); ++k) {
      auto* d = shape->add_dim();
      if (k == 0 && symbolic_batch >= 0) d->set_dim_param("N");
      else d->set_dim_value(dims[k]);
    }
  }

  void finish() {
    for (const auto& in : inputs_) {
      if (!in.used) continue;
      onnx::ValueInfoProto* vi = graph_->add_input();
      vi->set_name(in.name);
      if (!in.doc.empty()) vi->set_doc_string(in.doc);
      set_shape(vi, in.shape, dynamic_ ? batch_ : -1);
    }
    if (graph_->input_size() == 0)
      throw Error("ONNX export of net '" + net_.name() + "': no exported layer consumes an Input or Data blob");
    std::set<std::string> seen;
    for (const auto& v : produced_) {
      if (consumed_.count(v) || !seen.insert(v).second) continue;
      auto it = value_shape_.find(v);
      if (it == value_shape_.end()) throw Error("ONNX export: internal error: dangling value '" + v + "'");
      onnx::ValueInfoProto* vi = graph_->add_output();
      vi->set_name(v);
      if (dynamic_) vi->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
      else set_shape(vi, it->second, -1);
    }
    if (graph_->output_size() == 0)
      throw Error("ONNX export of net '" + net_.name() + "': nothing to export (every layer is dropped)");

    model_.set_ir_version(opt_.opset <= 11 ? 6 : opt_.opset <= 14 ? 7 : 8);
    model_.set_producer_name(opt_.producer);
    model_.set_doc_string("DSG net '" + net_.name() + "'");
    auto* op = model_.add_opset_import();
    op->set_domain("");
    op->set_version(opt_.opset);
    graph_->set_name(net_.name().empty() ? "dsg" : net_.name());

    const std::string what = "ONNX export of net '" + net_.name() + "'";
    // Shape inference first: it gives the outputs under dynamic_batch their shapes (the checker
    // wants every graph output to have one) and checks every blob's shape against the net's.
    try {
      onnx::shape_inference::InferShapes(model_, onnx::OpSchemaRegistry::Instance(),
                                         onnx::ShapeInferenceOptions(true, 1, false));
    } catch (const std::exception& e) {
      throw Error(what + ": internal error: ONNX shape inference fails: " + e.what());
    }
    verify_shapes(what);
    graph_->clear_value_info();
    try {
      onnx::checker::check_model(model_);
    } catch (const std::exception& e) {
      throw Error(what + ": internal error: the ONNX checker rejects the model: " + e.what());
    }
  }

  // Every blob's ONNX shape must be the net's ("N" standing for the batch size).
  void verify_shapes(const std::string& what) {
    std::map<std::string, onnx::TypeProto*> types;
    for (auto& vi : *graph_->mutable_value_info()) types[vi.name()] = vi.mutable_type();
    for (auto& vi : *graph_->mutable_output()) types[vi.name()] = vi.mutable_type();
    for (const auto& kv : value_shape_) {
      auto it = types.find(kv.first);
      const Dims& want = kv.second;
      if (it == types.end() || !it->second->tensor_type().has_shape())
        throw Error(what + ": internal error: ONNX shape inference gives no shape for '" + kv.first + "'");
      auto* shape = it->second->mutable_tensor_type()->mutable_shape();
      bool ok = shape->dim_size() == int(want.size());
      for (int k = 0; ok && k < shape->dim_size(); ++k) {
        auto* d = shape->mutable_dim(k);
        if (d->has_dim_value()) ok = d->dim_value() == want[size_t(k)];
        else if (d->has_dim_param() && d->dim_param() == "N") ok = dynamic_ && want[size_t(k)] == batch_;
        else d->Clear();  // unknown (or a generated symbol): leave the dimension open
      }
      if (!ok) {
        std::string got = "(";
        for (int k = 0; k < shape->dim_size(); ++k) {
          const auto& d = shape->dim(k);
          got += (k ? "," : "") + (d.has_dim_value() ? std::to_string(d.dim_value()) : d.has_dim_param() ? d.dim_param() : "?");
        }
        throw Error(what + ": internal error: value '" + kv.first + "' has ONNX shape " + got + ") but net shape " +
                    dims_string(want));
      }
    }
  }

  struct PendingInput {
    std::string name;
    Dims shape;
    std::string doc;
    bool used = false;
  };

  const Net& net_;
  const OnnxExportOptions& opt_;
  const std::vector<std::unique_ptr<Layer>>& layers_;
  int max_opset_ = 0;
  onnx::ModelProto model_;
  onnx::GraphProto* graph_ = nullptr;
  std::vector<Kind> kinds_;
  std::map<std::string, int> last_writer_;
  std::set<std::string> reserved_, used_, node_names_;
  std::map<std::string, Ref> current_;
  std::vector<PendingInput> inputs_;
  std::map<std::string, Dims> value_shape_;  // ONNX values of blobs -> the net's shapes
  std::vector<std::string> produced_;
  std::set<std::string> consumed_;
  bool dynamic_ = false;
  int64_t batch_ = -1;
};

}  // namespace

onnx::ModelProto to_onnx(const Net& net, const OnnxExportOptions& options) { return Exporter(net, options).run(); }

void export_onnx(const Net& net, const std::string& path, const OnnxExportOptions& options) {
  const onnx::ModelProto model = to_onnx(net, options);
  if (model.ByteSizeLong() > size_t(INT_MAX))
    throw Error("ONNX model of net '" + net.name() + "' exceeds protobuf's 2 GiB limit; cannot write '" + path + "'");
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot open '" + path + "' for writing");
    if (!model.SerializeToOstream(&out) || !out.flush()) {
      out.close();
      std::remove(path.c_str());
      throw Error("failed writing the ONNX model to '" + path + "'");
    }
  }
}

}  // namespace dsg
