// The CPU DeviceOps, the oracle: plain loops (parallel_for where the layers chunk them the same
// way) and OpenBLAS through runtime/math.hpp. The loops are the ones the engine ran before the
// ops existed, so results are bit-identical to them.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/math.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"
#include "runtime/rng.hpp"

namespace dsg {
namespace {

class CpuOps final : public DeviceOps {
 public:
  Device device() const override { return Device::cpu(); }
  const char* name() const override { return "cpu"; }

  void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
            float beta, float* C, int ldc) const override {
    dsg::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }
  void axpy(int64_t n, float alpha, const float* x, float* y) const override { dsg::axpy(n, alpha, x, y); }
  void scale(int64_t n, float alpha, float* x) const override { scal(n, alpha, x); }
  void fill(int64_t n, float value, float* x) const override {
    if (n <= 0) return;
    if (value == 0.0f && !std::signbit(value)) {
      std::memset(x, 0, sizeof(float) * size_t(n));
      return;
    }
    std::fill(x, x + n, value);
  }
  void copy(int64_t n, const float* x, float* y) const override {
    if (n > 0 && x != y) std::memmove(y, x, sizeof(float) * size_t(n));
  }

  void gather_rows(int rows, int cols, const float* src, int ld_src, const int* index, float* dst) const override {
    for (int r = 0; r < rows; ++r)
      std::memcpy(dst + int64_t(r) * cols, src + int64_t(index[r]) * ld_src, sizeof(float) * size_t(cols));
  }
  void scatter_rows(int rows, int cols, const float* src, const int* index, float* dst, int ld_dst,
                    bool accumulate) const override {
    for (int r = 0; r < rows; ++r) {
      const float* s = src + int64_t(r) * cols;
      float* d = dst + int64_t(index[r]) * ld_dst;
      if (accumulate) {
        for (int c = 0; c < cols; ++c) d[c] += s[c];
      } else {
        std::memcpy(d, s, sizeof(float) * size_t(cols));
      }
    }
  }
  void gather_cols(int rows, int cols, const float* src, int ld_src, const int* index, float* dst) const override {
    for (int r = 0; r < rows; ++r) {
      const float* s = src + int64_t(r) * ld_src;
      float* d = dst + int64_t(r) * cols;
      for (int c = 0; c < cols; ++c) d[c] = s[index[c]];
    }
  }
  void scatter_cols(int rows, int cols, const float* src, const int* index, float* dst, int ld_dst,
                    bool accumulate) const override {
    for (int r = 0; r < rows; ++r) {
      const float* s = src + int64_t(r) * cols;
      float* d = dst + int64_t(r) * ld_dst;
      if (accumulate) {
        for (int c = 0; c < cols; ++c) d[index[c]] += s[c];
      } else {
        for (int c = 0; c < cols; ++c) d[index[c]] = s[c];
      }
    }
  }
  void broadcast_rows(int rows, int cols, const float* b, float* y) const override {
    for (int i = 0; i < rows; ++i) std::copy(b, b + cols, y + int64_t(i) * cols);
  }
  // As InnerProduct's backward computes it: a GEMV with a vector of ones.
  void column_sums(int rows, int cols, const float* x, float* s) const override {
    thread_local std::vector<float> ones;
    if (int(ones.size()) < rows) ones.assign(size_t(rows), 1.0f);
    gemv(true, rows, cols, 1.0f, x, ones.data(), 1.0f, s);
  }

  void relu_forward(int64_t n, float slope, const float* x, float* y) const override {
    // Branch-free so that it vectorises (signs are data-dependent and mispredict otherwise).
    parallel_for(n, kParallelGrain, [x, y, slope](int64_t begin, int64_t end) {
#pragma GCC ivdep
      for (int64_t i = begin; i < end; ++i) {
        float v = x[i];
        y[i] = std::max(v, 0.0f) + slope * std::min(v, 0.0f);
      }
    });
  }
  void relu_backward(int64_t n, float slope, const float* y, const float* dy, float* dx) const override {
    parallel_for(n, kParallelGrain, [y, dy, dx, slope](int64_t begin, int64_t end) {
#pragma GCC ivdep
      for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * (slope + (1.0f - slope) * float(y[i] > 0.0f));
    });
  }
  void apply_mask(int64_t n, const uint8_t* mask, float* x) const override {
    for (int64_t k = 0; k < n; ++k) x[k] = mask[k] ? x[k] : 0.0f;
  }
  void lookup(int64_t n, const uint8_t* codes, const float* table, int, float* y) const override {
    for (int64_t i = 0; i < n; ++i) y[i] = table[codes[i]];
  }
  void scale_by_code(int64_t n, const uint8_t* codes, const float* table, int, float* x) const override {
    for (int64_t i = 0; i < n; ++i) x[i] *= table[codes[i]];
  }

