#include "layers/dense_product.hpp"

#include "layers/inner_product_kernels.hpp"
#include "runtime/launch.hpp"

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

namespace {

// W' and its row stride: a strided view of W for row progressions, else the gathered copy.
const float* kept_weights(const StructuredProduct& p, const float* w, const StructuredScratch& s) {
  return p.row_stride ? w + int64_t(p.first_out) * p.k : s.w;
}
int kept_weights_ld(const StructuredProduct& p) { return p.row_stride ? p.row_stride * p.k : p.kk; }

}  // namespace

void structured_product_forward(const DeviceOps& ops, const StructuredProduct& p, const float* x, const float* w,
                                const float* b, const StructuredScratch& s, float* y) {
  const Device d = ops.device();
  if (!p.row_stride)
    launch(d, int64_t(p.nk) * p.kk, WeightBlockGather{p.kk, p.k, p.outs, p.ins, w, s.w});
  const float* xk = x;
  if (p.ins) {
    ops.gather_cols(p.m, p.kk, x, p.k, p.ins, s.x);
    xk = s.x;
  }
  if (!p.outs) {
    float beta = 0.0f;
    if (b) {
      ops.broadcast_rows(p.m, p.n, b, y);
      beta = 1.0f;
    }
    ops.gemm(false, true, p.m, p.n, p.kk, 1.0f, xk, p.kk, s.w, p.kk, beta, y, p.n);
    return;
  }
  ops.gemm(false, true, p.m, p.nk, p.kk, 1.0f, xk, p.kk, kept_weights(p, w, s), kept_weights_ld(p), 0.0f, s.y, p.nk);
  launch(d, int64_t(p.m) * p.n, ExpandColumns{p.n, p.nk, p.out_pos, s.y, b, y});
}

void structured_product_backward(const DeviceOps& ops, const StructuredProduct& p, const float* x, const float* w,
                                 const float* dy, const StructuredScratch& s, float* dw, float* db, float* dx) {
  const Device d = ops.device();
  const float* dyk = dy;
  if (p.outs) {  // dY' [M, N'] = the kept columns of dY
    ops.gather_cols(p.m, p.nk, dy, p.n, p.outs, s.y);
    dyk = s.y;
  }
  if (dw) {
    const float* xk = x;
    if (p.ins) {
      ops.gather_cols(p.m, p.kk, x, p.k, p.ins, s.x);
      xk = s.x;
    }
    if (p.row_stride) {  // dW rows o, o + s, ... += dY'^T X in place
      ops.gemm(true, false, p.nk, p.k, p.m, 1.0f, dyk, p.nk, xk, p.k, 1.0f, dw + int64_t(p.first_out) * p.k,
               p.row_stride * p.k);
    } else {  // dW' [N', K'] = dY'^T X', added to the kept entries of dW
      ops.gemm(true, false, p.nk, p.kk, p.m, 1.0f, dyk, p.nk, xk, p.kk, 0.0f, s.dw, p.kk);
      launch(d, int64_t(p.nk) * p.kk, WeightBlockScatterAdd{p.kk, p.k, p.outs, p.ins, s.dw, dw});
    }
  }
  if (db) launch(d, p.nk, KeptColumnSums{p.m, p.nk, p.outs, dyk, db});
  if (!dx) return;
  if (!p.ins) {  // dX [M, K] = dY' W'
    ops.gemm(false, false, p.m, p.k, p.nk, 1.0f, dyk, p.nk, kept_weights(p, w, s), kept_weights_ld(p), 0.0f, dx, p.k);
    return;
  }
  ops.gemm(false, false, p.m, p.kk, p.nk, 1.0f, dyk, p.nk, s.w, p.kk, 0.0f, s.x, p.kk);
  launch(d, int64_t(p.m) * p.k, ExpandColumns{p.k, p.kk, p.in_pos, s.x, nullptr, dx});
}

}  // namespace dsg
