// The device a computation runs on, passed explicitly (there is no global mode).
#pragma once
#include <string>

namespace dsg {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;  // GPU ordinal for CUDA

  static Device cpu() { return Device{}; }
  static Device cuda(int index = 0) { return Device{DeviceType::CUDA, index}; }
  std::string name() const;
};

// Parses "cpu" or "cuda" / "cuda:N"; throws dsg::Error otherwise.
Device parse_device(const std::string& text);

// Number of usable CUDA devices; 0 when the CUDA backend was not built or no driver/device is
// present. `reason` receives a human-readable explanation when 0 is returned.
int cuda_device_count(std::string* reason = nullptr);

// Throws dsg::Error (with the reason from cuda_device_count and a hint) unless CUDA device
// `ordinal` exists.
void require_cuda_device(int ordinal);

// Whether this build has the CUDA backend (nvcc was found at configure time). Layers with CUDA
// kernels answer supports(CUDA, ...) with it; a device may still be missing at run time.
bool cuda_built();

}  // namespace dsg
