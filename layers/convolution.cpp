// Convolution (Caffe's ConvolutionParameter), 2-D NCHW only: bottoms [N, C, H, W] ->
// tops [N, M, Ho, Wo] with Ho = (H + 2 pad_h - (dilation_h (kernel_h - 1) + 1)) / stride_h + 1.
// Weight [M, C/group, kernel_h, kernel_w], bias [M]. Several bottoms (each to its own top, all of
// the same shape) share the parameters, as in Caffe.
//
// Implementation: a batched im2col of a chunk of n images into a column buffer [C kh kw, n Ho Wo]
// (rows of group g are contiguous), one sgemm per group giving [M/g, n Ho Wo], then a reorder to
// NCHW adding the bias. A chunk holds as many images as fit in kColumnFloatsPerThread floats per
// thread (at least one), so the columns stay in cache between im2col and the GEMM that reads
// them. Backward reorders dY to [M, n Ho Wo], accumulates dW += dY col^T and db += row sums, and
// computes dcol = W^T dY followed by col2im for dX. When the whole batch fits in one chunk,
// backward reuses the columns of the preceding forward; otherwise it recomputes them per chunk.
//
// Structured sparsity (Layer::active_outputs / active_inputs, set by sparsity/structure.cpp):
// only the kept output channels are computed (the GEMM's M shrinks; the other channels of the top
// are written as exact zeros) and only the kept input channels are im2col'd (K shrinks to
// kept kh kw; the other channels are known to be zero). The kept weight rows / columns are
// gathered into a compact copy every forward. Backward computes dW and db for the kept entries
// only (other entries of the diffs are left as they are), and dX from the kept rows, writing 0 for
// input channels that were skipped.
//
// Dynamic Sparse Graph (dsg_param, layers/dsg_select.hpp; group 1, one bottom): PER_SAMPLE keeps
// (1 - gamma) of the output channels at every output position of every image, chosen on the
// estimates of the im2col windows, and computes them as dot products over the window (the other
// outputs are exact zeros, no bias); backward runs through the kept outputs only. BATCH_SHARED
// selects the output channels once per pass and runs the structured path with them.
//
// Device code (forward_cuda / backward_cuda, bodies in layers/conv_kernels.hpp): the dense and
// structured paths above with im2col, the reorders and col2im as one thread per entry (col2im
// gathers per input pixel in the CPU's order: deterministic) and the GEMMs through the device's
// ops, chunked by conv_kernels::device_column_floats. The weight operator and DSG run on the CPU.
#include <algorithm>
#include <cstring>
#include <vector>

#include "runtime/device_array.hpp"
#include "runtime/error.hpp"
#include "runtime/filler.hpp"
#include "runtime/launch.hpp"
#include "runtime/layer.hpp"
#include "runtime/math.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"
#include "layers/conv_geometry.hpp"
#include "layers/conv_im2col.hpp"
#include "layers/conv_kernels.hpp"
#include "layers/dsg_select.hpp"
#include "layers/structured.hpp"

