// The CUDA DeviceOps: cuBLAS for the GEMM (row-major through the operand swap: C^T = op(B)^T op(A)^T
// in cuBLAS's column-major terms), DSG's kernels (runtime/cuda_kernels.cu) for the rest. One
// instance per device ordinal, created on first use; calls run on the default stream.
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <mutex>
#include <vector>

#include "runtime/cuda_check.cuh"
#include "runtime/cuda_kernels.cuh"
#include "runtime/device.hpp"
#include "runtime/error.hpp"
#include "runtime/ops.hpp"
#include "runtime/storage.hpp"

namespace dsg {
namespace {

class CudaOps final : public DeviceOps {
 public:
  explicit CudaOps(int ordinal) : ordinal_(ordinal) {
    DSG_CUDA_CHECK(cudaSetDevice(ordinal_));
    DSG_CUBLAS_CHECK(cublas_api().create(&blas_));
    // Scratch for reductions: the per-block partials, then the results.
    DSG_CUDA_CHECK(cudaMalloc(&scratch_, sizeof(double) * (cuda::kReduceBlocks + kMaxCodes)));
  }
  CudaOps(const CudaOps&) = delete;
  CudaOps& operator=(const CudaOps&) = delete;

  Device device() const override { return Device::cuda(ordinal_); }
  const char* name() const override { return "cuda"; }

  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) const override {
    activate();
    DSG_CUBLAS_CHECK(cublas_api().sgemm(blas_, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                                        K, &alpha, B, ldb, A, lda, &beta, C, ldc));
  }
  void axpy(int64_t n, float alpha, const float* x, float* y) const override { activate(), cuda::axpy(n, alpha, x, y); }
  void scale(int64_t n, float alpha, float* x) const override { activate(), cuda::scale(n, alpha, x); }
  void fill(int64_t n, float value, float* x) const override { activate(), cuda::fill(n, value, x); }
  void copy(int64_t n, const float* x, float* y) const override {
    activate();
    if (n > 0 && x != y) DSG_CUDA_CHECK(cudaMemcpy(y, x, sizeof(float) * size_t(n), cudaMemcpyDeviceToDevice));
  }

  void gather_rows(int rows, int cols, const float* src, int ld, const int* index, float* dst) const override {
    activate(), cuda::gather_rows(rows, cols, src, ld, index, dst);
  }
  void scatter_rows(int rows, int cols, const float* src, const int* index, float* dst, int ld,
                    bool accumulate) const override {
    activate(), cuda::scatter_rows(rows, cols, src, index, dst, ld, accumulate);
  }
  void gather_cols(int rows, int cols, const float* src, int ld, const int* index, float* dst) const override {
    activate(), cuda::gather_cols(rows, cols, src, ld, index, dst);
  }
  void scatter_cols(int rows, int cols, const float* src, const int* index, float* dst, int ld,
                    bool accumulate) const override {
    activate(), cuda::scatter_cols(rows, cols, src, index, dst, ld, accumulate);
  }
  void broadcast_rows(int rows, int cols, const float* b, float* y) const override {
    activate(), cuda::broadcast_rows(rows, cols, b, y);
  }
  void column_sums(int rows, int cols, const float* x, float* s) const override {
    activate(), cuda::column_sums(rows, cols, x, s);
  }

  void relu_forward(int64_t n, float slope, const float* x, float* y) const override {
    activate(), cuda::relu_forward(n, slope, x, y);
  }
  void relu_backward(int64_t n, float slope, const float* y, const float* dy, float* dx) const override {
    activate(), cuda::relu_backward(n, slope, y, dy, dx);
  }
  void apply_mask(int64_t n, const uint8_t* mask, float* x) const override { activate(), cuda::apply_mask(n, mask, x); }
  void lookup(int64_t n, const uint8_t* codes, const float* table, int, float* y) const override {
    activate(), cuda::lookup(n, codes, table, y);
  }
  void scale_by_code(int64_t n, const uint8_t* codes, const float* table, int, float* x) const override {
    activate(), cuda::scale_by_code(n, codes, table, x);
  }

