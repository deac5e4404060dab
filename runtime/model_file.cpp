#include "runtime/model_file.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "runtime/batch_source.hpp"
#include "runtime/error.hpp"
#include "runtime/net.hpp"

namespace dsg {

static const char kMagic[8] = {'D', 'S', 'G', 'M', 'O', 'D', 'E', 'L'};
static constexpr size_t kHeaderSize = 24;

template <class T>
static void put_le(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((uint64_t(value) >> (8 * i)) & 0xff));
}

template <class T>
static T get_le(const unsigned char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t(p[i]) << (8 * i);
  return static_cast<T>(v);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw Error("cannot write '" + tmp + "': " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error("cannot write '" + tmp + "': " + std::strerror(err));
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw Error("cannot flush '" + tmp + "': " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw Error("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(err));
  }
}

void write_model_file(const std::string& path, const ModelFile& model) {
  std::string payload;
  if (!model.SerializeToString(&payload)) throw Error("cannot serialise model for '" + path + "'");
  std::string out(kMagic, sizeof(kMagic));
  put_le<uint32_t>(out, kModelFileVersion);
  put_le<uint64_t>(out, payload.size());
  put_le<uint32_t>(out, uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(payload.data()), uInt(payload.size()))));
  out += payload;
  write_file_atomically(path, out);
}

ModelFile read_model_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open model file '" + path + "'", "check the path");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  if (bytes.size() < kHeaderSize || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0)
    throw Error("'" + path + "' is not a DSG model file (bad magic or too short)");
  auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  uint32_t version = get_le<uint32_t>(p + 8);
  uint64_t size = get_le<uint64_t>(p + 12);
  uint32_t crc = get_le<uint32_t>(p + 20);
  if (version != kModelFileVersion)
    throw Error("'" + path + "' has model format version " + std::to_string(version) + "; this build reads version " +
                std::to_string(kModelFileVersion));
  if (bytes.size() - kHeaderSize != size)
    throw Error(strfmt("'%s' is truncated or padded: header says %llu payload bytes, file holds %zu", path.c_str(),
                       static_cast<unsigned long long>(size), bytes.size() - kHeaderSize));
  const char* payload = bytes.data() + kHeaderSize;
  if (uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(payload), uInt(size))) != crc)
    throw Error("'" + path + "' is corrupt (checksum mismatch)");
  ModelFile model;
  if (!model.ParseFromArray(payload, int(size))) throw Error("'" + path + "' is corrupt (cannot decode the model)");
  return model;
}

void record_source_shapes(const Net& net, ModelFile* model) {
  for (size_t i = 0; i < net.layers().size(); ++i) {
    const Layer& l = *net.layers()[i];
    if (!dynamic_cast<const BatchSource*>(&l)) continue;
    SourceShape* entry = model->add_source_shape();
    entry->set_layer(l.name());
    entry->set_phase(net.phase());
    for (const Tensor* t : net.tops(i)) {
      BlobShape* shape = entry->add_top();
      for (int d : t->shape()) shape->add_dim(d);
    }
  }
}

NetParameter with_recorded_sources(const NetParameter& net, const ModelFile& model, Phase phase) {
  NetParameter out = net;
  for (LayerParameter& layer : *out.mutable_layer()) {
    const SourceShape* found = nullptr;
    for (const SourceShape& s : model.source_shape())
      if (s.layer() == layer.name() && (!found || s.phase() == phase)) found = &s;
    if (!found) continue;
    if (found->top_size() != layer.top_size())
      throw Error(strfmt("the recorded shapes of data layer '%s' have %d tops, the net's layer %d", layer.name().c_str(),
                         found->top_size(), layer.top_size()));
    LayerParameter input;
    input.set_name(layer.name());
    input.set_type("Input");  // the engine's shape-only source, as it inserts "Split" layers
    *input.mutable_top() = layer.top();
    *input.mutable_include() = layer.include();
    *input.mutable_exclude() = layer.exclude();
    if (layer.has_phase()) input.set_phase(layer.phase());
    for (const BlobShape& shape : found->top()) *input.mutable_input_param()->add_shape() = shape;
    layer = input;
  }
  return out;
}

}  // namespace dsg
