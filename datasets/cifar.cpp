// CIFAR-10 / CIFAR-100 binary readers. The source is the extracted directory:
//   CIFAR-10 (cifar-10-batches-bin): data_batch_1..5.bin (TRAIN), test_batch.bin (TEST); records
//     of 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B: already CHW 3x32x32).
//   CIFAR-100 (cifar-100-binary): train.bin (TRAIN), test.bin (TEST); records of coarse label,
//     fine label, 3072 pixel bytes. data_param.coarse_labels picks the 20 coarse classes.
#include <filesystem>

#include "datasets/source.hpp"
#include "runtime/error.hpp"

namespace dsg {
namespace {

constexpr int kSide = 32;
constexpr int kPixels = 3 * kSide * kSide;

struct CifarFormat {
  const char* name;           // "CIFAR-10"
  const char* archive;        // "cifar-10-binary.tar.gz"
  const char* extracted;      // "cifar-10-batches-bin"
  int label_bytes;            // 1 or 2
  int label_offset;           // which label byte to use
  int num_classes;
};

std::string download_hint(const CifarFormat& f) {
  return std::string("download ") + f.archive + " from https://www.cs.toronto.edu/~kriz/cifar.html, extract it, "
         "and pass --data <dir>/" + f.extracted;
}

std::unique_ptr<DataSource> read_cifar(const CifarFormat& format, const std::string& dir,
                                       const std::vector<std::string>& files, const char* split) {
  namespace fs = std::filesystem;
  std::string missing, expected;
  std::error_code ec;
  for (const auto& f : files) {
    expected += (expected.empty() ? "" : ", ") + f;
    if (!fs::is_regular_file(fs::path(dir) / f, ec)) missing += (missing.empty() ? "" : ", ") + f;
  }
  if (!missing.empty())
    throw Error(std::string(format.name) + " " + split + " data not found in directory '" + dir +
                    "': missing " + missing + " (expected " + expected + ")",
                download_hint(format));

  const size_t record = size_t(format.label_bytes) + kPixels;
  std::vector<uint8_t> pixels, labels;
  for (const auto& f : files) {
    const std::string path = (fs::path(dir) / f).string();
    std::vector<uint8_t> bytes = dataset_io::read_file(path, download_hint(format));
    if (bytes.empty() || bytes.size() % record != 0)
      throw Error(strfmt("%s file '%s' has %zu bytes, not a positive multiple of the %zu-byte record", format.name,
                         path.c_str(), bytes.size(), record),
                  download_hint(format));
    const size_t n = bytes.size() / record;
    pixels.reserve(pixels.size() + n * kPixels);
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* r = bytes.data() + i * record;
      const int label = r[format.label_offset];
      if (label >= format.num_classes)
        throw Error(strfmt("%s file '%s': record %zu has label %d, expected < %d (corrupt file?)", format.name,
                           path.c_str(), i, label, format.num_classes));
      labels.push_back(uint8_t(label));
      pixels.insert(pixels.end(), r + format.label_bytes, r + record);
    }
  }
  std::string description = strfmt("%s %s %s (%zu files): %zu images 3x%dx%d, %d classes", format.name, split,
                                   dir.c_str(), files.size(), labels.size(), kSide, kSide, format.num_classes);
  return std::make_unique<InMemoryDataSource>(std::vector<int>{3, kSide, kSide}, std::move(pixels),
                                              std::move(labels), format.num_classes, std::move(description));
}

std::unique_ptr<DataSource> create_cifar10(const DataParameter&, const std::string& dir, Phase phase) {
  static const CifarFormat format{"CIFAR-10", "cifar-10-binary.tar.gz", "cifar-10-batches-bin", 1, 0, 10};
  std::vector<std::string> files;
  if (phase == TRAIN) {
    for (int i = 1; i <= 5; ++i) files.push_back(strfmt("data_batch_%d.bin", i));
  } else {
    files.push_back("test_batch.bin");
  }
  return read_cifar(format, dir, files, phase == TRAIN ? "train" : "test");
}

std::unique_ptr<DataSource> create_cifar100(const DataParameter& param, const std::string& dir, Phase phase) {
  const bool coarse = param.coarse_labels();
  const CifarFormat format{"CIFAR-100", "cifar-100-binary.tar.gz", "cifar-100-binary", 2, coarse ? 0 : 1,
                           coarse ? 20 : 100};
  return read_cifar(format, dir, {phase == TRAIN ? "train.bin" : "test.bin"}, phase == TRAIN ? "train" : "test");
}

}  // namespace

DSG_REGISTER_DATASET("CIFAR10", cifar10, create_cifar10);
DSG_REGISTER_DATASET("CIFAR100", cifar100, create_cifar100);

}  // namespace dsg
