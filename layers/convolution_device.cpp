// Convolution layer (layers/convolution.hpp): the device code, forward_cuda / backward_cuda with
// the kernel bodies of layers/conv_kernels.hpp and the GEMMs through the device's ops.
#include <algorithm>

#include "runtime/device_array.hpp"
#include "runtime/launch.hpp"
#include "runtime/ops.hpp"
#include "layers/conv_kernels.hpp"
#include "layers/convolution.hpp"

namespace dsg {

// Device code (layers/conv_kernels.hpp): per chunk of images, im2col on the device, one GEMM per
// group through the device's ops, and a reorder to NCHW adding the bias (channels not computed
// are written as 0). Structured execution gathers the compact weights on the device every
// forward (one thread per compact entry, through a map uploaded once per structure change).
void ConvolutionLayer::forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) {
  const Device& d = ctx.device;
  const DeviceOps& ops = ops_for(d);
  const conv_kernels::ConvShape s = kernel_shape();
  const int64_t spatial = int64_t(ho_) * wo_, taps = int64_t(kh_) * kw_;
  const int ck = ig_[group_], mk = og_[group_];
  upload_structure();
  const float* w = blobs_[0]->data(d);
  if (sparse_) {
    wc_dev_.resize(size_t(woff_[group_]));
    launch(d, woff_[group_], conv_kernels::GatherWeights{dwmap_.on(d), w, wc_dev_.mutable_on(d)});
    w = wc_dev_.on(d);
  }
  const float* bias = bias_term_ ? blobs_[1]->data(d) : nullptr;
  const int* in_chan = ins_.empty() ? nullptr : dins_.on(d);
  const int* out_row = outs_.empty() ? nullptr : dout_row_.on(d);
  dchunk_ = device_chunk();
  dcol_.resize(size_t(std::max<int64_t>(1, ck * taps) * dchunk_ * spatial));
  dbuf_.resize(size_t(std::max(1, mk) * dchunk_ * spatial));
  dcol_holds_ = -1;
  for (size_t b = 0; b < bottom.size(); ++b) {
    const float* x = bottom[b]->data(d);
    float* y = top[b]->mutable_data(d);
    for (int n0 = 0; n0 < n_; n0 += dchunk_) {
      const int nb = std::min(dchunk_, n_ - n0);
      const int64_t len = nb * spatial;
      float* col = dcol_.mutable_on(d);
      float* out = dbuf_.mutable_on(d);
      launch(d, ck * taps * len, conv_kernels::Im2col{s, n0, len, in_chan, x, col});
      for (int g = 0; g < group_; ++g) {
        const int rows = og_[g + 1] - og_[g];
        const int64_t k = int64_t(ig_[g + 1] - ig_[g]) * taps;
        if (rows == 0) continue;
        if (k == 0) {
          ops.fill(rows * len, 0.0f, out + og_[g] * len);
          continue;
        }
        ops.gemm(false, false, rows, int(len), int(k), 1.0f, w + woff_[g], int(k), col + ig_[g] * taps * len,
                 int(len), 0.0f, out + og_[g] * len, int(len));
      }
      launch(d, int64_t(nb) * m_ * spatial, conv_kernels::ScatterOutput{s, n0, len, out_row, out, bias, y});
    }
    if (dchunk_ >= n_) dcol_holds_ = static_cast<int>(b);
  }
}

