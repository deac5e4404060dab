// ONNX export of a TEST-phase Net; see onnx_export.hpp for the mapping. The graph plumbing, the op
// mapping and the graph interface; the layer emitters are in apps/onnx_emit_*.cpp.
#include "apps/onnx_exporter.hpp"

#include <onnx/checker.h>
#include <onnx/defs/schema.h>
#include <onnx/shape_inference/implementation.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "runtime/batch_source.hpp"

namespace dsg {
namespace onnx_detail {
namespace {

// Little-endian bytes, as ONNX's raw_data requires, whatever the host order.
void put_le32(std::string& s, uint32_t v) {
  for (int k = 0; k < 4; ++k) s.push_back(char((v >> (8 * k)) & 0xff));
}
void put_le64(std::string& s, uint64_t v) {
  for (int k = 0; k < 8; ++k) s.push_back(char((v >> (8 * k)) & 0xff));
}

}  // namespace

onnx::ModelProto Exporter::run() {
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

const std::map<std::string, Exporter::OpMapping>& Exporter::op_mappings() {
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

const Exporter::OpMapping* Exporter::op_mapping(const Layer& l) {
  auto it = op_mappings().find(l.type());
  return it == op_mappings().end() ? nullptr : &it->second;
}

bool Exporter::emitted_by(const Layer& l, Emit emit) {
  const OpMapping* op = op_mapping(l);
  return op && op->emit == emit;
}

void Exporter::classify() {
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

bool Exporter::can_fold(int i) const {
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

void Exporter::check_shared() const {
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

void Exporter::decide_batch() {
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

std::string Exporter::fresh(const std::string& base) {
  std::string n = base;
  for (int k = 1; used_.count(n) || reserved_.count(n); ++k) n = base + "_" + std::to_string(k);
  used_.insert(n);
  return n;
}

std::string Exporter::top_value(int i, int j) {
  const std::string& blob = layers_[i]->param().top(j);
  auto it = last_writer_.find(blob);
  if (it != last_writer_.end() && it->second == i && !used_.count(blob)) {
    used_.insert(blob);
    return blob;
  }
  return fresh(blob + "/" + layers_[i]->name());
}

void Exporter::define(const std::string& blob, const std::string& value) {
  Ref r;
  r.value = value;
  current_[blob] = r;
  value_shape_[value] = dims_of(net_.blob(blob).shape());
}

std::string Exporter::resolve(int i, int j) {
  const Layer& l = *layers_[i];
  const std::string& blob = l.param().bottom(j);
  auto it = current_.find(blob);
  if (it == current_.end()) fail(l, "its bottom '" + blob + "' has no ONNX value");
  Ref& r = it->second;
  switch (r.type) {
    case Ref::Value: return r.value;
    case Ref::Input: return input_value(r.input);
    case Ref::Dropped: break;
  }
  fail(l, "its bottom '" + blob + "' comes from " + describe(*layers_[r.layer]) + ", which is not exported");
}

std::string Exporter::input_value(int k) {
  PendingInput& in = inputs_[size_t(k)];
  in.used = true;
  if (!in.normalize) return in.name;
  if (in.normalized.empty()) {
    std::string x = in.name;
    if (!in.mean.empty()) {
      Dims dims{int64_t(in.mean.size())};
      if (in.mean.size() > 1) dims.insert(dims.end(), in.shape.size() - 2, 1);  // [C, 1, 1] against NCHW
      const std::string mean = float_init(in.name + "/mean", dims, in.mean);
      const std::string centered = fresh(in.name + "/centered");
      node("Sub", {x, mean}, {centered}, in.name + "/subtract_mean");
      x = centered;
    }
    if (in.scale != 1.0f) {
      const std::string scale = float_init(in.name + "/scale", {1}, std::vector<float>{in.scale});
      const std::string scaled = fresh(in.name + "/scaled");
      node("Mul", {x, scale}, {scaled}, in.name + "/scale");
      x = scaled;
    }
    in.normalized = x;
  }
  return in.normalized;
}

onnx::NodeProto* Exporter::node(const std::string& op, const std::vector<std::string>& in,
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

void Exporter::attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void Exporter::attr(onnx::NodeProto* n, const std::string& name, const Dims& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

void Exporter::attr_f(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

onnx::TensorProto* Exporter::initializer(const std::string& base, const Dims& dims, int type, std::string* name) {
  *name = fresh(base);
  onnx::TensorProto* t = graph_->add_initializer();
  t->set_name(*name);
  t->set_data_type(type);
  for (int64_t d : dims) t->add_dims(d);
  return t;
}

std::string Exporter::float_init(const std::string& base, const Dims& dims, const float* data) {
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

std::string Exporter::float_init(const std::string& base, const Dims& dims, const std::vector<float>& data) {
  return float_init(base, dims, data.data());
}

std::string Exporter::int64_init(const std::string& base, const Dims& values) {
  std::string name;
  onnx::TensorProto* t = initializer(base, {int64_t(values.size())}, onnx::TensorProto::INT64, &name);
  for (int64_t v : values) put_le64(*t->mutable_raw_data(), uint64_t(v));
  return name;
}

std::string Exporter::param_value(int i, int p, const std::string& suffix, Dims dims) {
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
  if (s.codebook.size() <= 256) {
    // Codes of <= 8 bits as UINT8 (a quarter of INT32's bytes); Gather takes int32 / int64
    // indices, so a Cast widens them in the graph.
    std::string codes;
    onnx::TensorProto* ti = initializer(base + "/codes", dims, onnx::TensorProto::UINT8, &codes);
    std::string* raw = ti->mutable_raw_data();
    raw->reserve(s.codes.size());
    for (int32_t c : s.codes) raw->push_back(char(uint8_t(c)));
    indices = fresh(base + "/indices");
    attr(node("Cast", {codes}, {indices}, l.name() + "/" + suffix + "/cast"), "to", int64_t(onnx::TensorProto::INT32));
  } else {
    onnx::TensorProto* ti = initializer(base + "/indices", dims, onnx::TensorProto::INT32, &indices);
    std::string* raw = ti->mutable_raw_data();
    raw->reserve(s.codes.size() * 4);
    for (int32_t c : s.codes) put_le32(*raw, uint32_t(c));
  }
  const std::string out = fresh(base);
  attr(node("Gather", {codebook, indices}, {out}, l.name() + "/" + suffix + "/gather"), "axis", int64_t(0));
  return out;
}

Dims Exporter::reshape_target(int i, char axis0) const {
  Dims t = dims_of(net_.blob(layers_[i]->param().top(0)).shape());
  if (dynamic_ && !t.empty()) {
    if (axis0 == 'c') t[0] = 0;
    else if (axis0 == 'i') t[0] = -1;
  }
  for (size_t k = 1; k < t.size(); ++k)
    if (t[k] == 0) fail(*layers_[i], "a reshape to a zero-size dimension cannot be expressed");
  return t;
}

void Exporter::emit(int i) {
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
        const auto& tp = lp.transform_param();
        if (opt_.normalize_inputs && dynamic_cast<const BatchSource*>(&l) && t == lp.top(0) &&
            (tp.mean_value_size() > 0 || tp.scale() != 1.0f)) {
          if (tp.has_mean_file()) fail(l, "--onnx-normalize: a mean_file is not exported (use mean_value)");
          const int64_t channels = in.shape.size() >= 2 ? in.shape[1] : 1;
          if (tp.mean_value_size() > 1 && (in.shape.size() < 2 || tp.mean_value_size() != channels))
            fail(l, strfmt("%d mean_value entries for %lld channels", tp.mean_value_size(), (long long)channels));
          in.normalize = true;
          in.mean.assign(tp.mean_value().begin(), tp.mean_value().end());
          in.scale = tp.scale();
          in.doc = "DSG Data layer '" + l.name() + "': raw pixel values" +
                   (tp.crop_size() > 0 ? strfmt(" (center crop %u)", tp.crop_size()) : std::string()) +
                   "; the graph subtracts the mean and multiplies by the scale";
        }
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

std::string Exporter::input_doc(const Layer& l) const {
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

void Exporter::set_shape(onnx::ValueInfoProto* vi, const Dims& dims, int64_t symbolic_batch) {
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tt->mutable_shape();
  for (size_t k = 0; k < dims.size(); ++k) {
    auto* d = shape->add_dim();
    if (k == 0 && symbolic_batch >= 0) d->set_dim_param("N");
    else d->set_dim_value(dims[k]);
  }
}

void Exporter::finish() {
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

void Exporter::verify_shapes(const std::string& what) {
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


}  // namespace onnx_detail

onnx::ModelProto to_onnx(const Net& net, const OnnxExportOptions& options) { return onnx_detail::Exporter(net, options).run(); }

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
