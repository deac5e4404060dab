// The dense and structured InnerProduct written once against DeviceOps (runtime/ops.hpp) and
// launch() bodies (layers/inner_product_kernels.hpp), for devices: the CPU layer keeps its own
// path, which these functions reproduce up to GEMM rounding.
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

// The structured product (untransposed W [N, K] only): N' kept outputs (rows of W) and K' kept
// input features (columns of W), as the CPU layer's active_outputs / active_inputs path:
//   forward   W' [N', K'] = kept block of W, X' [M, K'] = kept columns of X,
//             Y'= X' W'^T; Y [M, N] = Y' (+ b) on the kept outputs, exact 0 elsewhere
//             (every output kept: Y = b + X' W'^T);
//   backward  dY' = kept columns of dY; dW[kept, kept] += dY'^T X'; db[kept] += column sums of dY';
//             dX = dY' W' on the kept features, exact 0 elsewhere; other diff entries unchanged.
// Index lists and scratch are memory of the ops' device.
struct StructuredProduct {
  int m = 0, n = 0, k = 0;
  int nk = 0, kk = 0;            // N' and K'
  const int* outs = nullptr;     // [N'] kept outputs, ascending; null = all
  const int* out_pos = nullptr;  // [N] position of output c in outs, -1 if not kept (with outs)
  const int* ins = nullptr;      // [K'] kept input features, ascending; null = all
  const int* in_pos = nullptr;   // [K] position of feature c in ins, -1 if not kept (with ins)
  // > 0: outs = first_out + r * row_stride and ins null, so W' is a strided view of W (no copy).
  int row_stride = 0, first_out = 0;
};

struct StructuredScratch {
  float* w = nullptr;   // [N', K'] W' (written by forward, read by the next backward); unused with row_stride
  float* x = nullptr;   // [M, K'] X' and dX' (with ins)
  float* y = nullptr;   // [M, N'] Y' and dY' (with outs)
  float* dw = nullptr;  // [N', K'] dW' (backward, without row_stride)
};

void structured_product_forward(const DeviceOps& ops, const StructuredProduct& p, const float* x, const float* w,
                                const float* b, const StructuredScratch& s, float* y);
// A null dw / db / dx is skipped. w must be the weights of the preceding forward.
void structured_product_backward(const DeviceOps& ops, const StructuredProduct& p, const float* x, const float* w,
                                 const float* dy, const StructuredScratch& s, float* dw, float* db, float* dx);

}  // namespace dsg
