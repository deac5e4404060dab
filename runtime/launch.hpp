// Element kernels written once for the host and the device. A kernel is a functor whose
// `DSG_HOST_DEVICE void operator()(int64_t i) const` computes element (or row, or channel) i and
// writes only what belongs to i; it holds its sizes and pointers by value. launch(device, n, body)
// runs body(i) for every i < n: on the host as a parallel loop, on a CUDA device as a grid-stride
// kernel. The same body therefore runs in the CPU tests (which check its index arithmetic on every
// machine) and on the GPU.
//
// CUDA launches are compiled by nvcc: each body type used on a device needs one explicit
// instantiation in a .cu file of its folder, DSG_CUDA_KERNEL(Body) from runtime/launch.cuh. A
// missing one is a link error in every CUDA build (CI compiles them); a build without CUDA throws
// "no CUDA backend" instead.
//
// Body headers must compile with nvcc: standard headers and runtime/launch.hpp only (no
// protobuf, no spdlog).
#pragma once
#include <cstdint>

#include "runtime/device.hpp"
#include "runtime/parallel.hpp"

#if defined(__CUDACC__)
#define DSG_HOST_DEVICE __host__ __device__
#else
#define DSG_HOST_DEVICE
#endif

namespace dsg {

// Throws dsg::Error: this build has no CUDA backend (used by CPU-only builds of launch_cuda).
[[noreturn]] void throw_no_cuda_backend(const char* what);

// body(i) for i in [0, n) on the host, in parallel chunks of at least `grain` items.
template <class Body>
void launch_host(int64_t n, const Body& body, int64_t grain = kParallelGrain) {
  if (n <= 0) return;
  parallel_for(n, grain, [&body](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) body(i);
  });
}

// body(i) for i in [0, n) on CUDA device `ordinal`, asynchronously on the device's stream (in
// order with every other operation there). Defined in runtime/launch.cuh; instantiated per body.
template <class Body>
void launch_cuda(int ordinal, int64_t n, const Body& body);
#if !defined(DSG_WITH_CUDA)
template <class Body>
void launch_cuda(int, int64_t, const Body&) {
  throw_no_cuda_backend("a device kernel");
}
#endif

// Whether a simulated CUDA device is on (tests; runtime/ops.hpp): its bodies run on the host.
bool device_simulated();

// body(i) for i in [0, n) on `device`.
template <class Body>
void launch(const Device& device, int64_t n, const Body& body, int64_t grain = kParallelGrain) {
  if (device.type == DeviceType::CPU || device_simulated()) launch_host(n, body, grain);
  else launch_cuda(device.index, n, body);
}

}  // namespace dsg
