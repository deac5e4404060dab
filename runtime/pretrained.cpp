#include "runtime/pretrained.hpp"

#include <map>
#include <set>

#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/net.hpp"

namespace dsg {

namespace {

std::vector<int64_t> stored_shape(const BlobProto& b) {
  if (b.has_shape()) return {b.shape().dim().begin(), b.shape().dim().end()};
  return {b.num(), b.channels(), b.height(), b.width()};  // Caffe's legacy 4-d fields
}

std::vector<int64_t> without_unit_axes(const std::vector<int64_t>& shape) {
  std::vector<int64_t> out;
  for (int64_t d : shape)
    if (d != 1) out.push_back(d);
  return out;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s + ")";
}

std::string join(const std::vector<std::string>& names) {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
}

}  // namespace

std::vector<std::string> PretrainedReport::lines() const {
  std::vector<std::string> out;
  out.push_back(strfmt("%zu layer(s) copied: %s", copied.size(), copied.empty() ? "none" : join(copied).c_str()));
  if (!not_in_net.empty())
    out.push_back(
        strfmt("%zu layer(s) of the file skipped (not in the net): %s", not_in_net.size(), join(not_in_net).c_str()));
  if (!not_in_file.empty())
    out.push_back(strfmt("%zu layer(s) of the net not in the file (keep their initialisation): %s", not_in_file.size(),
                         join(not_in_file).c_str()));
  return out;
}

PretrainedReport copy_pretrained(Net& net, const PretrainedWeights& weights) {
  PretrainedReport report;
  std::set<std::string> in_file;
  const std::string from = "'" + weights.path + "' (" + weights.format + ")";
  for (const PretrainedLayer& src : weights.layers) {
    if (src.blobs.empty()) continue;  // ReLU, Pooling, ... in a .caffemodel: nothing to copy
    in_file.insert(src.name);
    Layer* layer = net.layer_by_name(src.name);
    if (!layer) {
      report.not_in_net.push_back(src.name);
      continue;
    }
    auto& target = layer->blobs();
    if (target.size() != src.blobs.size())
      throw Error(strfmt("cannot copy the weights of layer '%s' from %s: the file has %zu blob(s), the net's layer %zu",
                         src.name.c_str(), from.c_str(), src.blobs.size(), target.size()),
                  "rename the layer in the config to learn it from scratch");
    for (size_t i = 0; i < target.size(); ++i) {  // check every blob before writing any
      const std::vector<int64_t> file_shape = stored_shape(src.blobs[i]);
      const std::vector<int64_t> net_shape(target[i]->shape().begin(), target[i]->shape().end());
      if (without_unit_axes(file_shape) != without_unit_axes(net_shape))
        throw Error(
            strfmt("cannot copy parameter %zu of layer '%s' from %s: shape mismatch: the file has %s, the "
                   "net %s",
                   i, src.name.c_str(), from.c_str(), shape_text(file_shape).c_str(), shape_text(net_shape).c_str()),
            "rename the layer in the config to learn it from scratch");
      if (src.blobs[i].data_size() != target[i]->count())
        throw Error(strfmt("parameter %zu of layer '%s' in %s holds %d values but its shape %s needs %lld", i,
                           src.name.c_str(), from.c_str(), src.blobs[i].data_size(), shape_text(file_shape).c_str(),
                           static_cast<long long>(target[i]->count())));
    }
    for (size_t i = 0; i < target.size(); ++i) {
      float* d = target[i]->mutable_data();
      const BlobProto& b = src.blobs[i];
      for (int64_t k = 0; k < target[i]->count(); ++k) d[k] = b.data(int(k));
    }
    report.copied.push_back(src.name);
  }
  for (const auto& layer : net.layers())
    if (!layer->blobs().empty() && !in_file.count(layer->name())) report.not_in_file.push_back(layer->name());
  return report;
}

void log_pretrained_report(const PretrainedWeights& weights, const PretrainedReport& report) {
  log_info("Copying weights from " + weights.path + " (" + weights.format + ")");
  for (const std::string& line : report.lines()) log_info("    " + line);
}

PretrainedWeights pretrained_from_model(const ModelFile& model, const std::string& path, const std::string& format) {
  PretrainedWeights w{path, format, {}};
  std::map<std::string, size_t> index;  // layer name -> position in w.layers (file order)
  std::map<std::string, std::map<int, const BlobProto*>> blobs;
  for (const ParamBlob& p : model.param()) {
    if (!index.count(p.layer())) {
      index[p.layer()] = w.layers.size();
      w.layers.push_back({p.layer(), {}});
    }
    if (!blobs[p.layer()].emplace(p.index(), &p.blob()).second)
      throw Error(strfmt("'%s' stores parameter %d of layer '%s' twice", path.c_str(), p.index(), p.layer().c_str()));
  }
  for (auto& layer : w.layers) {
    int expect = 0;
    for (const auto& kv : blobs[layer.name]) {
      if (kv.first != expect++)
        throw Error(strfmt("'%s' has no parameter %d of layer '%s' (it has parameter %d)", path.c_str(), expect - 1,
                           layer.name.c_str(), kv.first));
      layer.blobs.push_back(*kv.second);
    }
  }
  return w;
}

PretrainedWeights parse_caffemodel(const std::string& bytes, const std::string& path) {
  NetParameter net;
  if (!net.ParseFromString(bytes))
    throw Error("'" + path +
                    "' is not a weights file: neither .dsgmodel, .dsgz, ONNX nor a Caffe .caffemodel "
                    "(binary NetParameter)",
                "check the path; a truncated or corrupt file cannot be read");
  const auto& unknown = net.GetReflection()->GetUnknownFields(net);
  for (int i = 0; i < unknown.field_count(); ++i)
    if (unknown.field(i).number() == 2)  // Caffe's V1LayerParameter `layers`
      throw Error("'" + path + "' is a Caffe model in the V1 format (`layers`); DSG reads the `layer` format",
                  "upgrade it with Caffe's upgrade_net_proto_binary tool");
  PretrainedWeights w{path, "caffemodel", {}};
  for (const LayerParameter& l : net.layer()) {
    for (const BlobProto& b : l.blobs()) {
      const auto& fields = b.GetReflection()->GetUnknownFields(b);
      for (int i = 0; i < fields.field_count(); ++i)
        if (b.data_size() == 0 && (fields.field(i).number() == 8 || fields.field(i).number() == 9))
          throw Error(
              "'" + path + "': the blobs of layer '" + l.name() + "' are stored as double_data; DSG reads float data",
              "convert the model to float blobs in Caffe");
    }
    PretrainedLayer layer{l.name(), {l.blobs().begin(), l.blobs().end()}};
    w.layers.push_back(std::move(layer));
  }
  bool any = false;
  for (const auto& l : w.layers) any = any || !l.blobs.empty();
  if (!any)
    throw Error("'" + path + "' holds no layer with weights (read as a Caffe .caffemodel)",
                "pass a .dsgmodel, .dsgz, ONNX or .caffemodel file with trained weights");
  return w;
}

}  // namespace dsg
