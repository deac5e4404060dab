#include "layers/tile_drop.hpp"

#include <algorithm>
#include <cstring>

#include "runtime/error.hpp"
#include "runtime/math.hpp"

namespace dsg {

namespace {

// dst [rows.size() (or n), cols.size()] = src[row, col] for the listed rows (all n rows when rows is
// null) and columns of a row-major matrix with leading dimension ld.
void gather(const float* src, int64_t ld, const std::vector<int>* rows, int n, const std::vector<int>& cols,
            std::vector<float>& dst) {
  const int nr = rows ? int(rows->size()) : n, nc = int(cols.size());
  dst.resize(size_t(nr) * size_t(nc));
  for (int r = 0; r < nr; ++r) {
    const float* s = src + int64_t(rows ? (*rows)[size_t(r)] : r) * ld;
    float* d = dst.data() + size_t(r) * nc;
    for (int j = 0; j < nc; ++j) d[j] = s[cols[size_t(j)]];
  }
}

}  // namespace

TilePattern::TilePattern(int n, int k, int tile_rows, int tile_cols) : n_(n), k_(k), tr_(tile_rows), tc_(tile_cols) {
  if (n < 1 || k < 1 || tile_rows < 1 || tile_cols < 1)
    throw Error(strfmt("tile pattern needs positive sizes, got W %dx%d with tiles %dx%d", n, k, tile_rows, tile_cols));
  rows_ = (n + tr_ - 1) / tr_;
  cols_ = (k + tc_ - 1) / tc_;
  set(1, 0);
}

int TilePattern::row_end(int a) const { return std::min(n_, (a + 1) * tr_); }
int TilePattern::col_end(int b) const { return std::min(k_, (b + 1) * tc_); }

void TilePattern::set(int period, int offset) {
  if (period < 1 || offset < 0 || offset >= period)
    throw Error(strfmt("tile pattern: need period >= 1 and 0 <= offset < period, got %d, %d", period, offset));
  if (period == period_ && offset == offset_ && !class_rows_.empty()) return;
  period_ = period;
  offset_ = offset;
  build_classes();
}

bool TilePattern::kept(int a, int b) const { return (int64_t(a) * cols_ + b + offset_) % period_ == 0; }

int64_t TilePattern::kept_weights() const {
  int64_t total = 0;
  for (int a = 0; a < rows_; ++a)
    for (int b = 0; b < cols_; ++b)
      if (kept(a, b)) total += int64_t(row_end(a) - row_begin(a)) * (col_end(b) - col_begin(b));
  return total;
}

void TilePattern::build_classes() {
  class_rows_.assign(size_t(period_), {});
  class_cols_.assign(size_t(period_), {});
  for (int a = 0; a < rows_; ++a) {
    const int r = int(((-(int64_t(a) * cols_ + offset_)) % period_ + period_) % period_);
    for (int i = row_begin(a); i < row_end(a); ++i) class_rows_[size_t(r)].push_back(i);
  }
  for (int b = 0; b < cols_; ++b)
    for (int j = col_begin(b); j < col_end(b); ++j) class_cols_[size_t(b % period_)].push_back(j);
}

void TilePattern::forward(bool grouped, const float* x, int m, const float* w, const float* bias, float scale,
                          float* y) {
  for (int i = 0; i < m; ++i) {
    float* yi = y + int64_t(i) * n_;
    if (bias) std::memcpy(yi, bias, sizeof(float) * size_t(n_));
    else std::fill(yi, yi + n_, 0.0f);
  }
  if (!grouped) {
    for (int a = 0; a < rows_; ++a)
      for (int b = 0; b < cols_; ++b) {
        if (!kept(a, b)) continue;
        const int r0 = row_begin(a), c0 = col_begin(b);
        gemm(false, true, m, row_end(a) - r0, col_end(b) - c0, scale, x + c0, k_, w + int64_t(r0) * k_ + c0, k_, 1.0f,
             y + r0, n_);
      }
    return;
  }
  for (int c = 0; c < period_; ++c) {
    const auto& rows = class_rows_[size_t(c)];
    const auto& cols = class_cols_[size_t(c)];
    if (rows.empty() || cols.empty()) continue;
    const int nr = int(rows.size()), nc = int(cols.size());
    gather(x, k_, nullptr, m, cols, xc_);
    gather(w, k_, &rows, 0, cols, wc_);
    yc_.resize(size_t(m) * nr);
    gemm(false, true, m, nr, nc, scale, xc_.data(), wc_.data(), 0.0f, yc_.data());
    for (int i = 0; i < m; ++i)
      for (int r = 0; r < nr; ++r) y[int64_t(i) * n_ + rows[size_t(r)]] += yc_[size_t(i) * nr + r];
  }
}

void TilePattern::backward(bool grouped, const float* x, int m, const float* w, const float* dy, float scale,
                           float* dw, float* dx) {
  if (!grouped) {
    if (dx)
      for (int i = 0; i < m; ++i) std::fill(dx + int64_t(i) * k_, dx + int64_t(i + 1) * k_, 0.0f);
    for (int a = 0; a < rows_; ++a)
      for (int b = 0; b < cols_; ++b) {
        if (!kept(a, b)) continue;
        const int r0 = row_begin(a), c0 = col_begin(b), nr = row_end(a) - r0, nc = col_end(b) - c0;
        if (dw) gemm(true, false, nr, nc, m, scale, dy + r0, n_, x + c0, k_, 1.0f, dw + int64_t(r0) * k_ + c0, k_);
        if (dx) gemm(false, false, m, nc, nr, scale, dy + r0, n_, w + int64_t(r0) * k_ + c0, k_, 1.0f, dx + c0, k_);
      }
    return;
  }
  if (dx)
    for (int i = 0; i < m; ++i) std::fill(dx + int64_t(i) * k_, dx + int64_t(i + 1) * k_, 0.0f);
  for (int c = 0; c < period_; ++c) {
    const auto& rows = class_rows_[size_t(c)];
    const auto& cols = class_cols_[size_t(c)];
    if (rows.empty() || cols.empty()) continue;
    const int nr = int(rows.size()), nc = int(cols.size());
    gather(dy, n_, nullptr, m, rows, yc_);
    gather(x, k_, nullptr, m, cols, xc_);
    if (dw) {
      dwc_.resize(size_t(nr) * nc);
      gemm(true, false, nr, nc, m, scale, yc_.data(), xc_.data(), 0.0f, dwc_.data());
      for (int r = 0; r < nr; ++r) {
        float* d = dw + int64_t(rows[size_t(r)]) * k_;
        const float* s = dwc_.data() + size_t(r) * nc;
        for (int j = 0; j < nc; ++j) d[cols[size_t(j)]] += s[j];
      }
    }
    if (dx) {
      gather(w, k_, &rows, 0, cols, wc_);
      dxc_.resize(size_t(m) * nc);
      gemm(false, false, m, nc, nr, scale, yc_.data(), wc_.data(), 0.0f, dxc_.data());
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < nc; ++j) dx[int64_t(i) * k_ + cols[size_t(j)]] = dxc_[size_t(i) * nc + j];
    }
  }
}

}  // namespace dsg
