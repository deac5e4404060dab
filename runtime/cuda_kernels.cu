// DSG's own CUDA kernels (see runtime/cuda_kernels.cuh): grid-stride loops over elements, one
// thread per position for the softmax, fixed-shape tree reductions in double.
#include <cfloat>

#include "runtime/cuda_check.cuh"
#include "runtime/cuda_kernels.cuh"
#include "runtime/rng.hpp"

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

// Launches `kernel` over n items (grid-stride loops inside) and checks the launch.
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), int64_t n, Args... args) {
  if (n <= 0) return;
  kernel<<<blocks_for(n), kThreads>>>(args...);
  DSG_CUDA_LAUNCHED();
}

__global__ void fill_k(int64_t n, float value, float* x) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] = value;
}
__global__ void axpy_k(int64_t n, float a, const float* x, float* y) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] += a * x[i];
}
__global__ void scale_k(int64_t n, float a, float* x) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] *= a;
}

__global__ void gather_rows_k(int rows, int cols, const float* src, int ld, const int* index, float* dst) {
  for (int64_t i = first_index(); i < int64_t(rows) * cols; i += grid_stride()) {
    const int64_t r = i / cols, c = i % cols;
    dst[i] = src[int64_t(index[r]) * ld + c];
  }
}
__global__ void scatter_rows_k(int rows, int cols, const float* src, const int* index, float* dst, int ld, bool acc) {
  for (int64_t i = first_index(); i < int64_t(rows) * cols; i += grid_stride()) {
    const int64_t r = i / cols, c = i % cols;
    float* d = dst + int64_t(index[r]) * ld + c;
    *d = acc ? *d + src[i] : src[i];
  }
}
__global__ void gather_cols_k(int rows, int cols, const float* src, int ld, const int* index, float* dst) {
  for (int64_t i = first_index(); i < int64_t(rows) * cols; i += grid_stride()) {
    const int64_t r = i / cols, c = i % cols;
    dst[i] = src[r * ld + index[c]];
  }
}
__global__ void scatter_cols_k(int rows, int cols, const float* src, const int* index, float* dst, int ld, bool acc) {
  for (int64_t i = first_index(); i < int64_t(rows) * cols; i += grid_stride()) {
    const int64_t r = i / cols, c = i % cols;
    float* d = dst + r * ld + index[c];
    *d = acc ? *d + src[i] : src[i];
  }
}
__global__ void broadcast_rows_k(int rows, int cols, const float* b, float* y) {
  for (int64_t i = first_index(); i < int64_t(rows) * cols; i += grid_stride()) y[i] = b[i % cols];
}
__global__ void column_sums_k(int rows, int cols, const float* x, float* s) {
  for (int64_t c = first_index(); c < cols; c += grid_stride()) {
    float acc = 0.0f;
    for (int64_t r = 0; r < rows; ++r) acc += x[r * cols + c];
    s[c] += acc;
  }
}

__global__ void relu_forward_k(int64_t n, float slope, const float* x, float* y) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const float v = x[i];
    y[i] = fmaxf(v, 0.0f) + slope * fminf(v, 0.0f);
  }
}
__global__ void relu_backward_k(int64_t n, float slope, const float* y, const float* dy, float* dx) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) dx[i] = dy[i] * (slope + (1.0f - slope) * float(y[i] > 0.0f));
}
__global__ void apply_mask_k(int64_t n, const uint8_t* mask, float* x) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] = mask[i] ? x[i] : 0.0f;
}
__global__ void lookup_k(int64_t n, const uint8_t* codes, const float* table, float* y) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) y[i] = table[codes[i]];
}
__global__ void scale_by_code_k(int64_t n, const uint8_t* codes, const float* table, float* x) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) x[i] *= table[codes[i]];
}

__global__ void softmax_k(int64_t positions, int64_t C, int64_t inner, const float* x, float* p) {
  for (int64_t k = first_index(); k < positions; k += grid_stride()) {
    const int64_t base = (k / inner) * C * inner + k % inner;
    float mx = x[base];
    for (int64_t c = 1; c < C; ++c) mx = fmaxf(mx, x[base + c * inner]);
    float sum = 0.0f;
    for (int64_t c = 0; c < C; ++c) sum += (p[base + c * inner] = expf(x[base + c * inner] - mx));
    const float inv = 1.0f / sum;
    for (int64_t c = 0; c < C; ++c) p[base + c * inner] *= inv;
  }
}

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

__global__ void softmax_loss_backward_k(int64_t positions, int64_t C, int64_t inner, const float* p,
                                        const float* label, bool has_ignore, int ignore_label,
                                        const float* top_diff, const float* normalizer, float* dx) {
  const float scale = float(double(top_diff[0]) / double(normalizer[0]));
  for (int64_t k = first_index(); k < positions; k += grid_stride()) {
    const int64_t base = (k / inner) * C * inner + k % inner;
    const bool ignored = has_ignore && label[k] == float(ignore_label);
    const int64_t target = int64_t(label[k]);
    for (int64_t c = 0; c < C; ++c)
      dx[base + c * inner] = ignored ? 0.0f : (p[base + c * inner] - (c == target ? 1.0f : 0.0f)) * scale;
  }
}

__global__ void uniform_k(int64_t n, uint64_t seed, uint64_t stream, float* x) {
  for (int64_t b = first_index(); b < (n + 3) / 4; b += grid_stride()) {
    float u[4];
    counter_uniform4(seed, stream, uint64_t(b), u);
    for (int64_t j = 4 * b; j < n && j < 4 * b + 4; ++j) x[j] = u[j - 4 * b];
  }
}

