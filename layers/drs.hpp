// Dimension-reduction search (DRS) of the Dynamic Sparse Graph (Liu et al., ICLR 2019): estimate a
// layer's outputs Y = X W^T cheaply in a random low-dimensional space and keep only the largest
// ones. A sparse random projection f(z) = R z / sqrt(k), with R (k x d) entries +sqrt(s), 0, -sqrt(s)
// drawn with probabilities 1/(2s), 1 - 1/s, 1/(2s) (Achlioptas; DSG uses s = 3), preserves inner
// products in expectation, E[<f(x), f(w)>] = <x, w>, and within (1 +- epsilon) with high
// probability when k >= 4 ln(points) / (epsilon^2 / 2 - epsilon^3 / 3) (Johnson-Lindenstrauss).
#pragma once
#include <cstdint>
#include <vector>

namespace dsg {

class SparseProjection {
 public:
  // Draws R from the counter-based generator (seed, stream): the same arguments give the same R.
  SparseProjection(int k, int d, int s, uint64_t seed, uint64_t stream);
  int k() const { return k_; }
  int d() const { return d_; }
  // out [m x k] = rows of a [m x d] (row stride lda) projected: f(a_i).
  void project_rows(const float* a, int64_t m, int64_t lda, float* out) const;
  // R / sqrt(k) as a dense row-major [k x d] matrix (for BLAS: on a CPU a GEMM with the dense
  // matrix is faster than the sparse additions, although it multiplies the zeros).
  std::vector<float> dense() const;
  // Non-zero entries of R (for operation counts).
  int64_t nonzeros() const { return int64_t(col_.size()); }

 private:
  int k_, d_;
  float scale_;                 // sqrt(s) / sqrt(k)
  std::vector<int> start_;      // per row of R: first entry in col_ / sign_
  std::vector<int> col_;
  std::vector<int8_t> sign_;
};

// The JL dimension for `points` vectors at distortion epsilon (0 < epsilon < 1), at most `cap`.
int jl_dimension(int64_t points, double epsilon, int cap);

// Estimated outputs est [m x n] = f(X) f(W)^T for X [m x d] (row stride ldx) and W [n x d].
void drs_estimate(const SparseProjection& r, const float* x, int64_t m, int64_t ldx, const float* w, int64_t n,
                  std::vector<float>& est);

// round((1 - gamma) n), at least 1: the outputs DSG keeps.
int64_t kept_count(double gamma, int64_t n);

// Per row of y [m x n]: mask (1 = kept) of its `keep` largest values (ties: lower index).
void topk_row_mask(const float* y, int64_t m, int64_t n, int64_t keep, std::vector<uint8_t>& mask);

// Batch-shared selection: the `keep` columns with the largest sum over rows of max(y, 0) (ties:
// lower index), ascending.
std::vector<int> topk_columns(const float* y, int64_t m, int64_t n, int64_t keep);

}  // namespace dsg
