// The dense InnerProduct written once against DeviceOps (runtime/ops.hpp), for devices: the CPU
// layer keeps its own path, which these functions reproduce up to GEMM rounding.
//   X [M, K], W [N, K] (transpose: [K, N]), b [N], Y [M, N]:  Y = X W^T + b  (transpose: X W + b)
// All pointers are memory of the ops' device.
#pragma once
#include "runtime/ops.hpp"

namespace dsg {

struct DenseProduct {
  int m = 0, n = 0, k = 0;
  bool transpose = false;  // W stored [K, N]
};

// Y = X W^T + b; b may be null (no bias).
void dense_product_forward(const DeviceOps& ops, const DenseProduct& p, const float* x, const float* w,
                           const float* b, float* y);
// dW += dY^T X (transpose: X^T dY), db += column sums of dY, dX = dY W (transpose: dY W^T); a null
// output is skipped.
void dense_product_backward(const DeviceOps& ops, const DenseProduct& p, const float* x, const float* w,
                            const float* dy, float* dw, float* db, float* dx);

}  // namespace dsg
