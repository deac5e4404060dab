// Element kernels (runtime/launch.hpp bodies) of the elementwise layers' device code: Sigmoid,
// TanH, Dropout, Scale and Eltwise. Each body computes exactly what the layer's CPU path computes
// for its index, with the same float operations in the same order, so the device code run on the
// host matches the CPU path bit for bit (on a GPU up to the last bits of exp/tanh). Instantiated
// for CUDA in the layers' .cu twins (sigmoid.cu, tanh.cu, dropout.cu, scale.cu, eltwise.cu).
#pragma once
#include <cmath>
#include <cstdint>

#include "runtime/launch.hpp"
#include "runtime/rng.hpp"

namespace dsg {

// --- Sigmoid: y = 1 / (1 + exp(-x)); dx = dy y (1 - y) ------------------------------------------
struct SigmoidForward {
  const float* x;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const { y[i] = 1.0f / (1.0f + std::exp(-x[i])); }
};
struct SigmoidBackward {
  const float* y;
  const float* dy;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const { dx[i] = dy[i] * y[i] * (1.0f - y[i]); }
};

// --- TanH: y = tanh(x); dx = dy (1 - y^2) --------------------------------------------------------
struct TanHForward {
  const float* x;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const { y[i] = std::tanh(x[i]); }
};
struct TanHBackward {
  const float* y;
  const float* dy;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const { dx[i] = dy[i] * (1.0f - y[i] * y[i]); }
};

// --- Dropout (TRAIN) -----------------------------------------------------------------------------
// Body index b covers elements 4b .. 4b+3 (< n): one Philox block, element i using lane i % 4 of
// counter_uniform4(seed, stream, i / 4), as the CPU path. m[i] = u_i >= p ? scale : 0; y = x m.
struct DropoutForward {
  int64_t n;
  uint64_t seed, stream;
  float p, scale;
  const float* x;
  float* y;
  float* m;
  DSG_HOST_DEVICE void operator()(int64_t b) const {
    float u[4];
    counter_uniform4(seed, stream, uint64_t(b), u);
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * b + k;
      if (i >= n) break;
      m[i] = u[k] >= p ? scale : 0.0f;
      y[i] = x[i] * m[i];
    }
  }
};
// dx = dy m (in place allowed).
struct DropoutBackward {
  const float* m;
  const float* dy;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const { dx[i] = dy[i] * m[i]; }
};

// --- Scale: x viewed as [outer, dim, inner], s and b [dim] -----------------------------------------
// y = x s[d] + b[d] (b may be null); in place allowed.
struct ScaleForward {
  int64_t dim, inner;
  const float* x;
  const float* s;
  const float* b;
  float* y;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    const int64_t d = (i / inner) % dim;
    y[i] = x[i] * s[d] + (b ? b[d] : 0.0f);
  }
};
// dx = dy s[d]; in place allowed.
struct ScaleBackward {
  int64_t dim, inner;
  const float* dy;
  const float* s;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const { dx[i] = dy[i] * s[(i / inner) % dim]; }
};
// Body index d: ds[d] += sum dy x, db[d] += sum dy over the outer and inner axes, accumulated in
// double in the CPU path's order (ds or db null: not wanted).
struct ScaleParamGrad {
  int64_t outer, dim, inner;
  const float* dy;
  const float* x;
  float* ds;
  float* db;
  DSG_HOST_DEVICE void operator()(int64_t d) const {
    double gs = 0, gb = 0;
    for (int64_t o = 0; o < outer; ++o) {
      const int64_t off = (o * dim + d) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        gs += double(dy[off + i]) * x[off + i];
        gb += dy[off + i];
      }
    }
    if (ds) ds[d] += float(gs);
    if (db) db[d] += float(gb);
  }
};

// --- Eltwise: up to kEltwiseChunk bottoms per launch ------------------------------------------------
// More bottoms run as several launches that continue from the partial result in y (and arg), so
// every element sees the CPU path's operations in its order.
constexpr int kEltwiseChunk = 8;
enum class EltwiseKernelOp : int { kProd = 0, kSum = 1, kMax = 2 };

// Combines bottoms first .. first + count - 1 (x[k] is bottom first + k, coeff[k] its SUM
// coefficient). first == 0 starts the result; later chunks continue from y (and arg for MAX).
struct EltwiseForward {
  EltwiseKernelOp op;
  int first, count;
  const float* x[kEltwiseChunk];
  float coeff[kEltwiseChunk];
  float* y;
  int* arg;  // MAX: index of the winning bottom
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    int k = 0;
    float v = 0.0f;
    int best = 0;
    if (first == 0) {
      if (op == EltwiseKernelOp::kProd) v = x[k++][i];
      if (op == EltwiseKernelOp::kMax) {  // ties of the first two go to bottom 1, as Caffe
        best = x[0][i] > x[1][i] ? 0 : 1;
        v = x[best][i];
        k = 2;
      }
    } else {
      v = y[i];
      if (op == EltwiseKernelOp::kMax) best = arg[i];
    }
    for (; k < count; ++k) {
      const float xi = x[k][i];
      if (op == EltwiseKernelOp::kProd) v *= xi;
      else if (op == EltwiseKernelOp::kSum) v += coeff[k] * xi;
      else if (xi > v) { v = xi; best = first + k; }
    }
    y[i] = v;
    if (op == EltwiseKernelOp::kMax) arg[i] = best;
  }
};
// PROD gradient of bottom `target`: dx = dy prod_{k != target} x_k, the bottoms of this chunk
// multiplied in order (first == 0 starts from dy, later chunks continue from dx).
struct EltwiseProdBackward {
  int first, count, target;
  const float* x[kEltwiseChunk];
  const float* dy;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    float v = first == 0 ? dy[i] : dx[i];
    for (int k = 0; k < count; ++k)
      if (first + k != target) v *= x[k][i];
    dx[i] = v;
  }
};
// SUM: dx = coeff dy; MAX: dx = dy where bottom `target` won (arg), else 0.
struct EltwiseSumMaxBackward {
  bool max;
  int target;
  float coeff;
  const int* arg;
  const float* dy;
  float* dx;
  DSG_HOST_DEVICE void operator()(int64_t i) const {
    dx[i] = max ? (arg[i] == target ? dy[i] : 0.0f) : coeff * dy[i];
  }
};

}  // namespace dsg
