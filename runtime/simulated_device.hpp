// SimulatedDevice: a CUDA device stand-in for tests on machines without a GPU. While one is alive,
// device memory (Storage, DeviceArray) comes from a backend that allocates it on the host, apart
// from the host copies; ops_for(cuda:0) is the CPU ops and launch() runs bodies on the host
// (runtime/ops.hpp, runtime/launch.hpp). Device code therefore runs with real Storage heads and
// counted transfers (runtime/storage.hpp): a host accessor used where the device copy is the head
// is a counted copy, as it would be on a GPU, so the transfer discipline of layers, the solver and
// the sparsity runtime can be checked on every machine. One at a time; buffers allocated under it
// must be freed before it ends (create the nets inside its scope).
#pragma once
#include <cstddef>

#include "runtime/storage.hpp"

namespace dsg {

class SimulatedDevice {
 public:
  SimulatedDevice();
  ~SimulatedDevice();
  SimulatedDevice(const SimulatedDevice&) = delete;
  SimulatedDevice& operator=(const SimulatedDevice&) = delete;
  // Device allocations still alive.
  size_t live_allocations() const;

 private:
  class Backend;
  Backend* backend_;
  DeviceBackend* previous_;
};

}  // namespace dsg
