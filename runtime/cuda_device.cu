// CUDA device discovery (built only when the CUDA toolkit is found).
#include <cuda_runtime.h>

#include "runtime/device.hpp"

namespace dsg {

int cuda_device_count(std::string* reason) {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    if (reason) *reason = std::string("no CUDA device: ") + cudaGetErrorString(status);
    return 0;
  }
  if (count == 0 && reason) *reason = "no CUDA device found";
  return count;
}

}  // namespace dsg