namespace dsg {
namespace {

using namespace conv_detail;

constexpr int64_t kColumnFloatsPerThread = int64_t(1) << 18;  // 1 MiB, about one core's L2
constexpr int64_t kGrainElems = kParallelGrain;  // elements of work per parallel_for chunk

}  // namespace

class ConvolutionLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Convolution"; }
  std::vector<int> weight_blobs() const override { return {0}; }
  // Filters are the weight rows [num_output, C / group, kh, kw]; inputs are channels.
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kProducer;
    f.rows_are_outputs = true;
    f.inputs = ChannelFlow::kChannels;
    f.groups = int(param_.convolution_param().group());
    return f;
  }
  // Device code: dense and structured (active outputs / inputs); the weight operator and DSG's
  // dynamic selection run on the CPU only.
  bool supports(DeviceType device, LayerMode mode) const override {
    if (mode == LayerMode::kDense || mode == LayerMode::kActiveOutputs || mode == LayerMode::kActiveInputs)
      return true;
    return device == DeviceType::CPU && (mode == LayerMode::kWeightOperator || mode == LayerMode::kDynamicSelection);
  }
  void set_num_outputs(LayerParameter& param, int outputs) const override {
    param.mutable_convolution_param()->set_num_output(uint32_t(outputs));
  }
  int min_num_bottoms() const override { return 1; }
  int min_num_tops() const override { return 1; }

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec& top, std::mt19937_64& rng) override {
    const ConvolutionParameter& p = param_.convolution_param();
    if (bottom.size() != top.size())
      throw Error(where() + strfmt("needs as many tops as bottoms, got %zu bottoms and %zu tops",
                                   bottom.size(), top.size()));
    read_geometry(p);
    const Tensor& x = *bottom[0];
    if (x.num_axes() != 4)
      throw Error(where() + "only 2-D convolution of 4-axis NCHW bottoms is supported, got bottom shape " +
                  x.shape_string());
    if (p.axis() != 1 && p.axis() != -3)
      throw Error(where() + strfmt("only axis 1 (channels of NCHW) is supported, got axis %d", p.axis()));
    if (!p.has_num_output() || p.num_output() == 0)
      throw Error(where() + "convolution_param.num_output must be set and positive");
    m_ = static_cast<int>(p.num_output());
    c_ = x.shape(1);
    group_ = static_cast<int>(p.group());
    if (group_ <= 0 || c_ % group_ != 0 || m_ % group_ != 0)
      throw Error(where() + strfmt("group %d must divide both the input channels (%d) and num_output (%d)",
                                   group_, c_, m_));
    bias_term_ = p.bias_term();
    if (param_.has_dsg_param()) {
      if (group_ != 1 || bottom.size() != 1)
        throw Error(where() + "dsg_param needs group 1 and a single bottom");
      dsg_.configure(param_, where(), m_, c_ * kh_ * kw_, key());
    }

    std::vector<int> wshape{m_, c_ / group_, kh_, kw_};
    if (!blobs_.empty()) {
      size_t expected = bias_term_ ? 2 : 1;
      if (blobs_.size() != expected || blobs_[0]->shape() != wshape ||
          (bias_term_ && blobs_[1]->shape() != std::vector<int>{m_}))
        throw Error(where() + "preset parameter blobs do not match num_output/group/kernel/bias_term");
      return;
    }
    blobs_.push_back(std::make_shared<Tensor>(wshape));
    fill(p.weight_filler(), *blobs_[0], rng);
    if (bias_term_) {
      blobs_.push_back(std::make_shared<Tensor>(std::vector<int>{m_}));
      fill(p.bias_filler(), *blobs_[1], rng);
    }
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    if (bottom.size() != top.size())
      throw Error(where() + strfmt("needs as many tops as bottoms, got %zu bottoms and %zu tops",
                                   bottom.size(), top.size()));
    const Tensor& x = *bottom[0];
    if (x.num_axes() != 4 || x.shape(1) != c_)
      throw Error(where() + strfmt("expects bottoms [N, %d, H, W], got ", c_) + x.shape_string());
    for (size_t b = 1; b < bottom.size(); ++b)
      if (bottom[b]->shape() != x.shape())
        throw Error(where() + "all bottoms must have the same shape; bottom 0 is " + x.shape_string() +
                    strfmt(", bottom %zu is ", b) + bottom[b]->shape_string());
    n_ = x.shape(0);
    h_ = x.shape(2);
    w_ = x.shape(3);
    int ext_h = dh_ * (kh_ - 1) + 1, ext_w = dw_ * (kw_ - 1) + 1;
    if (h_ + 2 * ph_ < ext_h || w_ + 2 * pw_ < ext_w)
      throw Error(where() + strfmt("kernel extent %dx%d (kernel %dx%d, dilation %dx%d) is larger than the "
                                   "padded input %dx%d (input %dx%d, pad %dx%d)",
                                   ext_h, ext_w, kh_, kw_, dh_, dw_, h_ + 2 * ph_, w_ + 2 * pw_, h_, w_, ph_, pw_));
    ho_ = (h_ + 2 * ph_ - ext_h) / sh_ + 1;
    wo_ = (w_ + 2 * pw_ - ext_w) / sw_ + 1;
    for (Tensor* t : top) t->reshape({n_, m_, ho_, wo_});
    hspan_.clear();
    wspan_.clear();
    for (int i = 0; i < kh_; ++i) hspan_.push_back(span(i * dh_ - ph_, sh_, h_, ho_));
    for (int j = 0; j < kw_; ++j) wspan_.push_back(span(j * dw_ - pw_, sw_, w_, wo_));
    configure_structure();

    const int64_t spatial = int64_t(ho_) * wo_;
    const int64_t rows = int64_t(ig_[group_]) * kh_ * kw_;
    const int64_t cap = kColumnFloatsPerThread * num_threads();
    chunk_ = static_cast<int>(std::clamp<int64_t>(cap / std::max<int64_t>(1, rows * spatial), 1, std::max(1, n_)));
    col_.reshape({static_cast<int>(std::max<int64_t>(1, rows)), static_cast<int>(chunk_ * spatial)});
    if (chunk_ > 1 || sparse_ || dsg_.configured()) buf_.reshape({std::max(1, dsg_.configured() ? m_ : og_[group_]), static_cast<int>(chunk_ * spatial)});
  }

  bool set_weight_operator(std::shared_ptr<const WeightOperator> op) override {
    if (op && (op->rows() != m_ || op->cols() != int64_t(c_) * kh_ * kw_ / group_))
      throw Error(where() + strfmt("weight operator is %lldx%lld, the weights are %dx%lld",
                                   static_cast<long long>(op->rows()), static_cast<long long>(op->cols()), m_,
                                   static_cast<long long>(int64_t(c_) * kh_ * kw_ / group_)));
    if (op && (group_ != 1 || dsg_.configured())) return false;
    weight_operator_ = std::move(op);
    return true;
  }

  const std::vector<uint8_t>* dynamic_output_mask() const override { return dsg_on_ ? &mask_ : nullptr; }
  bool double_mask_output() const override { return dsg_.configured() && dsg_.double_mask(); }

  LayerMacs macs() const override {
    LayerMacs c;
    const double windows = double(n_) * ho_ * wo_, taps = double(kh_) * kw_;
    const double dense = windows * m_ * (double(c_) / group_) * taps;
    c.dense_forward = dense;
    c.dense_backward = 2 * dense;
    double done = dense;
    if (dsg_on_ && dsg_.per_sample()) {
      done = windows * dsg_.keep() * c_ * taps;
    } else if (sparse_) {
      done = 0;
      for (int g = 0; g < group_; ++g) done += windows * (og_[g + 1] - og_[g]) * (ig_[g + 1] - ig_[g]) * taps;
    }
    c.forward = done;
    c.backward = 2 * done;
    c.search = dsg_on_ ? dsg_.search_ops() : 0;
    return c;
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    dsg_on_ = dsg_.active(ctx.phase);
    if (dsg_on_ && dsg_.per_sample()) return forward_dsg_rows(*bottom[0], *top[0]);
    if (dsg_on_) select_shared(*bottom[0]);
    else if (dsg_.configured() && !active_outputs().empty()) set_active_outputs({}), configure_structure();
    if (weight_operator_ && sparse_)
      throw Error(where() + "a weight operator cannot be combined with structured (FILTER / CHANNEL) execution");
    const int64_t spatial = int64_t(ho_) * wo_;
    const float* w = sparse_ ? gather_weights() : blobs_[0]->data();
    const float* bias = bias_term_ ? blobs_[1]->data() : nullptr;
    col_holds_ = -1;
    for (size_t b = 0; b < bottom.size(); ++b) {
      const float* x = bottom[b]->data();
      float* y = top[b]->mutable_data();
      for (int n0 = 0; n0 < n_; n0 += chunk_) {
        const int nb = std::min(chunk_, n_ - n0);
        const int64_t len = nb * spatial;
        float* col = col_.mutable_data();
        // All channels computed, one image: the GEMM result [M, Ho Wo] already is the NCHW top plane.
        const bool direct = outs_.empty() && nb == 1;
        float* out = direct ? y + int64_t(n0) * m_ * spatial : buf_.mutable_data();
        if (!col_prefilled_) im2col(x, n0, nb, col, len);
        col_prefilled_ = false;
        for (int g = 0; g < group_; ++g) {
          const int rows = og_[g + 1] - og_[g];
          const int64_t k = int64_t(ig_[g + 1] - ig_[g]) * kh_ * kw_;
          if (rows == 0) continue;
          if (k == 0) {
            zero_row(out + og_[g] * len, rows * len);
            continue;
          }
          if (weight_operator_)
            weight_operator_->multiply(col, len, out);  // group_ == 1: [M, K] x [K, len]
          else
            gemm(false, false, rows, int(len), int(k), 1.0f, w + woff_[g], col + ig_[g] * kh_ * kw_ * len, 0.0f,
                 out + og_[g] * len);
        }
        scatter_output(out, len, y, n0, nb, direct, bias);
      }
      if (chunk_ >= n_) col_holds_ = static_cast<int>(b);
    }
  }

  // Device code (layers/conv_kernels.hpp): per chunk of images, im2col on the device, one GEMM per
  // group through the device's ops, and a reorder to NCHW adding the bias (channels not computed
  // are written as 0). Structured execution gathers the compact weights on the device every
  // forward (one thread per compact entry, through a map uploaded once per structure change).
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
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
  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
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

  // Dense: dW += dY col^T, db += row sums of dY, dcol = W^T dY. Structured: the same on the compact
  // rows / columns; the weight diff is accumulated in dwc_ and added to the kept entries of dW at
  // the end (other entries of dW and db untouched); dX is zero for the channels not in ins_.
  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (weight_operator_) throw Error(where() + "runs through a weight operator (inference only); no backward");
    if (dsg_on_ && dsg_.per_sample()) return backward_dsg_rows(*top[0], propagate_down[0], *bottom[0]);
    const bool need_w = param_propagate_down(0);
    const bool need_b = bias_term_ && param_propagate_down(1);
    const int64_t spatial = int64_t(ho_) * wo_, taps = int64_t(kh_) * kw_;
    const float* w = sparse_ ? wc_.data() : blobs_[0]->data();
    const int mk = og_[group_];
    bool dwc_empty = true;  // structured: dwc_ holds nothing of this call yet
    for (size_t b = 0; b < bottom.size(); ++b) {
      const bool need_x = propagate_down[b];
      if (!need_w && !need_b && !need_x) continue;
      const float* dy = top[b]->diff();
      for (int n0 = 0; n0 < n_; n0 += chunk_) {
        const int nb = std::min(chunk_, n_ - n0);
        const int64_t len = nb * spatial;
        const float* dyc = outs_.empty() && nb == 1 ? dy + int64_t(n0) * m_ * spatial : gather_diff(dy, n0, nb);
        if (need_b) {
          float* db = blobs_[1]->mutable_diff();
          const int* chan = outs_.empty() ? nullptr : outs_.data();
          parallel_for(mk, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, len)),
                       [&](int64_t begin, int64_t end) {
                         for (int64_t r = begin; r < end; ++r) db[chan ? chan[r] : r] += row_sum(dyc + r * len, len);
                       });
        }
        float* col = col_.mutable_data();
        if (need_w) {
          if (col_holds_ != int(b)) {
            im2col(bottom[b]->data(), n0, nb, col, len);
            col_holds_ = chunk_ >= n_ ? static_cast<int>(b) : -1;
          }
          float* dw = sparse_ ? dwc_.data() : blobs_[0]->mutable_diff();
          const float beta = sparse_ && dwc_empty ? 0.0f : 1.0f;
          for (int g = 0; g < group_; ++g) {
            const int rows = og_[g + 1] - og_[g];
            const int64_t k = (ig_[g + 1] - ig_[g]) * taps;
            if (rows == 0 || k == 0) continue;
            gemm(false, true, rows, int(k), int(len), 1.0f, dyc + og_[g] * len, col + ig_[g] * taps * len, beta,
                 dw + woff_[g]);
          }
          dwc_empty = false;
        }
        if (need_x) {
          col_holds_ = -1;
          for (int g = 0; g < group_; ++g) {
            const int rows = og_[g + 1] - og_[g];
            const int64_t k = (ig_[g + 1] - ig_[g]) * taps;
            if (k == 0) continue;
            if (rows == 0) {
              zero_row(col + ig_[g] * taps * len, k * len);
              continue;
            }
            gemm(true, false, int(k), int(len), rows, 1.0f, w + woff_[g], dyc + og_[g] * len, 0.0f,
                 col + ig_[g] * taps * len);
          }
          col2im(col, len, n0, nb, bottom[b]->mutable_diff());
        }
      }
    }
    if (sparse_ && need_w && !dwc_empty) scatter_weight_diff();
  }

 private:
  // DSG: the im2col windows of images [n0, n0 + nb) as rows [nb Ho Wo, C kh kw]. When the rows of
  // the whole batch fit in kWindowCacheFloats, forward keeps them in colt_ for backward
  // (cached = true reads them back instead of recomputing).
  static constexpr int64_t kWindowCacheFloats = int64_t(1) << 26;
  const float* window_rows(const float* x, int n0, int nb, bool cached) {
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
  void im2row(const float* x, int n0, int nb, float* rows) const {
    im2row_images(geometry(), c_, nb, x + int64_t(n0) * c_ * h_ * w_, rows);
  }
  void row2im(const float* rows, int n0, int nb, float* dx) const {
    row2im_images(geometry(), c_, nb, rows, dx + int64_t(n0) * c_ * h_ * w_);
  }

  // DSG, PER_SAMPLE: the kept output channels of every window, as dot products over the window.
  void forward_dsg_rows(const Tensor& bottom, Tensor& top) {
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

  void backward_dsg_rows(const Tensor& top, bool need_x, Tensor& bottom) {
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
  void select_shared(const Tensor& bottom) {
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

  void read_geometry(const ConvolutionParameter& p) {
    const ConvGeometry g = read_conv_geometry(p, where());
    kh_ = g.kh, kw_ = g.kw, sh_ = g.sh, sw_ = g.sw, ph_ = g.ph, pw_ = g.pw, dh_ = g.dh, dw_ = g.dw;
  }

  PlaneGeometry geometry() const {
    return PlaneGeometry{h_, w_, ho_, wo_, kh_, kw_, sh_, sw_, hspan_.data(), wspan_.data()};
  }

  // Reads active_outputs() / active_inputs() into outs_ / ins_ and derives the per-group bounds,
  // the compact weight layout and the channel -> compact row maps. Dense when both are empty.
  void configure_structure() {
    outs_ = checked_kept(active_outputs(), m_, where(), "active_outputs");
    ins_ = checked_kept(active_inputs(), c_, where(), "active_inputs");
    sparse_ = !outs_.empty() || !ins_.empty();
    og_ = group_bounds(outs_, m_, group_);
    ig_ = group_bounds(ins_, c_, group_);
    const int64_t taps = int64_t(kh_) * kw_;
    woff_.assign(size_t(group_) + 1, 0);
    for (int g = 0; g < group_; ++g)
      woff_[g + 1] = woff_[g] + int64_t(og_[g + 1] - og_[g]) * (ig_[g + 1] - ig_[g]) * taps;
    if (!sparse_) return;
    auto row_map = [](const std::vector<int>& kept, int n, std::vector<int>& map) {
      map.assign(size_t(n), -1);
      if (kept.empty())
        for (int i = 0; i < n; ++i) map[size_t(i)] = i;
      for (size_t r = 0; r < kept.size(); ++r) map[size_t(kept[r])] = int(r);
    };
    row_map(outs_, m_, out_row_);
    row_map(ins_, c_, in_row_);
    wc_.resize(size_t(woff_[group_]));
    dwc_.resize(size_t(woff_[group_]));
  }

  conv_kernels::ConvShape kernel_shape() const {
    return conv_kernels::ConvShape{c_, h_, w_, m_, ho_, wo_, kh_, kw_, sh_, sw_, ph_, pw_, dh_, dw_};
  }

  // Images per device im2col + GEMM step (conv_kernels::device_column_floats of columns).
  int device_chunk() const {
    const int64_t per_image = std::max<int64_t>(1, int64_t(ig_[group_]) * kh_ * kw_ * ho_ * wo_);
    return static_cast<int>(std::clamp<int64_t>(conv_kernels::device_column_floats / per_image, 1, std::max(1, n_)));
  }

  // The structure of the device code as index lists (uploaded only when they change): kept
  // output / input channels, channel -> compact row maps, and the full index of every compact
  // weight.
  void upload_structure() {
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

  // Calls fn(compact offset, full offset, floats) for every run of the compact weight layout
  // (group blocks of kept rows x kept input channels x kh kw) and its place in blobs_[0].
  template <class Fn>
  void for_each_weight_run(Fn fn) const {
    const int64_t taps = int64_t(kh_) * kw_, cg = c_ / group_;
    for (int g = 0; g < group_; ++g) {
      const int nci = ig_[g + 1] - ig_[g];
      for (int r = og_[g]; r < og_[g + 1]; ++r) {
        const int64_t m = outs_.empty() ? r : outs_[size_t(r)];
        const int64_t dst = woff_[g] + int64_t(r - og_[g]) * nci * taps;
        if (ins_.empty()) {
          fn(dst, m * cg * taps, cg * taps);
          continue;
        }
        for (int ci = ig_[g]; ci < ig_[g + 1]; ++ci)
          fn(dst + (ci - ig_[g]) * taps, (m * cg + ins_[size_t(ci)] - g * cg) * taps, taps);
      }
    }
  }

  // Copies the kept weights into wc_ (rebuilt every forward: a gather of at most |W| floats, small
  // next to the GEMMs that read it) and returns it.
  const float* gather_weights() {
    const float* w = blobs_[0]->data();
    float* wc = wc_.data();
    for_each_weight_run([&](int64_t c, int64_t f, int64_t n) { std::memcpy(wc + c, w + f, sizeof(float) * n); });
    return wc;
  }

  // dW[kept entries] += dwc_.
  void scatter_weight_diff() {
    float* dw = blobs_[0]->mutable_diff();
    const float* dwc = dwc_.data();
    for_each_weight_run([&](int64_t c, int64_t f, int64_t n) {
      for (int64_t i = 0; i < n; ++i) dw[f + i] += dwc[c + i];
    });
  }

  // col[(ci kh + i) kw + j][n Ho Wo + oh Wo + ow] = x[n0 + n, c, oh sh - ph + i dh, ow sw - pw + j dw]
  // (zero outside the input) for the nb images starting at n0, where c is the ci-th im2col'd
  // channel (all channels when dense, else ins_); rows of col are ld floats apart.
  void im2col(const float* x, int n0, int nb, float* col, int64_t ld) const {
    const int64_t spatial = int64_t(ho_) * wo_, plane = int64_t(h_) * w_, taps = int64_t(kh_) * kw_;
    const PlaneGeometry g = geometry();
    const int ck = ig_[group_];
    const int* chan = ins_.empty() ? nullptr : ins_.data();
    parallel_for(int64_t(nb) * ck, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, spatial * taps)),
                 [&](int64_t begin, int64_t end) {
                   for (int64_t t = begin; t < end; ++t) {
                     const int64_t n = t / ck, ci = t % ck, c = chan ? chan[ci] : ci;
                     im2col_plane(g, x + ((int64_t(n0) + n) * c_ + c) * plane, col + ci * taps * ld + n * spatial, ld);
                   }
                 });
  }

  // dx[n0 .. n0 + nb) = the sum of the column entries that im2col read from each input position;
  // zero for channels that im2col skipped.
  void col2im(const float* col, int64_t ld, int n0, int nb, float* dx) const {
    const int64_t spatial = int64_t(ho_) * wo_, plane = int64_t(h_) * w_, taps = int64_t(kh_) * kw_;
    const PlaneGeometry g = geometry();
    const int* row = ins_.empty() ? nullptr : in_row_.data();
    // Channel-major, so that successive items read on along the same column rows.
    parallel_for(int64_t(nb) * c_, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, spatial * taps)),
                 [&](int64_t begin, int64_t end) {
                   for (int64_t t = begin; t < end; ++t) {
                     const int64_t c = t / nb, n = t % nb, ci = row ? row[c] : c;
                     float* d = dx + ((n0 + n) * c_ + c) * plane;
                     if (ci < 0) zero_row(d, plane);
                     else col2im_plane(g, col + ci * taps * ld + n * spatial, ld, d);
                   }
                 });
  }

  // Writes the GEMM result (compact rows ld floats apart, one Ho Wo block per image) to
  // y[n0 .. n0 + nb) in NCHW, adding the bias; channels not computed are set to 0. `in_place`
  // (all channels computed): out already is that top slice and only the bias is added.
  void scatter_output(const float* out, int64_t ld, float* y, int n0, int nb, bool in_place,
                      const float* bias) const {
    if (in_place && !bias) return;
    const int64_t spatial = int64_t(ho_) * wo_;
    const int* row = sparse_ ? out_row_.data() : nullptr;
    parallel_for(int64_t(nb) * m_, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, spatial)),
                 [&](int64_t begin, int64_t end) {
                   for (int64_t t = begin; t < end; ++t) {
                     const int n = int(t / m_), m = int(t % m_), r = row ? row[m] : m;
                     float* __restrict d = y + (int64_t(n0 + n) * m_ + m) * spatial;
                     if (r < 0) {
                       zero_row(d, spatial);
                       continue;
                     }
                     const float* __restrict s = out + r * ld + n * spatial;
                     const float bm = bias ? bias[m] : 0.0f;
                     if (in_place) {
                       for (int64_t k = 0; k < spatial; ++k) d[k] += bm;
                     } else {
                       for (int64_t k = 0; k < spatial; ++k) d[k] = s[k] + bm;
                     }
                   }
                 });
  }

  // Copies the computed channels of dy[n0 .. n0 + nb) (NCHW) into buf_ as [rows, nb Ho Wo] and
  // returns it.
  const float* gather_diff(const float* dy, int n0, int nb) {
    const int64_t spatial = int64_t(ho_) * wo_, len = nb * spatial;
    const int mk = og_[group_];
    const int* chan = outs_.empty() ? nullptr : outs_.data();
    float* out = buf_.mutable_data();
    parallel_for(int64_t(nb) * mk, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, spatial)),
                 [&](int64_t begin, int64_t end) {
                   for (int64_t t = begin; t < end; ++t) {
                     const int n = int(t / mk), r = int(t % mk), m = chan ? chan[r] : r;
                     std::memcpy(out + r * len + n * spatial, dy + (int64_t(n0 + n) * m_ + m) * spatial,
                                 sizeof(float) * spatial);
                   }
                 });
    return out;
  }

  int kh_ = 0, kw_ = 0, sh_ = 1, sw_ = 1, ph_ = 0, pw_ = 0, dh_ = 1, dw_ = 1;
  int m_ = 0, c_ = 0, group_ = 1;
  bool bias_term_ = true;
  int n_ = 0, h_ = 0, w_ = 0, ho_ = 0, wo_ = 0;
  int chunk_ = 1;        // images per im2col + GEMM step
  Tensor col_;           // columns [im2col'd channels kh kw, chunk Ho Wo]; reused for dcol in backward
  Tensor buf_;           // GEMM output / reordered top diff [computed rows, chunk Ho Wo]
  std::vector<Span> hspan_, wspan_;  // valid output rows / columns for each kernel row / column
  int col_holds_ = -1;   // bottom whose whole-batch columns col_ holds, or -1
  bool col_prefilled_ = false;  // DSG BATCH_SHARED: select_shared left the batch's columns in col_

  // Structured sparsity (refreshed by reshape() before every forward; backward uses the state of
  // the preceding forward).
  bool sparse_ = false;
  std::vector<int> outs_, ins_;         // computed output / im2col'd input channels; empty = all
  std::vector<int> og_, ig_;            // per group g: compact rows [og_[g], og_[g+1]), channels [ig_[g], ig_[g+1])
  std::vector<int64_t> woff_;           // offset of group g's [rows, channels kh kw] block in wc_
  std::vector<int> out_row_, in_row_;   // channel -> compact row / im2col channel, -1 if skipped
  std::vector<float> wc_, dwc_;         // compact weights (gathered every forward) and their diff

  // Device code: scratch (columns / dcol, GEMM output / reordered top diff, compact weights and
  // their diff, the ones vector and row sums of the bias gradient) and the structure as index
  // lists (see upload_structure).
  int dchunk_ = 1;
  int dcol_holds_ = -1;  // bottom whose whole-batch columns dcol_ holds, or -1
  DeviceArray<float> dcol_, dbuf_, wc_dev_, dwc_dev_, dones_, dsums_;
  IndexList douts_, dins_, dout_row_, din_row_, dwmap_;
  std::vector<int> wmap_;               // compact weight -> full weight index (host side of dwmap_)

  // Dynamic Sparse Graph (dsg_param).
  DsgSelector dsg_;
  bool dsg_on_ = false;                 // the last forward selected its outputs
  std::vector<int> sel_;                // PER_SAMPLE: kept channels per window [N Ho Wo, keep]
  std::vector<uint8_t> mask_;           // the last forward's output mask (top layout)
  std::vector<float> colt_, dcolt_, yc_;  // windows as rows, their diff, kept outputs [windows, keep]
};

DSG_REGISTER_LAYER("Convolution", ConvolutionLayer);

}  // namespace dsg