__global__ void sgd_step_k(int64_t n, float m, float rate, float* g, float* v) {
  for (int64_t k = first_index(); k < n; k += grid_stride()) {
    v[k] = m * v[k] + rate * g[k];
    g[k] = v[k];
  }
}
__global__ void nesterov_step_k(int64_t n, float m, float rate, float* g, float* v) {
  for (int64_t k = first_index(); k < n; k += grid_stride()) {
    const float prev = v[k];
    v[k] = m * v[k] + rate * g[k];
    g[k] = (1 + m) * v[k] - m * prev;
  }
}
__global__ void adam_step_k(int64_t n, float b1, float b2, float eps, float step_scale, float* g, float* m, float* v) {
  for (int64_t k = first_index(); k < n; k += grid_stride()) {
    m[k] = b1 * m[k] + (1 - b1) * g[k];
    v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
    g[k] = step_scale * m[k] / (sqrtf(v[k]) + eps);
  }
}
__global__ void l2_decay_k(int64_t n, float decay, const float* w, float* g) {
  for (int64_t k = first_index(); k < n; k += grid_stride()) g[k] += decay * w[k];
}
__global__ void l1_decay_k(int64_t n, float decay, const float* w, float* g) {
  for (int64_t k = first_index(); k < n; k += grid_stride()) g[k] += decay * float((w[k] > 0) - (w[k] < 0));
}
__global__ void sgd_l2_update_k(int64_t n, float m, float rate, float decay, float* w, float* g, float* v) {
  for (int64_t k = first_index(); k < n; k += grid_stride()) {
    const float step = m * v[k] + rate * (g[k] + decay * w[k]);
    v[k] = step;
    w[k] -= step;
    g[k] = 0.0f;
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

void fill(int64_t n, float value, float* x) { launch(fill_k, n, n, value, x); }
void axpy(int64_t n, float alpha, const float* x, float* y) { launch(axpy_k, n, n, alpha, x, y); }
void scale(int64_t n, float alpha, float* x) { launch(scale_k, n, n, alpha, x); }
void gather_rows(int rows, int cols, const float* src, int ld, const int* index, float* dst) {
  launch(gather_rows_k, int64_t(rows) * cols, rows, cols, src, ld, index, dst);
}
void scatter_rows(int rows, int cols, const float* src, const int* index, float* dst, int ld, bool acc) {
  launch(scatter_rows_k, int64_t(rows) * cols, rows, cols, src, index, dst, ld, acc);
}
void gather_cols(int rows, int cols, const float* src, int ld, const int* index, float* dst) {
  launch(gather_cols_k, int64_t(rows) * cols, rows, cols, src, ld, index, dst);
}
void scatter_cols(int rows, int cols, const float* src, const int* index, float* dst, int ld, bool acc) {
  launch(scatter_cols_k, int64_t(rows) * cols, rows, cols, src, index, dst, ld, acc);
}
void broadcast_rows(int rows, int cols, const float* b, float* y) {
  launch(broadcast_rows_k, int64_t(rows) * cols, rows, cols, b, y);
}
void column_sums(int rows, int cols, const float* x, float* s) { launch(column_sums_k, cols, rows, cols, x, s); }
void relu_forward(int64_t n, float slope, const float* x, float* y) { launch(relu_forward_k, n, n, slope, x, y); }
void relu_backward(int64_t n, float slope, const float* y, const float* dy, float* dx) {
  launch(relu_backward_k, n, n, slope, y, dy, dx);
}
void apply_mask(int64_t n, const uint8_t* mask, float* x) { launch(apply_mask_k, n, n, mask, x); }
void lookup(int64_t n, const uint8_t* codes, const float* table, float* y) { launch(lookup_k, n, n, codes, table, y); }
void scale_by_code(int64_t n, const uint8_t* codes, const float* table, float* x) {
  launch(scale_by_code_k, n, n, codes, table, x);
}
void softmax(int64_t outer, int64_t C, int64_t inner, const float* x, float* p) {
  launch(softmax_k, outer * inner, outer * inner, C, inner, x, p);
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
  launch(softmax_loss_backward_k, outer * inner, outer * inner, C, inner, p, label, has_ignore, ignore_label,
             top_diff, normalizer, dx);
}
void uniform(int64_t n, uint64_t seed, uint64_t stream, float* x) { launch(uniform_k, (n + 3) / 4, n, seed, stream, x); }
void sgd_step(int64_t n, float m, float rate, float* g, float* v) { launch(sgd_step_k, n, n, m, rate, g, v); }
void nesterov_step(int64_t n, float m, float rate, float* g, float* v) { launch(nesterov_step_k, n, n, m, rate, g, v); }
void adam_step(int64_t n, float b1, float b2, float eps, float step_scale, float* g, float* m, float* v) {
  launch(adam_step_k, n, n, b1, b2, eps, step_scale, g, m, v);
}
void l2_decay(int64_t n, float decay, const float* w, float* g) { launch(l2_decay_k, n, n, decay, w, g); }
void l1_decay(int64_t n, float decay, const float* w, float* g) { launch(l1_decay_k, n, n, decay, w, g); }
void sgd_l2_update(int64_t n, float m, float rate, float decay, float* w, float* g, float* v) {
  launch(sgd_l2_update_k, n, n, m, rate, decay, w, g, v);
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
