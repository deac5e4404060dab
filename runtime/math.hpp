// CPU math used by layers and solvers: row-major BLAS wrappers (OpenBLAS) and small helpers.
#pragma once
#include <cstdint>

namespace dsg {

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major; op(A) is [M,K], op(B) is [K,N].
// lda/ldb/ldc are the row strides of the matrices as stored.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);
// Same with packed (contiguous) matrices.
void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
          const float* B, float beta, float* C);
// y = alpha * op(A) x + beta * y with A [M,N] row-major.
void gemv(bool trans_a, int M, int N, float alpha, const float* A, const float* x, float beta, float* y);
void axpy(int64_t n, float alpha, const float* x, float* y);  // y += alpha x
void scal(int64_t n, float alpha, float* x);                 // x *= alpha
float dot(int64_t n, const float* x, const float* y);

void set_blas_threads(int threads);
// The BLAS library's name and configuration, for logs.
const char* blas_info();

}  // namespace dsg
