#include "compress/npz.hpp"

#include <zlib.h>

#include <cstring>

#include "runtime/error.hpp"
#include "runtime/model_file.hpp"

namespace dsg::compress {

namespace {

void put16(std::string& out, uint32_t v) {
  out.push_back(char(v & 0xff));
  out.push_back(char((v >> 8) & 0xff));
}
void put32(std::string& out, uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}

std::string shape_tuple(const std::vector<int64_t>& shape) {
  std::string s = "(";
  // Python's tuple syntax: "(3,)" for one dimension, "(2, 3)" for more, "()" for a scalar.
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

}  // namespace

std::string npy_bytes(const NpyArray& a) {
  int64_t count = 1;
  for (int64_t d : a.shape) {
    if (d < 0) throw Error("npy: array '" + a.name + "' has a negative dimension");
    count *= d;
  }
  if (count != int64_t(a.data.size()))
    throw Error(strfmt("npy: array '%s' holds %zu values but its shape has %lld", a.name.c_str(), a.data.size(),
                       static_cast<long long>(count)));
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_tuple(a.shape) + ", }";
  // magic (6) + version (2) + header length (2) + header + '\n', padded with spaces to 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  put16(out, uint32_t(header.size()));
  out += header;
  // float32 little-endian (every machine DSG builds for is little-endian).
  out.append(reinterpret_cast<const char*>(a.data.data()), a.data.size() * sizeof(float));
  return out;
}

void write_npz(const std::string& path, const std::vector<NpyArray>& arrays) {
  std::string zip, central;
  uint32_t entries = 0;
  for (const NpyArray& a : arrays) {
    const std::string name = a.name + ".npy";
    const std::string body = npy_bytes(a);
    if (body.size() >= 0xffffffffu || zip.size() >= 0xffffffffu)
      throw Error("npz: '" + a.name + "' is too large for a zip without ZIP64");
    const uint32_t crc = uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size())));
    const uint32_t offset = uint32_t(zip.size());
    // Local file header: stored (method 0), no data descriptor.
    put32(zip, 0x04034b50);
    put16(zip, 20);  // version needed
    put16(zip, 0);   // flags
    put16(zip, 0);   // stored
    put16(zip, 0);   // time
    put16(zip, 0x21);  // date: 1980-01-01
    put32(zip, crc);
    put32(zip, uint32_t(body.size()));
    put32(zip, uint32_t(body.size()));
    put16(zip, uint32_t(name.size()));
    put16(zip, 0);
    zip += name;
    zip += body;
    // Central directory entry.
    put32(central, 0x02014b50);
    put16(central, 20);  // made by
    put16(central, 20);  // needed
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0x21);
    put32(central, crc);
    put32(central, uint32_t(body.size()));
    put32(central, uint32_t(body.size()));
    put16(central, uint32_t(name.size()));
    put16(central, 0);  // extra
    put16(central, 0);  // comment
    put16(central, 0);  // disk
    put16(central, 0);  // internal attributes
    put32(central, 0);  // external attributes
    put32(central, offset);
    central += name;
    ++entries;
  }
  if (entries > 0xffff) throw Error("npz: more than 65535 arrays");
  const uint32_t central_offset = uint32_t(zip.size());
  zip += central;
  put32(zip, 0x06054b50);  // end of central directory
  put16(zip, 0);
  put16(zip, 0);
  put16(zip, entries);
  put16(zip, entries);
  put32(zip, uint32_t(central.size()));
  put32(zip, central_offset);
  put16(zip, 0);
  write_file_atomically(path, zip);
}

std::vector<NpyArray> model_arrays(const ModelFile& model) {
  std::vector<NpyArray> out;
  for (const ParamBlob& p : model.param()) {
    NpyArray a;
    const std::string suffix = p.index() == 0 ? "weight" : p.index() == 1 ? "bias" : "blob" + std::to_string(p.index());
    a.name = p.layer() + "." + suffix;
    for (int64_t d : p.blob().shape().dim()) a.shape.push_back(d);
    if (a.shape.empty()) a.shape.push_back(p.blob().data_size());  // no recorded shape: a vector
    a.data.assign(p.blob().data().begin(), p.blob().data().end());
    out.push_back(std::move(a));
  }
  // Trained quantization: the codebook (k-means centroids, or TTQ's values) of each active layer.
  for (const QuantizerState& q : model.quantizer()) {
    if (!q.active() || q.codebook_size() == 0) continue;
    out.push_back({q.layer() + ".codebook", {int64_t(q.codebook_size())},
                   std::vector<float>(q.codebook().begin(), q.codebook().end())});
  }
  return out;
}

}  // namespace dsg::compress
