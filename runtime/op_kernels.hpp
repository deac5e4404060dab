// The element kernels of the CUDA DeviceOps (runtime/cuda_kernels.cu) as runtime/launch.hpp
// bodies: each computes item i (an element, a row position, a column, a block of four random
// numbers) and writes only what belongs to i. runtime/cuda_kernels.cu runs them in its grid-stride
// kernel; tests/runtime/test_op_kernels.cpp runs them on the host with launch_host against
// cpu_ops(), so their index arithmetic is checked on every machine.
//
// The arithmetic is the CUDA kernels' own, operation for operation (fmaxf/fminf, expf, sqrtf: on
// the host the C library's, on the device CUDA's; expf may differ from the device's in the last
// bits). The reductions (softmax_loss, reduce, sum_by_code) use shared memory and block trees and
// stay CUDA kernels in runtime/cuda_kernels.cu.
//
// Compiles with nvcc: standard headers, runtime/launch.hpp and runtime/rng.hpp only.
#pragma once
#include <math.h>

#include <cmath>
#include <cstdint>

#include "runtime/launch.hpp"
#include "runtime/rng.hpp"

namespace dsg {
namespace opk {

// x[i] = value.
struct Fill {
  float value;
  float* x;
  DSG_HOST_DEVICE void operator()(int64_t i) const { x[i] = value; }
};

// y[i] += a x[i].
struct Axpy {
  float a;
  const float* x;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const { y[i] += a * x[i]; }
};

// x[i] *= a.
struct Scale {
  float a;
  float* x;
  DSG_HOST_DEVICE void operator()(int64_t i) const { x[i] *= a; }
};

// Over i < rows * cols (dst packed): dst[r, c] = src[index[r], c], src rows ld apart.
struct GatherRows {
  int cols;
  const float* src;
  int ld;
  const int* index;
  float* dst;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t r = i / cols, c = i % cols;
    dst[i] = src[int64_t(index[r]) * ld + c];
  }
};

// Over i < rows * cols (src packed): dst[index[r], c] (+)= src[r, c], dst rows ld apart.
struct ScatterRows {
  int cols;
  const float* src;
  const int* index;
  float* dst;
  int ld;
  bool acc;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t r = i / cols, c = i % cols;
    float* d = dst + int64_t(index[r]) * ld + c;
    *d = acc ? *d + src[i] : src[i];
  }
};

// Over i < rows * cols (dst packed): dst[r, c] = src[r, index[c]], src rows ld apart.
struct GatherCols {
  int cols;
  const float* src;
  int ld;
  const int* index;
  float* dst;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t r = i / cols, c = i % cols;
    dst[i] = src[r * ld + index[c]];
  }
};

// Over i < rows * cols (src packed): dst[r, index[c]] (+)= src[r, c], dst rows ld apart.
struct ScatterCols {
  int cols;
  const float* src;
  const int* index;
  float* dst;
  int ld;
  bool acc;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t r = i / cols, c = i % cols;
    float* d = dst + r * ld + index[c];
    *d = acc ? *d + src[i] : src[i];
  }
};

// Over i < rows * cols: y[i] = b[i % cols].
struct BroadcastRows {
  int cols;
  const float* b;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const { y[i] = b[i % cols]; }
};

// Over columns c < cols: s[c] += the sum of x[r, c] over r, in row order (x packed).
struct ColumnSums {
  int rows, cols;
  const float* x;
  float* s;
  DSG_HOST_DEVICE void operator()(int64_t c) const {
    float acc = 0.0f;
    for (int64_t r = 0; r < rows; ++r) acc += x[r * cols + c];
    s[c] += acc;
  }
};

// y = fmaxf(x, 0) + slope fminf(x, 0).
struct ReluForward {
  float slope;
  const float* x;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    // std::max / std::min's comparisons (as the CPU ops), so a NaN input stays NaN (fmaxf would
    // turn it into 0 and hide a diverging run from the NaN check).
    const float v = x[i];
    y[i] = (v < 0.0f ? 0.0f : v) + slope * (0.0f < v ? 0.0f : v);
  }
};

// dx = dy (slope + (1 - slope) [y > 0]).
struct ReluBackward {
  float slope;
  const float* y;
  const float* dy;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const { dx[i] = dy[i] * (slope + (1.0f - slope) * float(y[i] > 0.0f)); }
};

// x[i] = mask[i] ? x[i] : 0.
struct ApplyMask {
  const uint8_t* mask;
  float* x;
  DSG_HOST_DEVICE void operator()(int64_t i) const { x[i] = mask[i] ? x[i] : 0.0f; }
};

