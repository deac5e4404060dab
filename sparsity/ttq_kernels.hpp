// TTQ's per-weight work on the device the weights live on (sparsity/ttq_quantizer.cpp): the
// largest magnitude of the latent weights (per chunk, then over the chunks; max is exact, so the
// result equals the host's) and the ternary codes against delta = threshold * max, read from device
// memory so that no value comes back to the host. launch() bodies (runtime/launch.hpp); the CUDA
// instantiations are in sparsity/ttq_quantizer.cu.
#pragma once
#include <cstdint>

#include "runtime/launch.hpp"

namespace dsg {

// part[c] = max |x[i]| over chunk c (i in [c * chunk, min(n, (c + 1) * chunk))), 0 when empty.
struct TtqAbsMaxChunks {
  const float* x;
  int64_t n, chunk;
  float* part;
  DSG_HOST_DEVICE void operator()(int64_t c) const {
    float m = 0;
    const int64_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
    for (int64_t i = c * chunk; i < end; ++i) {
      const float a = x[i] < 0 ? -x[i] : x[i];
      m = m < a ? a : m;  // std::max(m, a): NaN leaves m
    }
    part[c] = m;
  }
};

// out[0] = max of part[0 .. parts) (run with n = 1).
struct TtqMaxOfParts {
  const float* part;
  int64_t parts;
  float* out;
  DSG_HOST_DEVICE void operator()(int64_t) const {
    float m = 0;
    for (int64_t c = 0; c < parts; ++c) m = m < part[c] ? part[c] : m;
    out[0] = m;
  }
};

// codes[i] = 1 (w > delta), 2 (w < -delta), 0 otherwise, with delta = threshold * max[0].
struct TtqCodes {
  const float* w;
  const float* max;
  float threshold;
  uint8_t* codes;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const float delta = threshold * max[0];
    codes[i] = w[i] > delta ? uint8_t(1) : w[i] < -delta ? uint8_t(2) : uint8_t(0);
  }
};

}  // namespace dsg
