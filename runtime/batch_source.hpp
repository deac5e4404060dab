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
  // Samples per forward pass (this rank's share when sharded).
  virtual int batch_size() const = 0;
  // Data parallelism: the configured batch is the global batch of `count` ranks; this source now
  // produces share `index` of every global batch (samples [index * B / count, (index + 1) * B /
  // count) of the single-process stream), so the ranks together see exactly the single-process
  // data order. Throws dsg::Error when the batch does not split evenly.
  virtual void set_shard(int index, int count) = 0;
  // Makes the next forward produce batch `batch_index` of the stream (0 = the first batch).
  virtual void seek(int64_t batch_index) = 0;
};

}  // namespace dsg
