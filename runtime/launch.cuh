// The CUDA side of runtime/launch.hpp: the grid-stride kernel that runs a body, and
// DSG_CUDA_KERNEL(Body), the explicit instantiation a .cu file writes for each body type it
// launches on a device. Include from .cu files only.
#pragma once
#include <cuda_runtime.h>

#include "runtime/cuda_check.cuh"
#include "runtime/launch.hpp"

namespace dsg {
namespace detail {

constexpr int kLaunchThreads = 256;

template <class Body>
__global__ void launch_kernel(int64_t n, Body body) {
  const int64_t stride = int64_t(blockDim.x) * gridDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) body(i);
}

}  // namespace detail

template <class Body>
void launch_cuda(int ordinal, int64_t n, const Body& body) {
  if (n <= 0) return;
  DSG_CUDA_CHECK(cudaSetDevice(ordinal));
  const int64_t blocks = (n + detail::kLaunchThreads - 1) / detail::kLaunchThreads;
  detail::launch_kernel<Body><<<unsigned(blocks > 65535 ? 65535 : blocks), detail::kLaunchThreads>>>(n, body);
  DSG_CUDA_LAUNCHED();
}

}  // namespace dsg

// One explicit instantiation of launch_cuda for `Body` (a type name; qualify it if it is not in
// namespace dsg). Write it at file scope of a .cu file.
#define DSG_CUDA_KERNEL(...) template void ::dsg::launch_cuda<__VA_ARGS__>(int, int64_t, const __VA_ARGS__&);