  void softmax(int64_t outer, int64_t C, int64_t inner, const float* x, float* p) const override {
    const int64_t grain = std::max<int64_t>(1, kParallelGrain / C);
    parallel_for(outer * inner, grain, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const int64_t base = (k / inner) * C * inner + k % inner;
        float mx = x[base];
        for (int64_t c = 1; c < C; ++c) mx = std::max(mx, x[base + c * inner]);
        float sum = 0;
        for (int64_t c = 0; c < C; ++c) sum += (p[base + c * inner] = std::exp(x[base + c * inner] - mx));
        const float inv = 1.0f / sum;
        for (int64_t c = 0; c < C; ++c) p[base + c * inner] *= inv;
      }
    });
  }
  void softmax_loss(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label, bool has_ignore,
                    int ignore_label, LossNormalizer norm, float* loss, float* normalizer) const override {
    double total = 0;
    int64_t valid = 0;
    for (int64_t k = 0; k < outer * inner; ++k) {
      if (has_ignore && label[k] == float(ignore_label)) continue;
      if (!(label[k] >= 0.0f && label[k] < float(C))) {
        total = NAN;
        continue;
      }
      const int64_t base = (k / inner) * C * inner + k % inner;
      total -= std::log(std::max(p[base + int64_t(label[k]) * inner], FLT_MIN));
      ++valid;
    }
    const double n = std::max(1.0, norm.by_valid ? double(valid) : norm.fixed);
    loss[0] = float(total / n);
    normalizer[0] = float(n);
  }
  void softmax_loss_backward(int64_t outer, int64_t C, int64_t inner, const float* p, const float* label,
                             bool has_ignore, int ignore_label, const float* top_diff, const float* normalizer,
                             float* dx) const override {
    const float scale = float(top_diff[0] / double(normalizer[0]));
    const int64_t grain = std::max<int64_t>(1, kParallelGrain / C);
    parallel_for(outer * inner, grain, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const int64_t base = (k / inner) * C * inner + k % inner;
        if (has_ignore && label[k] == float(ignore_label)) {
          for (int64_t c = 0; c < C; ++c) dx[base + c * inner] = 0.0f;
          continue;
        }
        const int64_t target = int64_t(label[k]);
        for (int64_t c = 0; c < C; ++c) dx[base + c * inner] = (p[base + c * inner] - (c == target ? 1.0f : 0.0f)) * scale;
      }
    });
  }

  double sum(int64_t n, const float* x) const override {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += x[i];
    return s;
  }
  double sumsq(int64_t n, const float* x) const override {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
    return s;
  }
  double asum(int64_t n, const float* x) const override {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::fabs(x[i]);
    return s;
  }
  double dot(int64_t n, const float* x, const float* y) const override {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(x[i]) * y[i];
    return s;
  }
  void sum_by_code(int64_t n, const uint8_t* codes, const float* x, int table_size, double* sums) const override {
    std::fill(sums, sums + table_size, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      if (codes[i] >= table_size) throw Error(strfmt("code %d out of range (%d codes)", int(codes[i]), table_size));
      sums[codes[i]] += x[i];
    }
  }

  void uniform(int64_t n, uint64_t seed, uint64_t stream, float* x) const override {
    parallel_for((n + 3) / 4, kParallelGrain / 4, [=](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        float u[4];
        counter_uniform4(seed, stream, uint64_t(b), u);
        for (int64_t j = 4 * b; j < std::min(n, 4 * b + 4); ++j) x[j] = u[j - 4 * b];
      }
    });
  }

  void sgd_step(int64_t n, float m, float rate, float* g, float* v) const override {
    for (int64_t k = 0; k < n; ++k) {
      v[k] = m * v[k] + rate * g[k];
      g[k] = v[k];
    }
  }
  void nesterov_step(int64_t n, float m, float rate, float* g, float* v) const override {
    for (int64_t k = 0; k < n; ++k) {
      float prev = v[k];
      v[k] = m * v[k] + rate * g[k];
      g[k] = (1 + m) * v[k] - m * prev;
    }
  }
  void adam_step(int64_t n, float b1, float b2, float eps, float step_scale, float* g, float* m,
                 float* v) const override {
    for (int64_t k = 0; k < n; ++k) {
      m[k] = b1 * m[k] + (1 - b1) * g[k];
      v[k] = b2 * v[k] + (1 - b2) * g[k] * g[k];
      g[k] = step_scale * m[k] / (std::sqrt(v[k]) + eps);
    }
  }
  void l2_decay(int64_t n, float decay, const float* w, float* g) const override {
    for (int64_t k = 0; k < n; ++k) g[k] += decay * w[k];
  }
  void l1_decay(int64_t n, float decay, const float* w, float* g) const override {
    for (int64_t k = 0; k < n; ++k) g[k] += decay * float((w[k] > 0) - (w[k] < 0));
  }
  void sgd_l2_update(int64_t n, float m, float rate, float decay, float* __restrict w, float* __restrict g,
                     float* __restrict v) const override {
    for (int64_t k = 0; k < n; ++k) {
      float step = m * v[k] + rate * (g[k] + decay * w[k]);
      v[k] = step;
      w[k] -= step;
      g[k] = 0.0f;
    }
  }
};

}  // namespace

const DeviceOps& cpu_ops() {
  static const CpuOps ops;
  return ops;
}

}  // namespace dsg
