#include "runtime/model_file.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "runtime/error.hpp"

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

}  // namespace dsg
