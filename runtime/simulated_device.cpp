#include "runtime/simulated_device.hpp"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>

#include "runtime/error.hpp"
#include "runtime/ops.hpp"

namespace dsg {

class SimulatedDevice::Backend : public DeviceBackend {
 public:
  const char* name() const override { return "simulated"; }
  void check_device(int ordinal) const override {
    if (ordinal != 0) throw Error(strfmt("the simulated device has ordinal 0 only, not %d", ordinal));
  }
  void* allocate(int, size_t bytes) override {
    void* p = std::malloc(bytes ? bytes : 1);
    if (!p) throw Error(strfmt("simulated device: out of memory allocating %zu bytes", bytes));
    std::lock_guard<std::mutex> lock(mutex_);
    live_.insert(p);
    return p;
  }
  void release(int, void* p) noexcept override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_.erase(p);
    }
    std::free(p);
  }
  void copy_to_device(int, void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_to_host(int, void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void zero(int, void* dst, size_t bytes) override { std::memset(dst, 0, bytes); }
  size_t live() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return live_.size();
  }

 private:
  mutable std::mutex mutex_;
  std::set<void*> live_;
};

namespace {
std::atomic<bool> one_alive{false};
}  // namespace

SimulatedDevice::SimulatedDevice() {
  if (one_alive.exchange(true)) throw Error("a SimulatedDevice is already alive");
  backend_ = new Backend;
  previous_ = set_device_backend(backend_);
  set_device_simulated(true);
}

SimulatedDevice::~SimulatedDevice() {
  set_device_simulated(false);
  set_device_backend(previous_);
  // Memory still allocated is leaked rather than freed under a backend that is gone.
  if (backend_->live() == 0) delete backend_;
  one_alive = false;
}

size_t SimulatedDevice::live_allocations() const { return backend_->live(); }

}  // namespace dsg