// y[i] = table[codes[i]].
struct Lookup {
  const uint8_t* codes;
  const float* table;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const { y[i] = table[codes[i]]; }
};

// x[i] *= table[codes[i]].
struct ScaleByCode {
  const uint8_t* codes;
  const float* table;
  float* x;
  DSG_HOST_DEVICE void operator()(int64_t i) const { x[i] *= table[codes[i]]; }
};

// Over positions k < outer * inner of x, p [outer, C, inner]: p[k, :] = softmax of x[k, :].
struct Softmax {
  int64_t C, inner;
  const float* x;
  float* p;
  DSG_HOST_DEVICE void operator()(int64_t k) const {
    const int64_t base = (k / inner) * C * inner + k % inner;
    float mx = x[base];
    for (int64_t c = 1; c < C; ++c) mx = fmaxf(mx, x[base + c * inner]);
    float sum = 0.0f;
    for (int64_t c = 0; c < C; ++c) sum += (p[base + c * inner] = expf(x[base + c * inner] - mx));
    const float inv = 1.0f / sum;
    for (int64_t c = 0; c < C; ++c) p[base + c * inner] *= inv;
  }
};

// Over positions k < outer * inner: dx[k, c] = (p[k, c] - [c == label[k]]) top_diff[0] /
// normalizer[0], 0 where the label is ignored. top_diff and normalizer are memory of the device.
struct SoftmaxLossBackward {
  int64_t C, inner;
  const float* p;
  const float* label;
  bool has_ignore;
  int ignore_label;
  const float* top_diff;
  const float* normalizer;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t k) const {
    const float scale = float(double(top_diff[0]) / double(normalizer[0]));
    const int64_t base = (k / inner) * C * inner + k % inner;
    const bool ignored = has_ignore && label[k] == float(ignore_label);
    const int64_t target = int64_t(label[k]);
    for (int64_t c = 0; c < C; ++c)
      dx[base + c * inner] = ignored ? 0.0f : (p[base + c * inner] - (c == target ? 1.0f : 0.0f)) * scale;
  }
};

// Over blocks b < (n + 3) / 4: x[4 b + j] = lane j of counter_uniform4(seed, stream, b), j < 4, 4 b + j < n.
struct Uniform {
  int64_t n;
  uint64_t seed, stream;
  float* x;
  DSG_HOST_DEVICE void operator()(int64_t b) const {
    float u[4];
    counter_uniform4(seed, stream, uint64_t(b), u);
    for (int64_t j = 4 * b; j < n && j < 4 * b + 4; ++j) x[j] = u[j - 4 * b];
  }
};

// v = m v + rate g; g = v.
struct SgdStep {
  float m, rate;
  float* g;
  float* v;
  DSG_HOST_DEVICE void operator()(int64_t k) const {
    v[k] = m * v[k] + rate * g[k];
    g[k] = v[k];
  }
};

// v' = m v + rate g; g = (1 + m) v' - m v; v = v'.
struct NesterovStep {
  float m, rate;
  float* g;
  float* v;
  DSG_HOST_DEVICE void operator()(int64_t k) const {
    const float prev = v[k];
    v[k] = m * v[k] + rate * g[k];
    g[k] = (1 + m) * v[k] - m * prev;
  }
};

// m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; g = step_scale m / (sqrtf(v) + eps).
struct AdamStep {
  float b1, b2, eps, step_scale;
  float* g;
  float* m;
  float* v;
  DSG_HOST_DEVICE void operator()(int64_t k) const {
    m[k] = b1 * m[k] + (1 - b1) * g[k];
    v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
    g[k] = step_scale * m[k] / (sqrtf(v[k]) + eps);
  }
};

// g += decay w.
struct L2Decay {
  float decay;
  const float* w;
  float* g;
  DSG_HOST_DEVICE void operator()(int64_t k) const { g[k] += decay * w[k]; }
};

// g += decay sign(w).
struct L1Decay {
  float decay;
  const float* w;
  float* g;
  DSG_HOST_DEVICE void operator()(int64_t k) const { g[k] += decay * float((w[k] > 0) - (w[k] < 0)); }
};

// step = m v + rate (g + decay w); v = step; w -= step; g = 0.
struct SgdL2Update {
  float m, rate, decay;
  float* w;
  float* g;
  float* v;
  DSG_HOST_DEVICE void operator()(int64_t k) const {
    const float step = m * v[k] + rate * (g[k] + decay * w[k]);
    v[k] = step;
    w[k] -= step;
    g[k] = 0.0f;
  }
};

}  // namespace opk
}  // namespace dsg
