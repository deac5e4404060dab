// DeviceOps: the element and BLAS operations the engine, the update rules, masks, quantizers and
// device layers are written against, implemented once per device. The CPU implementation
// (runtime/cpu_ops.cpp) is the oracle; the CUDA one (runtime/cuda_ops.cu) is checked against it by
// the [gpu] tests. Every pointer argument is memory of the ops' device (host memory for the CPU;
// Tensor::data(device) and Storage::device() give it); counts are elements. Matrices are row-major
// with explicit leading dimensions (row strides, in elements), so strided views need no copies.
// Operations return only after their results are usable by the next operation on the same device;
// reductions return their value on the host.
#pragma once
#include <cstdint>

#include "runtime/device.hpp"

namespace dsg {

// How SoftmaxWithLoss divides the summed loss (Caffe's LossParameter normalization).
struct LossNormalizer {
  bool by_valid = true;     // divide by the number of non-ignored positions (VALID)
  double fixed = 1;         // otherwise divide by this (FULL: positions, BATCH_SIZE: outer, NONE: 1)
};

class DeviceOps {
 public:
  virtual ~DeviceOps() = default;
  virtual Device device() const = 0;
  virtual const char* name() const = 0;

  // --- BLAS -----------------------------------------------------------------------------------
  // C[M,N] = alpha op(A) op(B) + beta C; op(A) is [M,K], op(B) is [K,N]; lda/ldb/ldc are the row
  // strides of A, B, C as stored (A is [K,M] when trans_a).
  virtual void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
                    const float* B, int ldb, float beta, float* C, int ldc) const = 0;
  virtual void axpy(int64_t n, float alpha, const float* x, float* y) const = 0;  // y += alpha x
  virtual void scale(int64_t n, float alpha, float* x) const = 0;                 // x *= alpha
  virtual void fill(int64_t n, float value, float* x) const = 0;                  // x = value
  virtual void copy(int64_t n, const float* x, float* y) const = 0;               // y = x

  // --- rows and columns -----------------------------------------------------------------------
  // dst[r, c] = src[index[r], c] for r < rows, c < cols (src rows ld_src apart, dst packed).
  virtual void gather_rows(int rows, int cols, const float* src, int ld_src, const int* index, float* dst) const = 0;
  // dst[index[r], c] (+)= src[r, c] (dst rows ld_dst apart, src packed); indices distinct.
  virtual void scatter_rows(int rows, int cols, const float* src, const int* index, float* dst, int ld_dst,
                            bool accumulate) const = 0;
  // dst[r, c] = src[r, index[c]] (src rows ld_src apart, dst packed [rows, cols]).
  virtual void gather_cols(int rows, int cols, const float* src, int ld_src, const int* index, float* dst) const = 0;
  // dst[r, index[c]] (+)= src[r, c] (dst rows ld_dst apart, src packed); indices distinct.
  virtual void scatter_cols(int rows, int cols, const float* src, const int* index, float* dst, int ld_dst,
                            bool accumulate) const = 0;
  // y[i, :] = b for every row of y [rows, cols] (the bias before a beta = 1 GEMM).
  virtual void broadcast_rows(int rows, int cols, const float* b, float* y) const = 0;
  // s[c] += sum over rows of x[r, c] (the bias gradient), x [rows, cols] packed.
  virtual void column_sums(int rows, int cols, const float* x, float* s) const = 0;

  // --- elementwise ----------------------------------------------------------------------------
  // y = max(x, 0) + slope min(x, 0) (Caffe's ReLU with negative_slope); x == y allowed.
  virtual void relu_forward(int64_t n, float slope, const float* x, float* y) const = 0;
  // dx = dy (slope + (1 - slope) [y > 0]) from the top values y; in place allowed.
  virtual void relu_backward(int64_t n, float slope, const float* y, const float* dy, float* dx) const = 0;
  // x[i] = mask[i] ? x[i] : 0 with one byte per element.
  virtual void apply_mask(int64_t n, const uint8_t* mask, float* x) const = 0;
  // y[i] = table[codes[i]] (a codebook lookup; codes < table_size).
  virtual void lookup(int64_t n, const uint8_t* codes, const float* table, int table_size, float* y) const = 0;
  // x[i] *= table[codes[i]].
  virtual void scale_by_code(int64_t n, const uint8_t* codes, const float* table, int table_size, float* x) const = 0;

