// CUDA device discovery (built only when the CUDA toolkit is found).
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "runtime/device.hpp"
#include "runtime/log.hpp"

namespace dsg {
namespace {

std::string version_text(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

// "runtime 13.0, driver 13.0" (the driver part says "none" without a driver).
std::string versions() {
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  return "CUDA runtime " + version_text(runtime) + " (linked statically), driver " +
         (driver > 0 ? "for CUDA " + version_text(driver) : std::string("none found"));
}

}  // namespace

int cuda_device_count(std::string* reason) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (reason) *reason = std::string("no CUDA device: ") + cudaGetErrorString(status) + " (" + versions() + ")";
    return 0;
  }
  if (count == 0 && reason) *reason = "no CUDA device found (" + versions() + ")";
  if (count > 0) {
    // Once per process: what the CUDA code runs on.
    static std::once_flag once;
    std::call_once(once, [count] {
      cudaDeviceProp p{};
      std::string first;
      if (cudaGetDeviceProperties(&p, 0) == cudaSuccess)
        first = std::string(", device 0: ") + p.name + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) +
                ", " + std::to_string(p.multiProcessorCount) + " SMs, " +
                std::to_string(p.totalGlobalMem >> 20) + " MiB)";
      log_info(versions() + ", " + std::to_string(count) + " device(s)" + first);
    });
  }
  return count;
}

}  // namespace dsg