// As backward_cpu, on the device: the top diff reordered to [computed rows, chunk Ho Wo], db from
// its row sums (a GEMM with a ones vector, added to the kept entries), dW by GEMM (structured:
// into the compact diff, scatter-added to the kept entries at the end), dcol = W^T dY and
// col2im as one thread per input pixel (0 for input channels not im2col'd).
void ConvolutionLayer::backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down,
                                     const TensorVec& bottom, const Context& ctx) {
  const Device& d = ctx.device;
  const DeviceOps& ops = ops_for(d);
  const conv_kernels::ConvShape s = kernel_shape();
  const bool need_w = param_propagate_down(0);
  const bool need_b = bias_term_ && param_propagate_down(1);
  const int64_t spatial = int64_t(ho_) * wo_, taps = int64_t(kh_) * kw_;
  const int mk = og_[group_], ck = ig_[group_];
  const float* w = sparse_ ? wc_dev_.on(d) : blobs_[0]->data(d);
  const int* out_chan = outs_.empty() ? nullptr : douts_.on(d);
  const int* in_chan = ins_.empty() ? nullptr : dins_.on(d);
  const int* in_row = ins_.empty() ? nullptr : din_row_.on(d);
  bool dwc_empty = true;  // structured: dwc_dev_ holds nothing of this call yet
  if (sparse_ && need_w) dwc_dev_.resize(size_t(woff_[group_]));
  for (size_t b = 0; b < bottom.size(); ++b) {
    const bool need_x = propagate_down[b];
    if (!need_w && !need_b && !need_x) continue;
    const float* dy = top[b]->diff(d);
    for (int n0 = 0; n0 < n_; n0 += dchunk_) {
      const int nb = std::min(dchunk_, n_ - n0);
      const int64_t len = nb * spatial;
      float* buf = dbuf_.mutable_on(d);
      launch(d, mk * len, conv_kernels::GatherDiff{s, n0, len, out_chan, dy, buf});
      if (need_b && mk > 0) {
        dones_.resize(size_t(len));
        dsums_.resize(size_t(mk));
        float* ones = dones_.mutable_on(d);
        ops.fill(len, 1.0f, ones);
        ops.gemm(false, false, mk, 1, int(len), 1.0f, buf, int(len), ones, 1, 0.0f, dsums_.mutable_on(d), 1);
        launch(d, mk, conv_kernels::AddBiasDiff{out_chan, dsums_.on(d), blobs_[1]->mutable_diff(d)});
      }
      float* col = dcol_.mutable_on(d);
      if (need_w) {
        if (dcol_holds_ != int(b)) {
          launch(d, ck * taps * len, conv_kernels::Im2col{s, n0, len, in_chan, bottom[b]->data(d), col});
          dcol_holds_ = dchunk_ >= n_ ? static_cast<int>(b) : -1;
        }
        float* dw = sparse_ ? dwc_dev_.mutable_on(d) : blobs_[0]->mutable_diff(d);
        const float beta = sparse_ && dwc_empty ? 0.0f : 1.0f;
        for (int g = 0; g < group_; ++g) {
          const int rows = og_[g + 1] - og_[g];
          const int64_t k = (ig_[g + 1] - ig_[g]) * taps;
          if (rows == 0 || k == 0) continue;
          ops.gemm(false, true, rows, int(k), int(len), 1.0f, buf + og_[g] * len, int(len),
                   col + ig_[g] * taps * len, int(len), beta, dw + woff_[g], int(k));
        }
        dwc_empty = false;
      }
      if (need_x) {
        dcol_holds_ = -1;
        for (int g = 0; g < group_; ++g) {
          const int rows = og_[g + 1] - og_[g];
          const int64_t k = (ig_[g + 1] - ig_[g]) * taps;
          if (k == 0) continue;
          if (rows == 0) {
            ops.fill(k * len, 0.0f, col + ig_[g] * taps * len);
            continue;
          }
          ops.gemm(true, false, int(k), int(len), rows, 1.0f, w + woff_[g], int(k), buf + og_[g] * len, int(len),
                   0.0f, col + ig_[g] * taps * len, int(len));
        }
        launch(d, int64_t(nb) * c_ * h_ * w_,
               conv_kernels::Col2im{s, n0, len, in_row, col, bottom[b]->mutable_diff(d)});
      }
    }
  }
  if (sparse_ && need_w && !dwc_empty)
    launch(d, woff_[group_], conv_kernels::ScatterAddWeights{dwmap_.on(d), dwc_dev_.on(d), blobs_[0]->mutable_diff(d)});
}

conv_kernels::ConvShape ConvolutionLayer::kernel_shape() const {
  return conv_kernels::ConvShape{c_, h_, w_, m_, ho_, wo_, kh_, kw_, sh_, sw_, ph_, pw_, dh_, dw_};
}

// Images per device im2col + GEMM step (conv_kernels::device_column_floats of columns).
int ConvolutionLayer::device_chunk() const {
  const int64_t per_image = std::max<int64_t>(1, int64_t(ig_[group_]) * kh_ * kw_ * ho_ * wo_);
  return static_cast<int>(std::clamp<int64_t>(conv_kernels::device_column_floats / per_image, 1, std::max(1, n_)));
}

// The structure of the device code as index lists (uploaded only when they change): kept
// output / input channels, channel -> compact row maps, and the full index of every compact
// weight.
void ConvolutionLayer::upload_structure() {
  if (!sparse_) return;
  douts_.set(outs_);
  dins_.set(ins_);
  dout_row_.set(out_row_);
  din_row_.set(in_row_);
  wmap_.resize(size_t(woff_[group_]));
  for_each_weight_run([&](int64_t c, int64_t f, int64_t n) {
    for (int64_t i = 0; i < n; ++i) wmap_[size_t(c + i)] = int(f + i);
  });
  dwmap_.set(wmap_);
}

}  // namespace dsg
