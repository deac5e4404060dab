#include "layers/dsg_select.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "runtime/error.hpp"
#include "runtime/math.hpp"
#include "runtime/parallel.hpp"

namespace dsg {
namespace {

constexpr uint64_t kProjectionSeed = 0x44534750524f4aULL;  // "DSGPROJ": R is a property of the layer
constexpr int64_t kGrain = 1 << 14;                         // multiply-adds per parallel_for item batch

// <a, b> with eight independent accumulators, so that it vectorises without -ffast-math.
inline float dot8(const float* __restrict a, const float* __restrict b, int n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int i = 0;
  for (; i + 8 <= n; i += 8)
    for (int t = 0; t < 8; ++t) acc[t] += a[i + t] * b[i + t];
  float s = 0;
  for (; i < n; ++i) s += a[i] * b[i];
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

inline void axpy8(float alpha, const float* __restrict x, float* __restrict y, int n) {
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

int64_t grain_rows(int64_t work_per_row) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work_per_row)); }

}  // namespace

void DsgSelector::configure(const LayerParameter& param, const std::string& where, int n_out, int d,
                            uint64_t stream) {
  const DsgParameter& p = param.dsg_param();
  if (!(p.gamma() >= 0 && p.gamma() < 1)) throw Error(where + strfmt("dsg_param.gamma must be in [0, 1), got %g", p.gamma()));
  if (!(p.epsilon() > 0 && p.epsilon() < 1))
    throw Error(where + strfmt("dsg_param.epsilon must be in (0, 1), got %g", p.epsilon()));
  if (p.projection_dim() < 0) throw Error(where + strfmt("dsg_param.projection_dim must be >= 0, got %d", p.projection_dim()));
  if (n_out < 1 || d < 1) throw Error(where + "dsg_param needs at least one output and one input");
  int k = p.projection_dim();
  if (k == 0) k = int(std::ceil(std::log(double(n_out) + 1.0) / (double(p.epsilon()) * p.epsilon())));
  k = std::clamp(k, 1, d);
  if (projection_ && projection_->k() == k && projection_->d() == d && n_out_ == n_out) return;
  n_out_ = n_out;
  d_ = d;
  keep_ = int(kept_count(p.gamma(), n_out));
  per_sample_ = p.selection() == DsgParameter::PER_SAMPLE;
  double_mask_ = p.double_mask();
  in_test_ = p.in_test();
  projection_ = std::make_unique<SparseProjection>(k, d, 3, kProjectionSeed, stream);
  dense_r_ = projection_->dense();
}

void DsgSelector::project_weights(const float* w) {
  const int k = projection_->k();
  pw_.resize(size_t(n_out_) * size_t(k));
  gemm(false, true, n_out_, k, d_, 1.0f, w, d_, dense_r_.data(), d_, 0.0f, pw_.data(), k);
  search_ops_ = double(n_out_) * double(projection_->nonzeros());
}

void DsgSelector::estimate(const float* x, int64_t rows, int64_t ldx) {
  const int k = projection_->k();
  px_.resize(size_t(rows) * size_t(k));
  est_.resize(size_t(rows) * size_t(n_out_));
  gemm(false, true, int(rows), k, d_, 1.0f, x, int(ldx), dense_r_.data(), d_, 0.0f, px_.data(), k);
  gemm(false, true, int(rows), n_out_, k, 1.0f, px_.data(), pw_.data(), 0.0f, est_.data());
  search_ops_ += double(rows) * (double(projection_->nonzeros()) + double(n_out_) * k);
}

void DsgSelector::select_rows(const float* x, int64_t rows, int64_t ldx, int* sel) {
  estimate(x, rows, ldx);
  const int n = n_out_, keep = keep_;
  parallel_for(rows, grain_rows(int64_t(n) * 4), [&](int64_t begin, int64_t end) {
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t r = begin; r < end; ++r) {
      const float* e = est_.data() + r * n;
      int* s = sel + r * keep;
      if (keep == n) {
        std::iota(s, s + n, 0);
        continue;
      }
      if (n <= 64) {
        // Small layers: rank by counting (vectorises; no selection algorithm overhead). Rank j =
        // the values above e[j] plus the equal ones at lower indices.
        int out = 0;
        for (int j = 0; j < n; ++j) {
          const float ej = e[j];
          int rank = 0;
          for (int i = 0; i < j; ++i) rank += e[i] >= ej ? 1 : 0;
          for (int i = j + 1; i < n; ++i) rank += e[i] > ej ? 1 : 0;
          if (rank < keep) s[out++] = j;
        }
        continue;
      }
      // The keep-th largest value, then the indices above it and, in index order, the ties.
      std::copy(e, e + n, v.begin());
      std::nth_element(v.begin(), v.begin() + (keep - 1), v.end(), std::greater<float>());
      const float kth = v[size_t(keep - 1)];
      int above = 0;
      for (int j = 0; j < n; ++j) above += e[j] > kth;
      int ties = keep - above, out = 0;
      for (int j = 0; j < n; ++j)
        if (e[j] > kth || (e[j] == kth && ties-- > 0)) s[out++] = j;
    }
  });
}

