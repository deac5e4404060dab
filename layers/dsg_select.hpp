// Dynamic Sparse Graph selection (Liu et al., ICLR 2019) for a layer whose outputs are
// y[r, j] = <x_r, w_j> over input rows x_r (the samples of an InnerProduct, the im2col windows of
// a Convolution) and weight rows w_j. Used by layers/inner_product.cpp and layers/convolution.cpp
// when a layer has dsg_param.
//
// Dimension-reduction search: the rows and the weights are projected by one sparse random
// projection (layers/drs.hpp, s = 3, drawn once per layer), the outputs are estimated in the
// projected space and the (1 - gamma) n largest estimates are kept:
//   PER_SAMPLE    per row (as published): select_rows() gives `keep` output indices per row, and
//                 forward_rows() / backward_rows() compute only those (dot products and axpys
//                 row by row; no GEMM dimension shrinks);
//   BATCH_SHARED  once for all rows of the mini-batch: add_rows() accumulates every output's summed
//                 positive estimate and kept_outputs() returns the best `keep` outputs, which the
//                 layer then computes with its structured (smaller-GEMM) path.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dsg.pb.h"
#include "layers/drs.hpp"

namespace dsg {

class DsgSelector {
 public:
  // Reads param.dsg_param() for a layer with n_out outputs over d-dimensional rows. `stream`
  // keys the projection (the layer's key). Throws dsg::Error (prefixed by `where`) for gamma
  // outside [0, 1), epsilon outside (0, 1) or a negative projection_dim.
  void configure(const LayerParameter& param, const std::string& where, int n_out, int d, uint64_t stream);
  bool configured() const { return projection_ != nullptr; }
  // Whether the selection runs in a pass of this phase.
  bool active(Phase phase) const { return configured() && (phase == TRAIN || in_test_); }
  bool per_sample() const { return per_sample_; }
  bool double_mask() const { return double_mask_; }
  int keep() const { return keep_; }
  int n_out() const { return n_out_; }
  int projection_dim() const { return projection_ ? projection_->k() : 0; }

  // Projects the weights w [n_out x d] (once per pass, before any select_rows / add_rows).
  void project_weights(const float* w);

  // PER_SAMPLE: the `keep` outputs with the largest estimates for each of `rows` rows of x (row
  // stride ldx), ascending, into sel[row * keep ...] (sel must hold rows * keep ints).
  void select_rows(const float* x, int64_t rows, int64_t ldx, int* sel);

  // BATCH_SHARED: reset, accumulate the rows' positive estimates per output, and read the kept
  // outputs (ascending; ties: lower index).
  void begin_batch();
  void add_rows(const float* x, int64_t rows, int64_t ldx);
  // The same for inputs stored as columns: x [d x cols] (row stride ldx), e.g. im2col's windows.
  // `rows` (optional, d' entries): the input dimensions x's rows hold when some are known to be
  // zero and left out (x is then [d' x cols]).
  void add_columns(const float* x, int64_t cols, int64_t ldx, const std::vector<int>* rows = nullptr);
  std::vector<int> kept_outputs() const;

  // Search operations of the last pass, as DSG counts them: the sparse projection's additions
  // (weights and rows) plus the estimate's MACs. (The projection itself runs as a GEMM with the
  // dense form of R, which is faster on a CPU than the sparse additions.)
  double search_ops() const { return search_ops_; }
  void reset_search_ops() { search_ops_ = 0; }

 private:
  void estimate(const float* x, int64_t rows, int64_t ldx);

  std::unique_ptr<SparseProjection> projection_;
  int n_out_ = 0, d_ = 0, keep_ = 0;
  bool per_sample_ = true, double_mask_ = true, in_test_ = true;
  std::vector<float> dense_r_;  // R / sqrt(k), [k x d]
  std::vector<float> r_rows_;   // its columns for the kept input dimensions (add_columns)
  std::vector<float> pw_, px_, est_;
  std::vector<float> score_;
  double search_ops_ = 0;
};

// out[r * keep + j] = <x_r, w[sel[r * keep + j]]> for `rows` rows of x (stride ldx), w [n x d].
void dsg_forward_rows(const float* x, int64_t rows, int64_t ldx, const float* w, int d, const int* sel, int keep,
                      float* out);

// Backward of dsg_forward_rows for the selected gradients g [rows x keep]: dx_r = sum_j g[r, j]
// w[sel[r, j]] (written, row stride lddx; skipped when dx is null), dw[m] += sum over (r, j) with
// sel[r, j] = m of g[r, j] x_r (skipped when dw is null), db[m] += the same sum of g (when db is
// given). n: number of weight rows.
void dsg_backward_rows(const float* x, int64_t rows, int64_t ldx, const float* w, int n, int d, const int* sel,
                       int keep, const float* g, float* dx, int64_t lddx, float* dw, float* db);

}  // namespace dsg
