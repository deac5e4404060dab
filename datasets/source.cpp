#include "datasets/source.hpp"

#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "runtime/error.hpp"

namespace dsg {

InMemoryDataSource::InMemoryDataSource(std::vector<int> shape, std::vector<uint8_t> pixels,
                                       std::vector<uint8_t> labels, int num_classes, std::string description)
    : shape_(std::move(shape)),
      pixels_(std::move(pixels)),
      labels_(std::move(labels)),
      num_classes_(num_classes),
      description_(std::move(description)) {
  DSG_CHECK(shape_.size() == 3, "InMemoryDataSource: sample shape must be {C, H, W}");
  sample_bytes_ = int64_t(shape_[0]) * shape_[1] * shape_[2];
  DSG_CHECK(int64_t(pixels_.size()) == sample_bytes_ * int64_t(labels_.size()),
            strfmt("InMemoryDataSource: %zu pixel bytes for %zu samples of %lld bytes", pixels_.size(),
                   labels_.size(), static_cast<long long>(sample_bytes_)));
}

std::string data_backend_name(const DataParameter& param) {
  switch (param.backend()) {
    case DataParameter::IDX: return "IDX";
    case DataParameter::CIFAR10: return "CIFAR10";
    case DataParameter::CIFAR100: return "CIFAR100";
    case DataParameter::TEXT: return "TEXT";
    case DataParameter::LEVELDB:
    case DataParameter::LMDB: {
      std::string what = param.backend() == DataParameter::LMDB ? "LMDB" : "LevelDB";
      std::string msg = "data_param.backend " + what +
                        (param.has_backend() ? "" : " (Caffe's default, backend not set)") +
                        ": Caffe's LMDB/LevelDB databases are not supported";
      throw Error(msg, "set data_param { backend: IDX } (MNIST / Fashion-MNIST files) or "
                       "backend: CIFAR10 / CIFAR100 (binary batches) or TEXT (plain text)");
    }
  }
  throw Error(strfmt("data_param.backend: unknown value %d", int(param.backend())));
}

std::unique_ptr<DataSource> create_data_source(const DataParameter& param, Phase phase) {
  const std::string name = data_backend_name(param);
  if (param.source().empty())
    throw Error("data_param.source is empty (backend " + name + ")",
                "set data_param.source to the dataset file (IDX), directory (CIFAR) or text file / directory (TEXT)");
  return data_source_registry().create(name, param, param.source(), phase);
}

namespace dataset_io {

static std::vector<uint8_t> read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error("cannot open '" + path + "'");
  const std::streamoff size = in.tellg();
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size))
    throw Error("error reading '" + path + "'");
  return bytes;
}

static std::vector<uint8_t> read_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error("cannot open '" + path + "'");
  gzbuffer(f, 1 << 18);
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  for (;;) {
    int n = gzread(f, chunk.data(), static_cast<unsigned>(chunk.size()));
    if (n < 0) {
      int code = 0;
      std::string why = gzerror(f, &code);
      gzclose(f);
      throw Error("corrupt gzip file '" + path + "': " + why);
    }
    if (n == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
  }
  int code = 0;
  const char* why = gzerror(f, &code);
  // A stream cut short reads as EOF with Z_BUF_ERROR ("unexpected end of file").
  if (code != Z_OK && code != Z_STREAM_END) {
    std::string msg = "corrupt gzip file '" + path + "': " + why;
    gzclose(f);
    throw Error(msg);
  }
  gzclose(f);
  return bytes;
}

std::vector<uint8_t> read_file(const std::string& path, const std::string& missing_hint) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error("data file not found: '" + path + "'", missing_hint);
  if (std::filesystem::is_directory(path, ec)) throw Error("'" + path + "' is a directory, expected a file");
  unsigned char magic[2] = {0, 0};
  size_t got = 0;
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    got = std::fread(magic, 1, 2, f);
    std::fclose(f);
  } else {
    throw Error("cannot open '" + path + "'");
  }
  if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) return read_gzip(path);
  return read_raw(path);
}

}  // namespace dataset_io
}  // namespace dsg
