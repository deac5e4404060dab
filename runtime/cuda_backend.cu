// The CUDA DeviceBackend: device memory through cudaMalloc / cudaMemcpy on the default stream.
// Built only when the CUDA toolkit is found; it is the build's own backend (runtime/storage.hpp).
#include <cuda_runtime.h>

#include "runtime/cuda_check.cuh"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/storage.hpp"

namespace dsg {
namespace {

class CudaBackend final : public DeviceBackend {
 public:
  const char* name() const override { return "cuda"; }

  void check_device(int ordinal) const override { require_cuda_device(ordinal); }

  void* allocate(int ordinal, size_t bytes) override {
    DSG_CUDA_CHECK(cudaSetDevice(ordinal));
    void* p = nullptr;
    DSG_CUDA_CHECK(cudaMalloc(&p, bytes));
    return p;
  }

  void release(int ordinal, void* pointer) noexcept override {
    if (cudaSetDevice(ordinal) == cudaSuccess) cudaFree(pointer);
  }

  void copy_to_device(int ordinal, void* device_dst, const void* host_src, size_t bytes) override {
    DSG_CUDA_CHECK(cudaSetDevice(ordinal));
    DSG_CUDA_CHECK(cudaMemcpy(device_dst, host_src, bytes, cudaMemcpyHostToDevice));
  }

  void copy_to_host(int ordinal, void* host_dst, const void* device_src, size_t bytes) override {
    DSG_CUDA_CHECK(cudaSetDevice(ordinal));
    DSG_CUDA_CHECK(cudaMemcpy(host_dst, device_src, bytes, cudaMemcpyDeviceToHost));
  }

  void zero(int ordinal, void* device_dst, size_t bytes) override {
    DSG_CUDA_CHECK(cudaSetDevice(ordinal));
    DSG_CUDA_CHECK(cudaMemset(device_dst, 0, bytes));
  }
};

}  // namespace

DeviceBackend* builtin_device_backend() {
  static CudaBackend backend;
  return &backend;
}

}  // namespace dsg
