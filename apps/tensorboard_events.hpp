// TensorBoard event files, written without TensorFlow: TFRecord framing (length as u64
// little-endian, the masked CRC-32C of the length, the data, the masked CRC-32C of the data) around
// Event protos (proto/tensorboard_event.proto, TensorFlow's field numbers). dsgtrain --tensorboard
// DIR writes one file per run, events.out.tfevents.<seconds>.<host>; TensorBoard reads every such
// file in DIR. Errors (a directory or file that cannot be written) throw dsg::Error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

namespace dsg::apps {

// CRC-32C (Castagnoli) of `size` bytes, and TFRecord's masked form of it.
uint32_t crc32c(const void* data, size_t size);
uint32_t masked_crc32c(const void* data, size_t size);
// One TFRecord: the framing above around `data`.
std::string tfrecord(const std::string& data);

class EventFileWriter {
 public:
  // Creates `dir` if needed and a new event file in it, starting with the file_version record.
  explicit EventFileWriter(const std::string& dir);
  const std::string& path() const { return path_; }
  // A scalar (TensorBoard's "Scalars" tab) at training iteration `step`.
  void scalar(const std::string& tag, int64_t step, double value);
  // The distribution of `count` values in `buckets` equal-width buckets over [min, max]
  // ("Histograms" / "Distributions" tabs).
  void histogram(const std::string& tag, int64_t step, const float* values, size_t count, int buckets = 30);
  // Flushes the records written so far to the file (after each group, so a running job is readable).
  void flush();

 private:
  void write_event(const std::string& event_bytes);

  std::string path_;
  std::ofstream out_;
};

}  // namespace dsg::apps
