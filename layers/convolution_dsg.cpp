// Convolution layer (layers/convolution.hpp): the Dynamic Sparse Graph path (dsg_param,
// layers/dsg_select.hpp), PER_SAMPLE as dot products over the im2col windows and BATCH_SHARED as a
// selection of the output channels for the structured path.
#include <algorithm>
#include <vector>

#include "runtime/error.hpp"
#include "layers/conv_im2col.hpp"
#include "layers/convolution.hpp"
#include "layers/dsg_select.hpp"

namespace dsg {

using namespace conv_detail;

// DSG: the im2col windows of images [n0, n0 + nb) as rows [nb Ho Wo, C kh kw]. When the rows of
// the whole batch fit in kWindowCacheFloats, forward keeps them in colt_ for backward
// (cached = true reads them back instead of recomputing).
const float* ConvolutionLayer::window_rows(const float* x, int n0, int nb, bool cached) {
  const int64_t spatial = int64_t(ho_) * wo_, len = int64_t(nb) * spatial, d = int64_t(c_) * kh_ * kw_;
  const bool whole = int64_t(n_) * spatial * d <= kWindowCacheFloats;
  float* rows = nullptr;
  if (whole) {
    colt_.resize(size_t(int64_t(n_) * spatial * d));
    rows = colt_.data() + int64_t(n0) * spatial * d;
    if (cached) return rows;
  } else {
    colt_.resize(size_t(len * d));
    rows = colt_.data();
  }
  im2row(x, n0, nb, rows);
  return rows;
}

// The windows of images [n0, n0 + nb) as rows [nb Ho Wo, C kh kw], and the adjoint.
void ConvolutionLayer::im2row(const float* x, int n0, int nb, float* rows) const {
  im2row_images(geometry(), c_, nb, x + int64_t(n0) * c_ * h_ * w_, rows);
}

void ConvolutionLayer::row2im(const float* rows, int n0, int nb, float* dx) const {
  row2im_images(geometry(), c_, nb, rows, dx + int64_t(n0) * c_ * h_ * w_);
}

// DSG, PER_SAMPLE: the kept output channels of every window, as dot products over the window.
void ConvolutionLayer::forward_dsg_rows(const Tensor& bottom, Tensor& top) {
  if (sparse_ || weight_operator_)
    throw Error(where() + "dsg_param PER_SAMPLE cannot be combined with structured sparsity or a weight operator");
  const int keep = dsg_.keep(), d = c_ * kh_ * kw_;
  const int64_t spatial = int64_t(ho_) * wo_;
  const float* w = blobs_[0]->data();
  const float* bias = bias_term_ ? blobs_[1]->data() : nullptr;
  sel_.resize(size_t(n_) * spatial * keep);
  dsg_.project_weights(w);
  float* y = top.mutable_data();
  std::fill(y, y + top.count(), 0.0f);
  mask_.assign(size_t(top.count()), 0);
  for (int n0 = 0; n0 < n_; n0 += chunk_) {
    const int nb = std::min(chunk_, n_ - n0);
    const int64_t len = nb * spatial;
    const float* rows = window_rows(bottom.data(), n0, nb, false);
    int* sel = sel_.data() + int64_t(n0) * spatial * keep;
    dsg_.select_rows(rows, len, d, sel);
    yc_.resize(size_t(len) * keep);
    dsg_forward_rows(rows, len, d, w, d, sel, keep, yc_.data());
    for (int64_t r = 0; r < len; ++r) {
      const int64_t n = n0 + r / spatial, pos = r % spatial;
      for (int j = 0; j < keep; ++j) {
        const int m = sel[r * keep + j];
        const int64_t o = (n * m_ + m) * spatial + pos;
        y[o] = yc_[size_t(r * keep + j)] + (bias ? bias[m] : 0.0f);
        mask_[size_t(o)] = 1;
      }
    }
  }
}

void ConvolutionLayer::backward_dsg_rows(const Tensor& top, bool need_x, Tensor& bottom) {
  const bool need_w = param_propagate_down(0), need_b = bias_term_ && param_propagate_down(1);
  if (!need_w && !need_b && !need_x) return;
  const int keep = dsg_.keep(), d = c_ * kh_ * kw_;
  const int64_t spatial = int64_t(ho_) * wo_;
  const float* dy = top.diff();
  for (int n0 = 0; n0 < n_; n0 += chunk_) {
    const int nb = std::min(chunk_, n_ - n0);
    const int64_t len = nb * spatial;
    const float* rows = window_rows(bottom.data(), n0, nb, true);
    const int* sel = sel_.data() + int64_t(n0) * spatial * keep;
    yc_.resize(size_t(len) * keep);
    for (int64_t r = 0; r < len; ++r) {
      const int64_t n = n0 + r / spatial, pos = r % spatial;
      for (int j = 0; j < keep; ++j) yc_[size_t(r * keep + j)] = dy[(n * m_ + sel[r * keep + j]) * spatial + pos];
    }
    if (need_x) dcolt_.resize(size_t(len) * d);
    dsg_backward_rows(rows, len, d, blobs_[0]->data(), m_, d, sel, keep, yc_.data(),
                      need_x ? dcolt_.data() : nullptr, d, need_w ? blobs_[0]->mutable_diff() : nullptr,
                      need_b ? blobs_[1]->mutable_diff() : nullptr);
    if (need_x) row2im(dcolt_.data(), n0, nb, bottom.mutable_diff());
  }
}

// DSG, BATCH_SHARED: the output channels kept for the whole pass become active_outputs.
void ConvolutionLayer::select_shared(const Tensor& bottom) {
  const int64_t spatial = int64_t(ho_) * wo_, taps = int64_t(kh_) * kw_;
  // Input channels known to be zero (an earlier batch-shared selection) are not im2col'd.
  std::vector<int> rows;
  for (int c : ins_)
    for (int64_t t = 0; t < taps; ++t) rows.push_back(int(c * taps + t));
  dsg_.project_weights(blobs_[0]->data());
  dsg_.begin_batch();
  for (int n0 = 0; n0 < n_; n0 += chunk_) {
    const int nb = std::min(chunk_, n_ - n0);
    im2col(bottom.data(), n0, nb, col_.mutable_data(), nb * spatial);
    dsg_.add_columns(col_.data(), nb * spatial, nb * spatial, ins_.empty() ? nullptr : &rows);
  }
  col_prefilled_ = chunk_ >= n_;  // the structured forward reuses these columns
  std::vector<int> kept = dsg_.kept_outputs();
  mask_.assign(size_t(n_) * m_ * spatial, 0);
  for (int n = 0; n < n_; ++n)
    for (int m : kept) std::fill_n(mask_.begin() + (int64_t(n) * m_ + m) * spatial, spatial, uint8_t(1));
  set_active_outputs(std::move(kept));
  configure_structure();
}

}  // namespace dsg
