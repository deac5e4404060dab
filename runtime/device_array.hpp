// DeviceArray<T>: a typed scratch or state buffer (indices, masks, argmax positions, per-channel
// statistics) that lives wherever the layer runs: on(device) gives its memory on that device,
// moving it across only when the other side wrote last (runtime/storage.hpp counts every move).
// IndexList is a DeviceArray<int> filled from the host: set() uploads lazily, once per change, so a
// structure chosen on the host (kept channels at a prune step) costs one counted transfer, not
// one per iteration.
#pragma once
#include <algorithm>
#include <memory>
#include <vector>

#include "runtime/device.hpp"
#include "runtime/storage.hpp"

namespace dsg {

template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n) { resize(n); }

  // Keeps the buffer when it is already large enough (contents then undefined for new sizes).
  void resize(size_t n) {
    size_ = n;
    if (!storage_ || storage_->count() < std::max<size_t>(n, 1)) storage_ = std::make_unique<Storage>(std::max<size_t>(n, 1), sizeof(T));
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  const T* on(const Device& d) const {
    return d.type == DeviceType::CPU ? storage_->template host<T>() : storage_->template device<T>(d.index);
  }
  T* mutable_on(const Device& d) {
    return d.type == DeviceType::CPU ? storage_->template mutable_host<T>() : storage_->template mutable_device<T>(d.index);
  }
  // Host access (brings the host copy up to date).
  const T* host() const { return on(Device::cpu()); }
  T* mutable_host() { return mutable_on(Device::cpu()); }

 private:
  std::unique_ptr<Storage> storage_;
  size_t size_ = 0;
};

class IndexList {
 public:
  IndexList() { array_.resize(0); }
  // Replaces the list; the device copy is refreshed on the next on(device).
  void set(const std::vector<int>& values) {
    if (values == values_ && array_.size() == values.size()) return;
    values_ = values;
    array_.resize(values.size());
    std::copy(values.begin(), values.end(), array_.mutable_host());
  }
  const std::vector<int>& values() const { return values_; }
  int size() const { return int(values_.size()); }
  bool empty() const { return values_.empty(); }
  const int* on(const Device& d) const { return array_.on(d); }

 private:
  std::vector<int> values_;
  DeviceArray<int> array_;
};

}  // namespace dsg
