// DataSource: an in-memory labelled image dataset (MNIST-style IDX files, CIFAR-10/100 binary
// batches) or text (TEXT, datasets/text.hpp), and the string-keyed registry of dataset readers
// ("IDX", "CIFAR10", "CIFAR100", "TEXT").
//
// A reader is registered with DSG_REGISTER_DATASET and created from a DataParameter: the
// backend enum picks the reader, `resolved_source` is the (already absolute) path from
// data_param.source, and the phase picks the split (CIFAR: training batches vs. test batch).
// Readers validate their input completely and throw dsg::Error naming the file and a hint.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "runtime/registry.hpp"

namespace dsg {

class DataSource {
 public:
  virtual ~DataSource() = default;
  // Number of samples.
  virtual int64_t size() const = 0;
  // Shape of one sample: {C, H, W}.
  virtual std::vector<int> sample_shape() const = 0;
  // Labels lie in [0, num_classes()).
  virtual int num_classes() const = 0;
  // C*H*W bytes of sample i in CHW order; valid for the lifetime of the source.
  virtual const uint8_t* pixels(int64_t i) const = 0;
  virtual int label(int64_t i) const = 0;
  // One line for logs: format, files, count and shape.
  virtual std::string description() const = 0;
  // Sequence datasets (TEXT, datasets/text.hpp): T > 0 time steps per sample, whose pixels() are
  // T + 1 symbols; the Data layer then emits tops [T, N]. 0 for image datasets.
  virtual int sequence_length() const { return 0; }
};

// A DataSource over owned byte buffers (what the IDX and CIFAR readers produce).
class InMemoryDataSource : public DataSource {
 public:
  // `pixels` holds size * C*H*W bytes (CHW per sample), `labels` one entry per sample.
  InMemoryDataSource(std::vector<int> shape, std::vector<uint8_t> pixels, std::vector<uint8_t> labels,
                     int num_classes, std::string description);
  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  std::vector<int> sample_shape() const override { return shape_; }
  int num_classes() const override { return num_classes_; }
  const uint8_t* pixels(int64_t i) const override { return pixels_.data() + i * sample_bytes_; }
  int label(int64_t i) const override { return labels_[static_cast<size_t>(i)]; }
  std::string description() const override { return description_; }

 private:
  std::vector<int> shape_;
  int64_t sample_bytes_ = 0;
  std::vector<uint8_t> pixels_;
  std::vector<uint8_t> labels_;
  int num_classes_ = 0;
  std::string description_;
};

// Creator arguments: the layer's data_param, its source path (already resolved), the phase.
using DataSourceRegistry = Registry<DataSource, const DataParameter&, const std::string&, Phase>;
inline DataSourceRegistry& data_source_registry() { return DataSourceRegistry::instance("dataset"); }

// Registry name for data_param.backend ("IDX", "CIFAR10", "CIFAR100", "TEXT"); throws dsg::Error for
// Caffe's LEVELDB / LMDB (also when backend is left at Caffe's default, LEVELDB).
std::string data_backend_name(const DataParameter& param);

// Creates the reader for param.backend() on param.source() (resolve it first with
// resolve_data_sources) for `phase`.
std::unique_ptr<DataSource> create_data_source(const DataParameter& param, Phase phase);

struct DataSourceRegistrar {
  DataSourceRegistrar(const char* name, DataSourceRegistry::Creator creator) {
    data_source_registry().add(name, std::move(creator));
  }
};

// Helpers shared by the readers.
namespace dataset_io {
// Reads a whole file; gzip is detected by its magic bytes (1f 8b) and inflated. Throws
// dsg::Error naming `path` when it cannot be opened or decompressed (`missing_hint` is the hint
// used when the file does not exist).
std::vector<uint8_t> read_file(const std::string& path, const std::string& missing_hint);
}  // namespace dataset_io

}  // namespace dsg

#define DSG_REGISTER_DATASET(name_string, tag, creator_fn) \
  static ::dsg::DataSourceRegistrar dsg_dataset_registrar_##tag(name_string, creator_fn)