  void softmax(int64_t outer, int64_t C, int64_t inner, const float* x, float* p) const override {
    activate(), cuda::softmax(outer, C, inner, x, p);
  }
  void softmax_loss(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label, bool has_ignore,
                    int ignore_label, LossNormalizer norm, float* loss, float* normalizer) const override {
    activate(), cuda::softmax_loss(outer, C, inner, p, label, has_ignore, ignore_label, norm, loss, normalizer);
  }
  void softmax_loss_backward(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label,
                             bool has_ignore, int ignore_label, const float* top_diff, const float* normalizer,
                             float* dx) const override {
    activate();
    cuda::softmax_loss_backward(outer, C, inner, p, label, has_ignore, ignore_label, top_diff, normalizer, dx);
  }

  double sum(int64_t n, const float* x) const override { return reduce(cuda::Reduce::kSum, n, x, nullptr); }
  double sumsq(int64_t n, const float* x) const override { return reduce(cuda::Reduce::kSumsq, n, x, nullptr); }
  double asum(int64_t n, const float* x) const override { return reduce(cuda::Reduce::kAsum, n, x, nullptr); }
  double dot(int64_t n, const float* x, const float* y) const override { return reduce(cuda::Reduce::kDot, n, x, y); }
  void sum_by_code(int64_t n, const uint8_t* codes, const float* x, int table_size, double* sums) const override {
    if (table_size > kMaxCodes) throw Error(strfmt("sum_by_code: %d codes, at most %d", table_size, kMaxCodes));
    activate();
    double* out = scratch_ + cuda::kReduceBlocks;
    cuda::sum_by_code(n, codes, x, table_size, out);
    DSG_CUDA_CHECK(cudaMemcpy(sums, out, sizeof(double) * size_t(table_size), cudaMemcpyDeviceToHost));
    record_transfer(false, sizeof(double) * size_t(table_size));
  }

  void uniform(int64_t n, uint64_t seed, uint64_t stream, float* x) const override {
    activate(), cuda::uniform(n, seed, stream, x);
  }

  void sgd_step(int64_t n, float m, float rate, float* g, float* v) const override {
    activate(), cuda::sgd_step(n, m, rate, g, v);
  }
  void nesterov_step(int64_t n, float m, float rate, float* g, float* v) const override {
    activate(), cuda::nesterov_step(n, m, rate, g, v);
  }
  void adam_step(int64_t n, float b1, float b2, float eps, float step_scale, float* g, float* m,
                 float* v) const override {
    activate(), cuda::adam_step(n, b1, b2, eps, step_scale, g, m, v);
  }
  void l2_decay(int64_t n, float decay, const float* w, float* g) const override {
    activate(), cuda::l2_decay(n, decay, w, g);
  }
  void l1_decay(int64_t n, float decay, const float* w, float* g) const override {
    activate(), cuda::l1_decay(n, decay, w, g);
  }
  void sgd_l2_update(int64_t n, float m, float rate, float decay, float* w, float* g, float* v) const override {
    activate(), cuda::sgd_l2_update(n, m, rate, decay, w, g, v);
  }

 private:
  static constexpr int kMaxCodes = 256;  // codes are bytes

  void activate() const { DSG_CUDA_CHECK(cudaSetDevice(ordinal_)); }

  double reduce(cuda::Reduce kind, int64_t n, const float* x, const float* y) const {
    activate();
    double* out = scratch_ + cuda::kReduceBlocks;
    cuda::reduce(kind, n, x, y, scratch_, out);
    double value = 0;
    DSG_CUDA_CHECK(cudaMemcpy(&value, out, sizeof(double), cudaMemcpyDeviceToHost));
    record_scalar_read();
    return value;
  }

  int ordinal_;
  cublasHandle_t blas_ = nullptr;
  double* scratch_ = nullptr;
};

}  // namespace

// The CUDA ops of device `ordinal` (declared by runtime/ops.cpp); throws when it cannot be used.
const DeviceOps& cuda_ops(int ordinal) {
  static std::mutex mutex;
  static std::vector<CudaOps*> ops;  // live until exit (no teardown after the CUDA runtime's)
  std::lock_guard<std::mutex> lock(mutex);
  if (ordinal >= 0 && ordinal < int(ops.size()) && ops[size_t(ordinal)]) return *ops[size_t(ordinal)];
  require_cuda_device(ordinal);
  if (int(ops.size()) <= ordinal) ops.resize(size_t(ordinal) + 1);
  ops[size_t(ordinal)] = new CudaOps(ordinal);
  return *ops[size_t(ordinal)];
}

}  // namespace dsg
