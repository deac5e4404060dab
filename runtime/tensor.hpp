// Tensor: an N-d float array with a value buffer (data) and a gradient buffer (diff), Caffe's
// Blob. Buffers are Storage objects that may be shared: a tensor can view a slice of a larger
// arena (the Net keeps all learnable parameters in one contiguous arena), or share another
// tensor's buffer (in-place layers, weight sharing between TRAIN and TEST nets).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dsg {

class BlobProto;

// A 64-byte aligned, zero-initialised float buffer on the host.
class Storage {
 public:
  explicit Storage(size_t count);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data() { return data_; }
  const float* data() const { return data_; }
  size_t count() const { return count_; }

 private:
  float* data_ = nullptr;
  size_t count_ = 0;
};

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

  const float* data() const { return data_ptr(); }
  const float* diff() const { return diff_ptr(); }
  float* mutable_data() { return data_ptr(); }
  float* mutable_diff() { return diff_ptr(); }

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

  double sumsq_data() const;
  double sumsq_diff() const;
  double asum_data() const;

  void to_proto(BlobProto* proto, bool write_diff = false) const;
  // Loads values; when `reshape` is false the proto's shape must match exactly.
  void from_proto(const BlobProto& proto, bool reshape = true);

 private:
  float* data_ptr() const;
  float* diff_ptr() const;
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
