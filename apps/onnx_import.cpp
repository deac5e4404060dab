#include "apps/onnx_import.hpp"

#include <onnx/onnx_pb.h>

#include <cstring>
#include <map>

#include "runtime/error.hpp"

namespace dsg {

namespace {

// The values of an initializer as floats (FLOAT) or integers (INT32 / INT64 / UINT8 codes).
template <class T>
std::vector<T> values(const onnx::TensorProto& t, const std::string& path) {
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  std::vector<T> out;
  out.reserve(size_t(n));
  const std::string& raw = t.raw_data();
  auto bad = [&](const std::string& why) {
    return Error("'" + path + "': ONNX initializer '" + t.name() + "' " + why);
  };
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      if (t.has_raw_data()) {
        if (raw.size() != size_t(n) * 4) throw bad("has " + std::to_string(raw.size()) + " bytes of data");
        for (int64_t k = 0; k < n; ++k) {
          float v;
          std::memcpy(&v, raw.data() + 4 * k, 4);  // little-endian, as on every host DSG runs on
          out.push_back(T(v));
        }
      } else {
        if (t.float_data_size() != n) throw bad("holds the wrong number of values");
        for (float v : t.float_data()) out.push_back(T(v));
      }
      break;
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT64: {
      const size_t width = t.data_type() == onnx::TensorProto::INT64   ? 8
                           : t.data_type() == onnx::TensorProto::INT32 ? 4
                                                                       : 1;
      if (t.has_raw_data()) {
        if (raw.size() != size_t(n) * width) throw bad("has " + std::to_string(raw.size()) + " bytes of data");
        for (int64_t k = 0; k < n; ++k) {
          uint64_t v = 0;
          for (size_t b = 0; b < width; ++b) v |= uint64_t(uint8_t(raw[size_t(k) * width + b])) << (8 * b);
          out.push_back(width == 4 ? T(int32_t(uint32_t(v))) : width == 8 ? T(int64_t(v)) : T(v));
        }
      } else if (t.data_type() == onnx::TensorProto::INT64) {
        if (t.int64_data_size() != n) throw bad("holds the wrong number of values");
        for (int64_t v : t.int64_data()) out.push_back(T(v));
      } else {
        if (t.int32_data_size() != n) throw bad("holds the wrong number of values");
        for (int32_t v : t.int32_data()) out.push_back(T(v));
      }
      break;
    }
    default:
      throw bad("has ONNX data type " + std::to_string(t.data_type()) + " (not FLOAT, INT32, INT64 or UINT8)");
  }
  return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() > tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Drops the exporter's uniqueness suffix "_N" (digits) from a name.
std::string without_counter(const std::string& s) {
  size_t u = s.rfind('_');
  if (u == std::string::npos || u + 1 == s.size()) return s;
  for (size_t i = u + 1; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return s;
  return s.substr(0, u);
}

BlobProto blob_of(const std::vector<int64_t>& dims, const std::vector<float>& v) {
  BlobProto b;
  for (int64_t d : dims) b.mutable_shape()->add_dim(d);
  b.mutable_data()->Add(v.begin(), v.end());
  return b;
}

}  // namespace

bool read_onnx_weights(const std::string& bytes, const std::string& path, PretrainedWeights* out) {
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes) || !model.has_graph() || model.graph().node_size() == 0) return false;
  // layer -> suffix ("weight", "bias", "scale", "mean", "var") -> blob
  std::map<std::string, std::map<std::string, BlobProto>> found;
  std::vector<std::string> order;
  std::map<std::string, const onnx::TensorProto*> codebooks, indices;
  auto add = [&](const std::string& layer, const std::string& suffix, BlobProto b) {
    if (!found.count(layer)) order.push_back(layer);
    found[layer][suffix] = std::move(b);
  };
  static const char* kSuffixes[] = {"weight", "bias", "scale", "mean", "var"};
  for (const onnx::TensorProto& t : model.graph().initializer()) {
    const std::string name = without_counter(t.name());
    if (ends_with(name, "/codebook")) {
      codebooks[name.substr(0, name.size() - 9)] = &t;
      continue;
    }
    if (ends_with(name, "/indices")) {
      indices[name.substr(0, name.size() - 8)] = &t;
      continue;
    }
    for (const char* s : kSuffixes) {
      const std::string tail = std::string("/") + s;
      if (!ends_with(name, tail)) continue;
      std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
      add(name.substr(0, name.size() - tail.size()), s, blob_of(dims, values<float>(t, path)));
      break;
    }
  }
  for (const auto& kv : codebooks) {  // shared weights: codebook[indices]
    auto it = indices.find(kv.first);
    if (it == indices.end()) throw Error("'" + path + "': ONNX initializer '" + kv.first + "/codebook' has no indices");
    const std::vector<float> book = values<float>(*kv.second, path);
    const std::vector<int64_t> codes = values<int64_t>(*it->second, path);
    std::vector<float> v;
    v.reserve(codes.size());
    for (int64_t c : codes) {
      if (c < 0 || size_t(c) >= book.size())
        throw Error("'" + path + "': ONNX initializer '" + kv.first + "/indices' holds code " + std::to_string(c) +
                    " outside its codebook of " + std::to_string(book.size()));
      v.push_back(book[size_t(c)]);
    }
    const size_t slash = kv.first.rfind('/');
    if (slash == std::string::npos) continue;
    std::vector<int64_t> dims(it->second->dims().begin(), it->second->dims().end());
    add(kv.first.substr(0, slash), kv.first.substr(slash + 1), blob_of(dims, v));
  }
  PretrainedWeights w{path, "onnx", {}};
  for (const std::string& layer : order) {
    auto& s = found[layer];
    PretrainedLayer l{layer, {}};
    if (s.count("mean") && s.count("var")) {  // BatchNorm: mean, var, factor 1
      l.blobs = {s["mean"], s["var"], blob_of({1}, {1.0f})};
    } else {
      const char* first = s.count("weight") ? "weight" : s.count("scale") ? "scale" : nullptr;
      if (!first) continue;
      l.blobs.push_back(s[first]);
      if (s.count("bias")) l.blobs.push_back(s["bias"]);
    }
    w.layers.push_back(std::move(l));
  }
  if (w.layers.empty())
    throw Error("'" + path + "' is an ONNX model but no initializer maps to a layer (LAYER/weight, LAYER/bias, ...)",
                "DSG imports ONNX models whose initializers are named like DSG's export names them");
  *out = std::move(w);
  return true;
}

}  // namespace dsg
