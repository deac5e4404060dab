#include "layers/dense_product.hpp"

namespace dsg {

void dense_product_forward(const DeviceOps& ops, const DenseProduct& p, const float* x, const float* w,
                           const float* b, float* y) {
  float beta = 0.0f;
  if (b) {
    ops.broadcast_rows(p.m, p.n, b, y);
    beta = 1.0f;
  }
  ops.gemm(false, !p.transpose, p.m, p.n, p.k, 1.0f, x, p.k, w, p.transpose ? p.n : p.k, beta, y, p.n);
}

void dense_product_backward(const DeviceOps& ops, const DenseProduct& p, const float* x, const float* w,
                            const float* dy, float* dw, float* db, float* dx) {
  if (dw && p.transpose) ops.gemm(true, false, p.k, p.n, p.m, 1.0f, x, p.k, dy, p.n, 1.0f, dw, p.n);
  if (dw && !p.transpose) ops.gemm(true, false, p.n, p.k, p.m, 1.0f, dy, p.n, x, p.k, 1.0f, dw, p.k);
  if (db) ops.column_sums(p.m, p.n, dy, db);
  if (dx) ops.gemm(false, p.transpose, p.m, p.k, p.n, 1.0f, dy, p.n, w, p.transpose ? p.n : p.k, 0.0f, dx, p.k);
}

}  // namespace dsg
