// The Softmax layer's backward kernel (a runtime/launch.hpp body); instantiated for CUDA in
// layers/softmax.cu. The forward is DeviceOps::softmax.
#pragma once
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg {

// Body index p: softmax position (o, i) of y [outer, C, inner]; dx = y (dy - sum_c dy y), the sum
// in float over c in order, as the CPU path.
struct SoftmaxBackward {
  int64_t C, inner;
  const float* y;
  const float* dy;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t p) const {
    const int64_t base = (p / inner) * C * inner + p % inner;
    float d = 0;
    for (int64_t c = 0; c < C; ++c) d += dy[base + c * inner] * y[base + c * inner];
    for (int64_t c = 0; c < C; ++c) dx[base + c * inner] = y[base + c * inner] * (dy[base + c * inner] - d);
  }
};

}  // namespace dsg
