// Tensor: an N-d float array with a value buffer (data) and a gradient buffer (diff), Caffe's
// Blob. Buffers are Storage objects (runtime/storage.hpp: a host and a device copy, synced
// lazily) that may be shared: a tensor can view a slice of a larger arena (the Net keeps all
// learnable parameters in one contiguous arena), or share another tensor's buffer (in-place
// layers, weight sharing between TRAIN and TEST nets).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/device.hpp"
#include "runtime/storage.hpp"

namespace dsg {

class BlobProto;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(const std::vector<int>& shape) { reshape(shape); }

  // Changes the shape; reallocates only when the new count exceeds the capacity. A tensor bound
  // to an arena slice cannot grow beyond it (throws).
  void reshape(const std::vector<int>& shape);
  void reshape_like(const Tensor& other) { reshape(other.shape()); }

  const std::vector<int>& shape() const { return shape_; }
  // Size of axis `axis`; negative axes count from the end.
  int shape(int axis) const { return shape_[canonical_axis(axis)]; }
  int num_axes() const { return static_cast<int>(shape_.size()); }
  int64_t count() const { return count_; }
  // Product of shape[start, end).
  int64_t count(int start, int end) const;
  int64_t count(int start) const { return count(start, num_axes()); }
  int canonical_axis(int axis) const;
  std::string shape_string() const;

  // Host values and gradients, brought up to date from the device first if needed.
  const float* data() const { return data_storage().host() + data_offset_; }
  const float* diff() const { return diff_storage().host() + diff_offset_; }
  float* mutable_data() { return data_storage().mutable_host() + data_offset_; }
  float* mutable_diff() { return diff_storage().mutable_host() + diff_offset_; }
  // The same on `device` (the host for Device::cpu()): pointers into that device's memory, valid
  // until the buffer is next used on another device. Views (bind, share_data) keep their offsets.
  const float* data(const Device& device) const { return read(data_storage(), data_offset_, device); }
  const float* diff(const Device& device) const { return read(diff_storage(), diff_offset_, device); }
  float* mutable_data(const Device& device) { return write(data_storage(), data_offset_, device); }
  float* mutable_diff(const Device& device) { return write(diff_storage(), diff_offset_, device); }
  // The buffers themselves (allocated on first use), for sync-state checks.
  const Storage& data_buffer() const { return data_storage(); }
  const Storage& diff_buffer() const { return diff_storage(); }

  // Makes this tensor use `other`'s data (or diff) buffer; shapes must have equal counts.
  void share_data(const Tensor& other);
  void share_diff(const Tensor& other);
  // Binds data/diff to slices of arenas starting at the given offsets (count() floats each).
  void bind(std::shared_ptr<Storage> data, size_t data_offset, std::shared_ptr<Storage> diff,
            size_t diff_offset);

  void set_data(float value);
  void zero_diff();
  // Copies values (and optionally diffs) from a tensor of the same count.
  void copy_from(const Tensor& source, bool copy_diff = false);

  // Sum of squares of the host diff.
  double sumsq_diff() const;

  void to_proto(BlobProto* proto, bool write_diff = false) const;
  // Loads values; when `reshape` is false the proto's shape must match exactly.
  void from_proto(const BlobProto& proto, bool reshape = true);

 private:
  Storage& data_storage() const {
    if (!data_) ensure(data_, data_offset_, data_owned_);
    return *data_;
  }
  Storage& diff_storage() const {
    if (!diff_) ensure(diff_, diff_offset_, diff_owned_);
    return *diff_;
  }
  static const float* read(const Storage& s, size_t offset, const Device& device) {
    return (device.type == DeviceType::CPU ? s.host() : s.device(device.index)) + offset;
  }
  static float* write(Storage& s, size_t offset, const Device& device) {
    return (device.type == DeviceType::CPU ? s.mutable_host() : s.mutable_device(device.index)) + offset;
  }
  void ensure(std::shared_ptr<Storage>& storage, size_t& offset, bool& owned) const;

  std::vector<int> shape_;
  int64_t count_ = 0;
  mutable std::shared_ptr<Storage> data_;
  mutable std::shared_ptr<Storage> diff_;
  mutable size_t data_offset_ = 0;
  mutable size_t diff_offset_ = 0;
  mutable bool data_owned_ = true;  // false when bound to an arena or shared
  mutable bool diff_owned_ = true;
};

}  // namespace dsg
