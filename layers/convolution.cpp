// Convolution layer (layers/convolution.hpp): registration, setup, reshape, the structure of
// structured execution, and the CPU forward / backward with their helpers (the oracle of the
// device code).
#include <algorithm>
#include <cstring>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/filler.hpp"
#include "runtime/math.hpp"
#include "runtime/parallel.hpp"
#include "layers/conv_geometry.hpp"
#include "layers/conv_im2col.hpp"
#include "layers/convolution.hpp"
#include "layers/structured.hpp"

namespace dsg {
namespace {

using namespace conv_detail;

constexpr int64_t kColumnFloatsPerThread = int64_t(1) << 18;  // 1 MiB, about one core's L2
constexpr int64_t kGrainElems = kParallelGrain;  // elements of work per parallel_for chunk

}  // namespace

// Filters are the weight rows [num_output, C / group, kh, kw]; inputs are channels.
ChannelFlow ConvolutionLayer::channel_flow() const {
  ChannelFlow f;
  f.kind = ChannelFlow::kProducer;
  f.rows_are_outputs = true;
  f.inputs = ChannelFlow::kChannels;
  f.groups = int(param_.convolution_param().group());
  return f;
}

// Device code: dense and structured (active outputs / inputs); the weight operator and DSG's
// dynamic selection run on the CPU only.
bool ConvolutionLayer::supports(DeviceType device, LayerMode mode) const {
  if (mode == LayerMode::kDense || mode == LayerMode::kActiveOutputs || mode == LayerMode::kActiveInputs)
    return true;
  return device == DeviceType::CPU && (mode == LayerMode::kWeightOperator || mode == LayerMode::kDynamicSelection);
}

void ConvolutionLayer::layer_setup(const TensorVec& bottom, const TensorVec& top, std::mt19937_64& rng) {
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

void ConvolutionLayer::reshape(const TensorVec& bottom, const TensorVec& top) {
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

bool ConvolutionLayer::set_weight_operator(std::shared_ptr<const WeightOperator> op) {
  if (op && (op->rows() != m_ || op->cols() != int64_t(c_) * kh_ * kw_ / group_))
    throw Error(where() + strfmt("weight operator is %lldx%lld, the weights are %dx%lld",
                                 static_cast<long long>(op->rows()), static_cast<long long>(op->cols()), m_,
                                 static_cast<long long>(int64_t(c_) * kh_ * kw_ / group_)));
  if (op && (group_ != 1 || dsg_.configured())) return false;
  weight_operator_ = std::move(op);
  return true;
}

LayerMacs ConvolutionLayer::macs() const {
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

void ConvolutionLayer::forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) {
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

// Dense: dW += dY col^T, db += row sums of dY, dcol = W^T dY. Structured: the same on the compact
// rows / columns; the weight diff is accumulated in dwc_ and added to the kept entries of dW at
// the end (other entries of dW and db untouched); dX is zero for the channels not in ins_.
void ConvolutionLayer::backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down,
                                    const TensorVec& bottom, const Context&) {
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

void ConvolutionLayer::read_geometry(const ConvolutionParameter& p) {
  const ConvGeometry g = read_conv_geometry(p, where());
  kh_ = g.kh, kw_ = g.kw, sh_ = g.sh, sw_ = g.sw, ph_ = g.ph, pw_ = g.pw, dh_ = g.dh, dw_ = g.dw;
}

// Reads active_outputs() / active_inputs() into outs_ / ins_ and derives the per-group bounds,
// the compact weight layout and the channel -> compact row maps. Dense when both are empty.
void ConvolutionLayer::configure_structure() {
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

// Copies the kept weights into wc_ (rebuilt every forward: a gather of at most |W| floats, small
// next to the GEMMs that read it) and returns it.
const float* ConvolutionLayer::gather_weights() {
  const float* w = blobs_[0]->data();
  float* wc = wc_.data();
  for_each_weight_run([&](int64_t c, int64_t f, int64_t n) { std::memcpy(wc + c, w + f, sizeof(float) * n); });
  return wc;
}

// dW[kept entries] += dwc_.
void ConvolutionLayer::scatter_weight_diff() {
  float* dw = blobs_[0]->mutable_diff();
  const float* dwc = dwc_.data();
  for_each_weight_run([&](int64_t c, int64_t f, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dw[f + i] += dwc[c + i];
  });
}

// col[(ci kh + i) kw + j][n Ho Wo + oh Wo + ow] = x[n0 + n, c, oh sh - ph + i dh, ow sw - pw + j dw]
// (zero outside the input) for the nb images starting at n0, where c is the ci-th im2col'd
// channel (all channels when dense, else ins_); rows of col are ld floats apart.
void ConvolutionLayer::im2col(const float* x, int n0, int nb, float* col, int64_t ld) const {
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
void ConvolutionLayer::col2im(const float* col, int64_t ld, int n0, int nb, float* dx) const {
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
void ConvolutionLayer::scatter_output(const float* out, int64_t ld, float* y, int n0, int nb, bool in_place,
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
const float* ConvolutionLayer::gather_diff(const float* dy, int n0, int nb) {
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

DSG_REGISTER_LAYER("Convolution", ConvolutionLayer);

}  // namespace dsg
