// DSG's own CUDA kernels (see runtime/cuda_kernels.cuh). The element and indexed operations are
// the launch bodies of runtime/op_kernels.hpp (one thread per element, row position, column or
// block of four random numbers), run here in runtime/launch.cuh's grid-stride kernel; the same
// bodies run on the host in tests/runtime/test_op_kernels.cpp. The reductions below
// (softmax_loss, reduce, sum_by_code) stay CUDA-only kernels: they sum through shared memory in
// fixed-shape block trees in double, which a per-item body cannot express.
#include <cfloat>

#include "runtime/cuda_check.cuh"
#include "runtime/cuda_kernels.cuh"
#include "runtime/launch.cuh"
#include "runtime/op_kernels.hpp"

namespace dsg {
namespace cuda {
namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return int(b < 1 ? 1 : b > 65535 ? 65535 : b);
}

__device__ inline int64_t first_index() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline int64_t grid_stride() { return int64_t(blockDim.x) * gridDim.x; }

// Runs body(i) for i < n on the current device (a grid-stride loop) and checks the launch.
template <class Body>
void run(int64_t n, const Body& body) {
  if (n <= 0) return;
  detail::launch_kernel<Body><<<blocks_for(n), kThreads>>>(n, body);
  DSG_CUDA_LAUNCHED();
}

// The reductions: CUDA-only kernels (shared memory, block trees), not launch bodies.

// One block: every thread sums its positions, then a tree over the block.
__global__ void softmax_loss_k(int64_t positions, int64_t C, int64_t inner, const float* p, const float* label,
                               bool has_ignore, int ignore_label, bool by_valid, double fixed, float* loss,
                               float* normalizer) {
  __shared__ double total[kThreads];
  __shared__ long long valid[kThreads];
  __shared__ int bad;
  if (threadIdx.x == 0) bad = 0;
  __syncthreads();
  double t = 0;
  long long v = 0;
  for (int64_t k = threadIdx.x; k < positions; k += blockDim.x) {
    const float l = label[k];
    if (has_ignore && l == float(ignore_label)) continue;
    if (!(l >= 0.0f && l < float(C))) {
      bad = 1;
      continue;
    }
    const int64_t base = (k / inner) * C * inner + k % inner;
    t -= log(double(fmaxf(p[base + int64_t(l) * inner], FLT_MIN)));
    ++v;
  }
  total[threadIdx.x] = t;
  valid[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (int(threadIdx.x) < s) {
      total[threadIdx.x] += total[threadIdx.x + s];
      valid[threadIdx.x] += valid[threadIdx.x + s];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    const double n = fmax(1.0, by_valid ? double(valid[0]) : fixed);
    loss[0] = bad ? __int_as_float(0x7fc00000) : float(total[0] / n);
    normalizer[0] = float(n);
  }
}

__device__ inline double reduce_term(Reduce kind, float x, float y) {
  switch (kind) {
    case Reduce::kSum: return double(x);
    case Reduce::kSumsq: return double(x) * x;
    case Reduce::kAsum: return double(fabsf(x));
    case Reduce::kDot: return double(x) * y;
  }
  return 0.0;
}

// Tree sum of the block's values into slot 0 of `shared`.
__device__ void block_sum(double* shared, double value) {
  shared[threadIdx.x] = value;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (int(threadIdx.x) < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
}

__global__ void reduce_partial_k(Reduce kind, int64_t n, const float* x, const float* y, double* partials) {
  __shared__ double shared[kThreads];
  double s = 0;
  for (int64_t i = first_index(); i < n; i += grid_stride()) s += reduce_term(kind, x[i], y ? y[i] : 0.0f);
  block_sum(shared, s);
  if (threadIdx.x == 0) partials[blockIdx.x] = shared[0];
}

__global__ void reduce_final_k(int count, const double* partials, double* out) {
  __shared__ double shared[kThreads];
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partials[i];
  block_sum(shared, s);
  if (threadIdx.x == 0) out[0] = shared[0];
}

// One block per code.
__global__ void sum_by_code_k(int64_t n, const uint8_t* codes, const float* x, double* out) {
  __shared__ double shared[kThreads];
  double s = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    if (codes[i] == blockIdx.x) s += x[i];
  block_sum(shared, s);
  if (threadIdx.x == 0) out[blockIdx.x] = shared[0];
}

}  // namespace

void fill(int64_t n, float value, float* x) { run(n, opk::Fill{value, x}); }
void axpy(int64_t n, float alpha, const float* x, float* y) { run(n, opk::Axpy{alpha, x, y}); }
void scale(int64_t n, float alpha, float* x) { run(n, opk::Scale{alpha, x}); }
void gather_rows(int rows, int cols, const float* src, int ld, const int* index, float* dst) {
  run(int64_t(rows) * cols, opk::GatherRows{cols, src, ld, index, dst});
}
void scatter_rows(int rows, int cols, const float* src, const int* index, float* dst, int ld, bool acc) {
  run(int64_t(rows) * cols, opk::ScatterRows{cols, src, index, dst, ld, acc});
}
void gather_cols(int rows, int cols, const float* src, int ld, const int* index, float* dst) {
  run(int64_t(rows) * cols, opk::GatherCols{cols, src, ld, index, dst});
}
void scatter_cols(int rows, int cols, const float* src, const int* index, float* dst, int ld, bool acc) {
  run(int64_t(rows) * cols, opk::ScatterCols{cols, src, index, dst, ld, acc});
}
void broadcast_rows(int rows, int cols, const float* b, float* y) {
  run(int64_t(rows) * cols, opk::BroadcastRows{cols, b, y});
}
void column_sums(int rows, int cols, const float* x, float* s) { run(cols, opk::ColumnSums{rows, cols, x, s}); }
void relu_forward(int64_t n, float slope, const float* x, float* y) { run(n, opk::ReluForward{slope, x, y}); }
void relu_backward(int64_t n, float slope, const float* y, const float* dy, float* dx) {
  run(n, opk::ReluBackward{slope, y, dy, dx});
}
void apply_mask(int64_t n, const uint8_t* mask, float* x) { run(n, opk::ApplyMask{mask, x}); }
void lookup(int64_t n, const uint8_t* codes, const float* table, float* y) { run(n, opk::Lookup{codes, table, y}); }
void scale_by_code(int64_t n, const uint8_t* codes, const float* table, float* x) {
  run(n, opk::ScaleByCode{codes, table, x});
}
void softmax(int64_t outer, int64_t C, int64_t inner, const float* x, float* p) {
  run(outer * inner, opk::Softmax{C, inner, x, p});
}
void softmax_loss(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label, bool has_ignore,
                  int ignore_label, LossNormalizer norm, float* loss, float* normalizer) {
  softmax_loss_k<<<1, kThreads>>>(outer * inner, C, inner, p, label, has_ignore, ignore_label, norm.by_valid, norm.fixed,
                                  loss, normalizer);
  DSG_CUDA_LAUNCHED();
}
void softmax_loss_backward(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label,
                           bool has_ignore, int ignore_label, const float* top_diff, const float* normalizer,
                           float* dx) {
  run(outer * inner, opk::SoftmaxLossBackward{C, inner, p, label, has_ignore, ignore_label, top_diff, normalizer, dx});
}
void uniform(int64_t n, uint64_t seed, uint64_t stream, float* x) { run((n + 3) / 4, opk::Uniform{n, seed, stream, x}); }
void sgd_step(int64_t n, float m, float rate, float* g, float* v) { run(n, opk::SgdStep{m, rate, g, v}); }
void nesterov_step(int64_t n, float m, float rate, float* g, float* v) { run(n, opk::NesterovStep{m, rate, g, v}); }
void adam_step(int64_t n, float b1, float b2, float eps, float step_scale, float* g, float* m, float* v) {
  run(n, opk::AdamStep{b1, b2, eps, step_scale, g, m, v});
}
void l2_decay(int64_t n, float decay, const float* w, float* g) { run(n, opk::L2Decay{decay, w, g}); }
void l1_decay(int64_t n, float decay, const float* w, float* g) { run(n, opk::L1Decay{decay, w, g}); }
void sgd_l2_update(int64_t n, float m, float rate, float decay, float* w, float* g, float* v) {
  run(n, opk::SgdL2Update{m, rate, decay, w, g, v});
}

void reduce(Reduce kind, int64_t n, const float* x, const float* y, double* partials, double* out) {
  reduce_partial_k<<<kReduceBlocks, kThreads>>>(kind, n, x, y, partials);
  DSG_CUDA_LAUNCHED();
  reduce_final_k<<<1, kThreads>>>(kReduceBlocks, partials, out);
  DSG_CUDA_LAUNCHED();
}

void sum_by_code(int64_t n, const uint8_t* codes, const float* x, int table_size, double* out) {
  if (table_size <= 0) return;
  sum_by_code_k<<<table_size, kThreads>>>(n, codes, x, out);
  DSG_CUDA_LAUNCHED();
}

}  // namespace cuda
}  // namespace dsg
