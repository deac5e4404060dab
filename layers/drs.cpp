#include "layers/drs.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/error.hpp"
#include "runtime/math.hpp"
#include "runtime/rng.hpp"

namespace dsg {

SparseProjection::SparseProjection(int k, int d, int s, uint64_t seed, uint64_t stream) : k_(k), d_(d) {
  if (k < 1 || d < 1 || s < 1) throw Error(strfmt("sparse projection needs k, d, s >= 1 (got %d, %d, %d)", k, d, s));
  scale_ = float(std::sqrt(double(s)) / std::sqrt(double(k)));
  const float p = 1.0f / (2.0f * float(s));
  start_.reserve(size_t(k) + 1);
  for (int r = 0; r < k; ++r) {
    start_.push_back(int(col_.size()));
    for (int c = 0; c < d; ++c) {
      const float u = counter_uniform(seed, stream, uint64_t(r) * uint64_t(d) + uint64_t(c));
      if (u < p) col_.push_back(c), sign_.push_back(1);
      else if (u < 2 * p) col_.push_back(c), sign_.push_back(-1);
    }
  }
  start_.push_back(int(col_.size()));
}

void SparseProjection::project_rows(const float* a, int64_t m, int64_t lda, float* out) const {
  for (int64_t i = 0; i < m; ++i) {
    const float* row = a + i * lda;
    float* o = out + i * k_;
    for (int r = 0; r < k_; ++r) {
      float s = 0;
      for (int e = start_[size_t(r)]; e < start_[size_t(r) + 1]; ++e) s += sign_[size_t(e)] > 0 ? row[col_[size_t(e)]] : -row[col_[size_t(e)]];
      o[r] = s * scale_;
    }
  }
}

std::vector<float> SparseProjection::dense() const {
  std::vector<float> r(static_cast<size_t>(int64_t(k_) * d_), 0.0f);
  for (int row = 0; row < k_; ++row)
    for (int e = start_[size_t(row)]; e < start_[size_t(row) + 1]; ++e)
      r[size_t(int64_t(row) * d_ + col_[size_t(e)])] = sign_[size_t(e)] > 0 ? scale_ : -scale_;
  return r;
}

int jl_dimension(int64_t points, double epsilon, int cap) {
  if (!(epsilon > 0 && epsilon < 1)) throw Error(strfmt("epsilon must be in (0, 1), got %g", epsilon));
  const double k = 4.0 * std::log(double(std::max<int64_t>(points, 2))) / (epsilon * epsilon / 2 - epsilon * epsilon * epsilon / 3);
  return int(std::min<double>(std::ceil(k), double(cap)));
}

void drs_estimate(const SparseProjection& r, const float* x, int64_t m, int64_t ldx, const float* w, int64_t n,
                  std::vector<float>& est) {
  std::vector<float> px(static_cast<size_t>(m * r.k())), pw(static_cast<size_t>(n * r.k()));
  r.project_rows(x, m, ldx, px.data());
  r.project_rows(w, n, r.d(), pw.data());
  est.resize(static_cast<size_t>(m * n));
  gemm(false, true, int(m), int(n), r.k(), 1.0f, px.data(), pw.data(), 0.0f, est.data());
}

int64_t kept_count(double gamma, int64_t n) {
  if (!(gamma >= 0 && gamma < 1)) throw Error(strfmt("gamma must be in [0, 1), got %g", gamma));
  return std::max<int64_t>(1, std::llround((1.0 - gamma) * double(n)));
}

void topk_row_mask(const float* y, int64_t m, int64_t n, int64_t keep, std::vector<uint8_t>& mask) {
  mask.assign(static_cast<size_t>(m * n), 0);
  keep = std::clamp<int64_t>(keep, 1, std::max<int64_t>(n, 1));
  if (n == 0) return;
  std::vector<int> idx(static_cast<size_t>(n));
  for (int64_t i = 0; i < m; ++i) {
    const float* row = y + i * n;
    std::iota(idx.begin(), idx.end(), 0);
    std::nth_element(idx.begin(), idx.begin() + (keep - 1), idx.end(),
                     [&](int a, int b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    for (int64_t j = 0; j < keep; ++j) mask[size_t(i * n + idx[size_t(j)])] = 1;
  }
}

std::vector<int> topk_columns(const float* y, int64_t m, int64_t n, int64_t keep) {
  if (n == 0) return {};
  keep = std::clamp<int64_t>(keep, 1, n);
  std::vector<double> score(static_cast<size_t>(n), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) score[size_t(j)] += std::max(0.0f, y[i * n + j]);
  std::vector<int> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::nth_element(idx.begin(), idx.begin() + (keep - 1), idx.end(), [&](int a, int b) {
    return score[size_t(a)] > score[size_t(b)] || (score[size_t(a)] == score[size_t(b)] && a < b);
  });
  idx.resize(size_t(keep));
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace dsg
