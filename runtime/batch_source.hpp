// BatchSource: what the Solver needs of a layer that feeds the net from a dataset (the Data layer,
// datasets/data_layer.hpp): the epoch size for progress and schedules, and an exact seek so that a
// resumed run sees the batches an uninterrupted run would have seen.
#pragma once
#include <cstdint>

namespace dsg {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Samples in one epoch of the source.
  virtual int64_t dataset_size() const = 0;
  // Samples per forward pass.
  virtual int batch_size() const = 0;
  // Makes the next forward produce batch `batch_index` of the stream (0 = the first batch).
  virtual void seek(int64_t batch_index) = 0;
};

}  // namespace dsg
