#include "runtime/tensor.hpp"

#include <cmath>
#include <cstring>

#include "dsg.pb.h"
#include "runtime/error.hpp"
#include "runtime/ops.hpp"

namespace dsg {

void Tensor::reshape(const std::vector<int>& shape) {
  int64_t count = 1;
  for (int d : shape) {
    DSG_CHECK(d >= 0, "negative dimension in shape " + [&] {
      std::string s;
      for (int v : shape) s += std::to_string(v) + " ";
      return s;
    }());
    count *= d;
  }
  shape_ = shape;
  count_ = count;
  auto check_capacity = [&](std::shared_ptr<Storage>& storage, size_t offset, bool owned) {
    if (!storage) return;
    if (offset + static_cast<size_t>(count) <= storage->count()) return;
    if (!owned) throw Error("cannot grow a tensor that views shared or arena storage to shape " + shape_string());
    storage.reset();  // reallocated lazily
  };
  check_capacity(data_, data_offset_, data_owned_);
  check_capacity(diff_, diff_offset_, diff_owned_);
}

int64_t Tensor::count(int start, int end) const {
  int64_t c = 1;
  for (int i = start; i < end; ++i) c *= shape_[i];
  return c;
}

int Tensor::canonical_axis(int axis) const {
  int n = num_axes();
  if (axis < -n || axis >= n)
    throw Error(strfmt("axis %d out of range for a tensor of shape %s", axis, shape_string().c_str()));
  return axis < 0 ? axis + n : axis;
}

std::string Tensor::shape_string() const {
  std::string s = "(";
  for (size_t i = 0; i < shape_.size(); ++i) s += (i ? "," : "") + std::to_string(shape_[i]);
  return s + ")";
}

void Tensor::ensure(std::shared_ptr<Storage>& storage, size_t& offset, bool& owned) const {
  if (storage) return;
  storage = std::make_shared<Storage>(static_cast<size_t>(count_));
  offset = 0;
  owned = true;
}

void Tensor::share_data(const Tensor& other) {
  DSG_CHECK(other.count() == count_, "share_data: count mismatch " + shape_string() + " vs " + other.shape_string());
  other.data_storage();
  data_ = other.data_;
  data_offset_ = other.data_offset_;
  data_owned_ = false;
}

void Tensor::share_diff(const Tensor& other) {
  DSG_CHECK(other.count() == count_, "share_diff: count mismatch " + shape_string() + " vs " + other.shape_string());
  other.diff_storage();
  diff_ = other.diff_;
  diff_offset_ = other.diff_offset_;
  diff_owned_ = false;
}

void Tensor::bind(std::shared_ptr<Storage> data, size_t data_offset, std::shared_ptr<Storage> diff,
                  size_t diff_offset) {
  DSG_CHECK(data_offset + count_ <= data->count() && diff_offset + count_ <= diff->count(),
            "bind: arena slice out of range");
  data_ = std::move(data);
  diff_ = std::move(diff);
  data_offset_ = data_offset;
  diff_offset_ = diff_offset;
  data_owned_ = diff_owned_ = false;
}

void Tensor::set_data(float value) {
  float* d = mutable_data();
  for (int64_t i = 0; i < count_; ++i) d[i] = value;
}

void Tensor::zero_diff() { std::memset(mutable_diff(), 0, sizeof(float) * count_); }

void Tensor::copy_from(const Tensor& source, bool copy_diff) {
  DSG_CHECK(source.count() == count_, "copy_from: count mismatch " + shape_string() + " vs " + source.shape_string());
  std::memcpy(mutable_data(), source.data(), sizeof(float) * count_);
  if (copy_diff) std::memcpy(mutable_diff(), source.diff(), sizeof(float) * count_);
}

double Tensor::sumsq_diff() const { return cpu_ops().sumsq(count_, diff()); }

void Tensor::to_proto(BlobProto* proto, bool write_diff) const {
  proto->Clear();
  for (int d : shape_) proto->mutable_shape()->add_dim(d);
  const float* d = data();
  proto->mutable_data()->Reserve(static_cast<int>(count_));
  for (int64_t i = 0; i < count_; ++i) proto->add_data(d[i]);
  if (write_diff) {
    const float* g = diff();
    for (int64_t i = 0; i < count_; ++i) proto->add_diff(g[i]);
  }
}

void Tensor::from_proto(const BlobProto& proto, bool reshape_to_proto) {
  std::vector<int> shape;
  if (proto.has_shape()) {
    for (auto d : proto.shape().dim()) shape.push_back(static_cast<int>(d));
  } else {  // Caffe's legacy 4-d fields
    shape = {proto.num(), proto.channels(), proto.height(), proto.width()};
  }
  if (reshape_to_proto) {
    reshape(shape);
  } else if (shape != shape_) {
    Tensor t(shape);
    throw Error("stored blob has shape " + t.shape_string() + " but the layer expects " + shape_string());
  }
  DSG_CHECK(proto.data_size() == count_,
            strfmt("stored blob holds %d values but shape %s needs %lld", proto.data_size(),
                   shape_string().c_str(), static_cast<long long>(count_)));
  float* d = mutable_data();
  for (int64_t i = 0; i < count_; ++i) d[i] = proto.data(static_cast<int>(i));
  if (proto.diff_size() == count_) {
    float* g = mutable_diff();
    for (int64_t i = 0; i < count_; ++i) g[i] = proto.diff(static_cast<int>(i));
  }
}

}  // namespace dsg
