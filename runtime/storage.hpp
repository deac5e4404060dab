// Storage: one buffer with a host copy and a lazily allocated device copy (Caffe's SyncedMemory).
// The head says where the newest values are; an accessor copies across only when the copy it
// returns is stale, so a buffer used on one side only never moves. Every copy is counted in
// process-wide transfer statistics (tests, and a check that an iteration stays on the device).
//
// Device memory comes from the registered DeviceBackend: the CUDA backend when this build has one
// (runtime/cuda_backend.cu), or one a test installs (set_device_backend). Without a backend,
// asking for device memory throws dsg::Error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace dsg {

// Where device memory comes from. Pointers it returns are opaque to the host (never dereferenced
// outside the backend and the ops of the same device).
class DeviceBackend {
 public:
  virtual ~DeviceBackend() = default;
  virtual const char* name() const = 0;
  // Throws dsg::Error naming the reason when device `ordinal` cannot be used.
  virtual void check_device(int ordinal) const = 0;
  virtual void* allocate(int ordinal, size_t bytes) = 0;
  virtual void release(int ordinal, void* pointer) noexcept = 0;
  virtual void copy_to_device(int ordinal, void* device_dst, const void* host_src, size_t bytes) = 0;
  virtual void copy_to_host(int ordinal, void* host_dst, const void* device_src, size_t bytes) = 0;
  virtual void zero(int ordinal, void* device_dst, size_t bytes) = 0;
};

// The backend in use: a test's, else the CUDA backend of this build. Throws dsg::Error ("this build
// has no CUDA backend") when there is none.
DeviceBackend& device_backend();
// Installs `backend` (nullptr restores the build's own) and returns the previous one installed by
// this function (nullptr when it was the build's own). Storage allocated under one backend must be
// freed before another is installed.
DeviceBackend* set_device_backend(DeviceBackend* backend);

// Copies between host and device since the last reset (process-wide, all threads). scalar_reads
// counts single values read back by reductions (a displayed loss), which an iteration may make.
struct TransferStats {
  uint64_t to_device_count = 0, to_device_bytes = 0;
  uint64_t to_host_count = 0, to_host_bytes = 0;
  uint64_t scalar_reads = 0;
};
TransferStats transfer_stats();
void reset_transfer_stats();
// Called by backends and ops for copies that do not go through a Storage.
void record_transfer(bool to_device, size_t bytes);
void record_scalar_read();

class Storage {
 public:
  // UNINITIALIZED: nothing written yet (the host copy holds zeros); HOST / DEVICE: that copy is the
  // newest, the other is stale; SYNCED: both hold the same values.
  enum class Head { kUninitialized, kHost, kDevice, kSynced };

  // `count` elements of `element_bytes` each (floats unless told); the host copy is 64-byte
  // aligned and zeroed.
  explicit Storage(size_t count, size_t element_bytes = sizeof(float));
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  size_t count() const { return count_; }
  size_t bytes() const { return bytes_; }
  Head head() const { return head_; }
  // The ordinal of the device copy, or -1 before one is allocated.
  int device_ordinal() const { return ordinal_; }

  // Host copy, brought up to date first. mutable_host() makes the host the head.
  const void* host_bytes() const {
    if (head_ == Head::kDevice) to_host();
    else if (head_ == Head::kUninitialized) head_ = Head::kHost;
    return host_;
  }
  void* mutable_host_bytes() {
    if (head_ != Head::kHost) {
      if (head_ == Head::kDevice) to_host();
      head_ = Head::kHost;
    }
    return host_;
  }
  // Device copy on device `ordinal` (allocated on first use), brought up to date first.
  // mutable_device() makes the device the head. A buffer lives on one device only.
  const void* device_bytes(int ordinal) const;
  void* mutable_device_bytes(int ordinal);

  template <class T = float>
  const T* host() const { return static_cast<const T*>(host_bytes()); }
  template <class T = float>
  T* mutable_host() { return static_cast<T*>(mutable_host_bytes()); }
  template <class T = float>
  const T* device(int ordinal) const { return static_cast<const T*>(device_bytes(ordinal)); }
  template <class T = float>
  T* mutable_device(int ordinal) { return static_cast<T*>(mutable_device_bytes(ordinal)); }

  // The host floats for writing (mutable_host<float>()); kept for the arena code.
  float* data() { return mutable_host(); }
  const float* data() const { return host(); }

 private:
  void to_host() const;
  void to_device(int ordinal) const;

  void* host_ = nullptr;
  mutable void* device_ = nullptr;
  mutable int ordinal_ = -1;
  mutable Head head_ = Head::kUninitialized;
  mutable DeviceBackend* backend_ = nullptr;  // the backend that allocated device_
  size_t count_ = 0;
  size_t bytes_ = 0;
};

const char* head_name(Storage::Head head);

}  // namespace dsg