  // --- softmax and its loss (SoftmaxWithLoss), scores [outer, C, inner] -----------------------
  // p = softmax of x over the C axis (max-subtracted).
  virtual void softmax(int64_t outer, int64_t C, int64_t inner, const float* x, float* p) const = 0;
  // loss[0] = sum over non-ignored positions k of -log(max(p[k, label[k]], FLT_MIN)) / normalizer,
  // normalizer[0] = that normalizer (at least 1). Labels are class ids stored as floats; a label
  // equal to `ignore_label` is skipped when has_ignore. A label outside [0, C) makes the loss NaN.
  virtual void softmax_loss(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label,
                            bool has_ignore, int ignore_label, LossNormalizer norm, float* loss,
                            float* normalizer) const = 0;
  // dx = (p - onehot(label)) * top_diff[0] / normalizer[0]; ignored positions get 0.
  virtual void softmax_loss_backward(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label,
                                     bool has_ignore, int ignore_label, const float* top_diff,
                                     const float* normalizer, float* dx) const = 0;

  // --- reductions (accumulated in double; the value comes back to the host) ---------------------
  virtual double sum(int64_t n, const float* x) const = 0;
  virtual double sumsq(int64_t n, const float* x) const = 0;
  virtual double asum(int64_t n, const float* x) const = 0;
  virtual double dot(int64_t n, const float* x, const float* y) const = 0;
  // sums[c] = sum of x[i] over codes[i] == c, for c < table_size (sums is host memory).
  virtual void sum_by_code(int64_t n, const uint8_t* codes, const float* x, int table_size, double* sums) const = 0;

  // --- counter-based random numbers (runtime/rng.hpp) ------------------------------------------
  // x[i] = lane i % 4 of counter_uniform4(seed, stream, i / 4): the same bits on every device.
  virtual void uniform(int64_t n, uint64_t seed, uint64_t stream, float* x) const = 0;

  // --- solver updates on a parameter's value w, gradient g and history v (m, v for Adam) --------
  // SGD with momentum: v = momentum v + rate g; g = v.
  virtual void sgd_step(int64_t n, float momentum, float rate, float* g, float* v) const = 0;
  // Caffe's Nesterov: v' = momentum v + rate g; g = (1 + momentum) v' - momentum v; v = v'.
  virtual void nesterov_step(int64_t n, float momentum, float rate, float* g, float* v) const = 0;
  // Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; g = step_scale m / (sqrt(v) + eps), with
  // step_scale = rate * bias correction.
  virtual void adam_step(int64_t n, float beta1, float beta2, float eps, float step_scale, float* g, float* m,
                         float* v) const = 0;
  // g += decay * w (L2) / g += decay * sign(w) (L1).
  virtual void l2_decay(int64_t n, float decay, const float* w, float* g) const = 0;
  virtual void l1_decay(int64_t n, float decay, const float* w, float* g) const = 0;
  // One pass of L2 decay, SGD with momentum and the update: step = momentum v + rate (g + decay w);
  // v = step; w -= step; g = 0.
  virtual void sgd_l2_update(int64_t n, float momentum, float rate, float decay, float* w, float* g,
                             float* v) const = 0;
};

// The CPU ops (always available).
const DeviceOps& cpu_ops();
// The ops of `device`: the CPU ops, or the CUDA ops of that ordinal. Throws dsg::Error when this
// build has no CUDA backend or the device cannot be used.
const DeviceOps& ops_for(const Device& device);

// Tests: a simulated CUDA device (runtime/simulated_device.hpp). While it is on, ops_for(cuda:N)
// returns the CPU ops and launch() runs bodies on the host, over "device" memory that a fake
// DeviceBackend allocates on the host: device code runs with real Storage heads and counted
// transfers on a machine without a GPU.
bool device_simulated();
void set_device_simulated(bool on);

}  // namespace dsg
