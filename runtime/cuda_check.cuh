// Checks of CUDA runtime and cuBLAS calls: a failure throws dsg::Error naming the call, the source
// location and CUDA's error string, with a hint. For runtime/*.cu only.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "runtime/cuda_blas.cuh"
#include "runtime/error.hpp"

namespace dsg {

[[noreturn]] inline void cuda_fail(const char* call, const char* file, int line, const char* detail) {
  throw Error(strfmt("CUDA call failed at %s:%d: %s: %s", file, line, call, detail),
              "check that a CUDA device is present and free (nvidia-smi) and that the driver supports CUDA 13");
}

inline void cuda_check(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess) cuda_fail(call, file, line, cudaGetErrorString(status));
}

inline void cublas_check(cublasStatus_t status, const char* call, const char* file, int line) {
  if (status != CUBLAS_STATUS_SUCCESS) cuda_fail(call, file, line, cublas_api().status_string(status));
}

}  // namespace dsg

#define DSG_CUDA_CHECK(call) ::dsg::cuda_check((call), #call, __FILE__, __LINE__)
#define DSG_CUBLAS_CHECK(call) ::dsg::cublas_check((call), #call, __FILE__, __LINE__)
// After a kernel launch: reports launch errors (bad configuration, no device) at the launch site.
#define DSG_CUDA_LAUNCHED() ::dsg::cuda_check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)
