#include "runtime/device.hpp"

#include "runtime/error.hpp"

namespace dsg {

std::string Device::name() const {
  return type == DeviceType::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Device parse_device(const std::string& text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda" || text == "gpu") return Device::cuda(0);
  if (text.rfind("cuda:", 0) == 0) {
    try {
      return Device::cuda(std::stoi(text.substr(5)));
    } catch (const std::exception&) {
    }
  }
  throw Error("unknown device '" + text + "'", "use cpu, cuda or cuda:N");
}

void require_cuda_device(int ordinal) {
  std::string reason;
  const int count = cuda_device_count(&reason);
  if (count == 0) throw Error(reason, "run on a machine with an NVIDIA GPU, or use device cpu");
  if (ordinal < 0 || ordinal >= count)
    throw Error(strfmt("CUDA device %d requested, but this machine has %d", ordinal, count),
                "use cuda:N with N below the device count");
}

bool cuda_built() {
#ifdef DSG_WITH_CUDA
  return true;
#else
  return false;
#endif
}

#ifndef DSG_WITH_CUDA
int cuda_device_count(std::string* reason) {
  if (reason) *reason = "this build has no CUDA backend (nvcc was not found at configure time)";
  return 0;
}
#endif

}  // namespace dsg
