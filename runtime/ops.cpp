#include "runtime/ops.hpp"

#include <atomic>

#include "runtime/error.hpp"
#include "runtime/launch.hpp"

namespace dsg {

#ifdef DSG_WITH_CUDA
// The CUDA ops of device `ordinal` (runtime/cuda_ops.cu); throws when it cannot be used.
const DeviceOps& cuda_ops(int ordinal);
#endif

void throw_no_cuda_backend(const char* what) {
  throw Error(std::string(what) + " was asked to run on a CUDA device, but this build has no CUDA backend",
              "configure on a machine with the CUDA toolkit (nvcc) and DSG_ENABLE_CUDA=ON, or use device cpu");
}

namespace {
std::atomic<bool> simulated{false};
}  // namespace

bool device_simulated() { return simulated.load(std::memory_order_relaxed); }
void set_device_simulated(bool on) { simulated.store(on); }

const DeviceOps& ops_for(const Device& device) {
  if (device.type == DeviceType::CPU || device_simulated()) return cpu_ops();
#ifdef DSG_WITH_CUDA
  return cuda_ops(device.index);
#else
  throw Error("device " + device.name() + " requested, but this build has no CUDA backend",
              "configure on a machine with the CUDA toolkit (nvcc) and DSG_ENABLE_CUDA=ON, or use device cpu");
#endif
}

}  // namespace dsg
