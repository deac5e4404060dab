#include "runtime/storage.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "runtime/error.hpp"

namespace dsg {

// The build's own backend: the CUDA one (runtime/cuda_backend.cu) or none.
DeviceBackend* builtin_device_backend();

#ifndef DSG_WITH_CUDA
DeviceBackend* builtin_device_backend() { return nullptr; }
#endif

namespace {

std::atomic<DeviceBackend*> installed{nullptr};

struct Counters {
  std::atomic<uint64_t> to_device_count{0}, to_device_bytes{0}, to_host_count{0}, to_host_bytes{0}, scalar_reads{0};
};
Counters& counters() {
  static Counters c;
  return c;
}

}  // namespace

DeviceBackend& device_backend() {
  if (DeviceBackend* b = installed.load()) return *b;
  if (DeviceBackend* b = builtin_device_backend()) return *b;
  throw Error("device memory requested, but this build has no CUDA backend",
              "configure on a machine with the CUDA toolkit (nvcc) and DSG_ENABLE_CUDA=ON, or use device cpu");
}

DeviceBackend* set_device_backend(DeviceBackend* backend) { return installed.exchange(backend); }

TransferStats transfer_stats() {
  Counters& c = counters();
  TransferStats s;
  s.to_device_count = c.to_device_count.load();
  s.to_device_bytes = c.to_device_bytes.load();
  s.to_host_count = c.to_host_count.load();
  s.to_host_bytes = c.to_host_bytes.load();
  s.scalar_reads = c.scalar_reads.load();
  return s;
}

void reset_transfer_stats() {
  Counters& c = counters();
  c.to_device_count = 0;
  c.to_device_bytes = 0;
  c.to_host_count = 0;
  c.to_host_bytes = 0;
  c.scalar_reads = 0;
}

void record_transfer(bool to_device, size_t bytes) {
  Counters& c = counters();
  if (to_device) {
    ++c.to_device_count;
    c.to_device_bytes += bytes;
  } else {
    ++c.to_host_count;
    c.to_host_bytes += bytes;
  }
}

void record_scalar_read() { ++counters().scalar_reads; }

const char* head_name(Storage::Head head) {
  static const char* const names[] = {"uninitialized", "host", "device", "synced"};
  static_assert(sizeof(names) / sizeof(names[0]) == size_t(Storage::Head::kSynced) + 1, "one name per head");
  return names[size_t(head)];
}

Storage::Storage(size_t count, size_t element_bytes) : count_(count), bytes_(count * element_bytes) {
  size_t bytes = ((bytes_ + 63) / 64) * 64;
  if (bytes == 0) bytes = 64;
  host_ = std::aligned_alloc(64, bytes);
  if (!host_) throw Error(strfmt("out of memory allocating %zu bytes", bytes));
  std::memset(host_, 0, bytes);
}

Storage::~Storage() {
  std::free(host_);
  if (device_) backend_->release(ordinal_, device_);
}

void Storage::to_host() const {
  backend_->copy_to_host(ordinal_, host_, device_, bytes_);
  record_transfer(false, bytes_);
  head_ = Head::kSynced;
}

void Storage::to_device(int ordinal) const {
  if (!device_) {
    DeviceBackend& backend = device_backend();
    backend.check_device(ordinal);
    device_ = backend.allocate(ordinal, bytes_ ? bytes_ : 1);
    backend_ = &backend;
    ordinal_ = ordinal;
    if (head_ == Head::kUninitialized) {
      backend.zero(ordinal, device_, bytes_);
      head_ = Head::kDevice;
      return;
    }
  } else if (ordinal != ordinal_) {
    throw Error(strfmt("a buffer on device %d was asked for on device %d", ordinal_, ordinal),
                "copy tensors between devices explicitly");
  }
  if (head_ == Head::kHost) {
    backend_->copy_to_device(ordinal_, device_, host_, bytes_);
    record_transfer(true, bytes_);
    head_ = Head::kSynced;
  } else if (head_ == Head::kUninitialized) {
    backend_->zero(ordinal_, device_, bytes_);
    head_ = Head::kDevice;
  }
}

const void* Storage::device_bytes(int ordinal) const {
  if (head_ != Head::kDevice && head_ != Head::kSynced) to_device(ordinal);
  else if (ordinal != ordinal_) to_device(ordinal);
  return device_;
}

void* Storage::mutable_device_bytes(int ordinal) {
  device_bytes(ordinal);
  head_ = Head::kDevice;
  return device_;
}

}  // namespace dsg
