// Launchers of DSG's own CUDA kernels (runtime/cuda_kernels.cu), one per DeviceOps operation that
// cuBLAS does not cover. Arguments are as in runtime/ops.hpp; pointers are device memory of the
// current device; every launcher checks its launch. Launches go to the default stream, so each
// kernel sees the results of the previous one. The element and indexed operations run the launch
// bodies of runtime/op_kernels.hpp (tested on the host against the CPU ops); the reductions
// (softmax_loss, reduce, sum_by_code) are CUDA-only kernels with shared-memory block trees.
#pragma once
#include <cstdint>

#include "runtime/ops.hpp"

namespace dsg {
namespace cuda {

void fill(int64_t n, float value, float* x);
void axpy(int64_t n, float alpha, const float* x, float* y);
void scale(int64_t n, float alpha, float* x);
void gather_rows(int rows, int cols, const float* src, int ld_src, const int* index, float* dst);
void scatter_rows(int rows, int cols, const float* src, const int* index, float* dst, int ld_dst, bool accumulate);
void gather_cols(int rows, int cols, const float* src, int ld_src, const int* index, float* dst);
void scatter_cols(int rows, int cols, const float* src, const int* index, float* dst, int ld_dst, bool accumulate);
void broadcast_rows(int rows, int cols, const float* b, float* y);
void column_sums(int rows, int cols, const float* x, float* s);
void relu_forward(int64_t n, float slope, const float* x, float* y);
void relu_backward(int64_t n, float slope, const float* y, const float* dy, float* dx);
void apply_mask(int64_t n, const uint8_t* mask, float* x);
void lookup(int64_t n, const uint8_t* codes, const float* table, float* y);
void scale_by_code(int64_t n, const uint8_t* codes, const float* table, float* x);
void softmax(int64_t outer, int64_t C, int64_t inner, const float* x, float* p);
void softmax_loss(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label, bool has_ignore,
                  int ignore_label, LossNormalizer norm, float* loss, float* normalizer);
void softmax_loss_backward(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label,
                           bool has_ignore, int ignore_label, const float* top_diff, const float* normalizer,
                           float* dx);
void uniform(int64_t n, uint64_t seed, uint64_t stream, float* x);
void sgd_step(int64_t n, float momentum, float rate, float* g, float* v);
void nesterov_step(int64_t n, float momentum, float rate, float* g, float* v);
void adam_step(int64_t n, float beta1, float beta2, float eps, float step_scale, float* g, float* m, float* v);
void l2_decay(int64_t n, float decay, const float* w, float* g);
void l1_decay(int64_t n, float decay, const float* w, float* g);
void sgd_l2_update(int64_t n, float momentum, float rate, float decay, float* w, float* g, float* v);

// Reductions into one double in device memory `out` (deterministic: fixed grid, tree order).
enum class Reduce { kSum, kSumsq, kAsum, kDot };
void reduce(Reduce kind, int64_t n, const float* x, const float* y, double* partials, double* out);
// The number of doubles `partials` must hold.
constexpr int kReduceBlocks = 256;
// out[c] = sum of x[i] over codes[i] == c, for c < table_size (device memory, table_size doubles).
void sum_by_code(int64_t n, const uint8_t* codes, const float* x, int table_size, double* out);

}  // namespace cuda
}  // namespace dsg