void DsgSelector::begin_batch() { score_.assign(size_t(n_out_), 0.0f); }

void DsgSelector::add_rows(const float* x, int64_t rows, int64_t ldx) {
  estimate(x, rows, ldx);
  float* score = score_.data();
  for (int64_t r = 0; r < rows; ++r) {
    const float* e = est_.data() + r * n_out_;
    for (int j = 0; j < n_out_; ++j) score[j] += std::max(0.0f, e[j]);
  }
}

void DsgSelector::add_columns(const float* x, int64_t cols, int64_t ldx, const std::vector<int>* rows) {
  const int k = projection_->k();
  px_.resize(size_t(cols) * size_t(k));
  est_.resize(size_t(cols) * size_t(n_out_));
  const float* r = dense_r_.data();
  int d = d_;
  if (rows) {  // the zero input dimensions contribute nothing: R restricted to the others
    d = int(rows->size());
    r_rows_.resize(size_t(k) * size_t(d));
    for (int i = 0; i < k; ++i)
      for (int j = 0; j < d; ++j) r_rows_[size_t(i) * d + j] = dense_r_[size_t(i) * d_ + (*rows)[size_t(j)]];
    r = r_rows_.data();
  }
  // f(X)^T [k x cols] = R [k x d] X [d x cols]; estimates^T [n x cols] = f(W) [n x k] f(X)^T.
  gemm(false, false, k, int(cols), d, 1.0f, r, d, x, int(ldx), 0.0f, px_.data(), int(cols));
  gemm(false, false, n_out_, int(cols), k, 1.0f, pw_.data(), px_.data(), 0.0f, est_.data());
  search_ops_ += double(cols) * (double(projection_->nonzeros()) + double(n_out_) * k);
  for (int j = 0; j < n_out_; ++j) {
    const float* e = est_.data() + int64_t(j) * cols;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8)
      for (int t = 0; t < 8; ++t) acc[t] += std::max(0.0f, e[c + t]);
    float sum = 0;
    for (; c < cols; ++c) sum += std::max(0.0f, e[c]);
    for (float a : acc) sum += a;
    score_[size_t(j)] += sum;
  }
}

std::vector<int> DsgSelector::kept_outputs() const {
  std::vector<int> idx(static_cast<size_t>(n_out_));
  std::iota(idx.begin(), idx.end(), 0);
  std::nth_element(idx.begin(), idx.begin() + (keep_ - 1), idx.end(), [&](int a, int b) {
    return score_[size_t(a)] > score_[size_t(b)] || (score_[size_t(a)] == score_[size_t(b)] && a < b);
  });
  idx.resize(size_t(keep_));
  std::sort(idx.begin(), idx.end());
  return idx;
}

void dsg_forward_rows(const float* x, int64_t rows, int64_t ldx, const float* w, int d, const int* sel, int keep,
                      float* out) {
  parallel_for(rows, grain_rows(int64_t(keep) * d), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const float* xr = x + r * ldx;
      const int* s = sel + r * keep;
      float* o = out + r * keep;
      for (int j = 0; j < keep; ++j) o[j] = dot8(xr, w + int64_t(s[j]) * d, d);
    }
  });
}

void dsg_backward_rows(const float* x, int64_t rows, int64_t ldx, const float* w, int n, int d, const int* sel,
                       int keep, const float* g, float* dx, int64_t lddx, float* dw, float* db) {
  if (dx) {
    parallel_for(rows, grain_rows(int64_t(keep) * d), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        float* dr = dx + r * lddx;
        std::fill(dr, dr + d, 0.0f);
        const int* s = sel + r * keep;
        const float* gr = g + r * keep;
        for (int j = 0; j < keep; ++j)
          if (gr[j] != 0.0f) axpy8(gr[j], w + int64_t(s[j]) * d, dr, d);
      }
    });
  }
  if (!dw && !db) return;
  // Transpose the selection (rows x keep) into per-output lists so that each dW row is owned by one
  // thread.
  std::vector<int64_t> start(static_cast<size_t>(n) + 1, 0);
  const int64_t total = rows * keep;
  for (int64_t e = 0; e < total; ++e) ++start[size_t(sel[e]) + 1];
  for (int m = 0; m < n; ++m) start[size_t(m) + 1] += start[size_t(m)];
  std::vector<int64_t> entry(static_cast<size_t>(total)), fill = start;
  for (int64_t e = 0; e < total; ++e) entry[size_t(fill[size_t(sel[e])]++)] = e;
  const int64_t per_output = std::max<int64_t>(1, total / std::max(1, n));
  parallel_for(n, grain_rows(per_output * d), [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      float* dwm = dw ? dw + m * d : nullptr;
      double bias = 0;
      for (int64_t t = start[size_t(m)]; t < start[size_t(m) + 1]; ++t) {
        const int64_t e = entry[size_t(t)];
        const float ge = g[e];
        if (ge == 0.0f) continue;
        bias += ge;
        if (dwm) axpy8(ge, x + (e / keep) * ldx, dwm, d);
      }
      if (db) db[m] += float(bias);
    }
  });
}

}  // namespace dsg
