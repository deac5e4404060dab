// Convolution (Caffe's ConvolutionParameter), 2-D NCHW only: bottoms [N, C, H, W] ->
// tops [N, M, Ho, Wo] with Ho = (H + 2 pad_h - (dilation_h (kernel_h - 1) + 1)) / stride_h + 1.
// Weight [M, C/group, kernel_h, kernel_w], bias [M]. Several bottoms (each to its own top, all of
// the same shape) share the parameters, as in Caffe.
//
// Implementation: a batched im2col of a whole chunk of images into a column buffer
// [C kh kw, n Ho Wo] (rows of group g are contiguous), one sgemm per group giving [M/g, n Ho Wo],
// then a reorder to NCHW adding the bias. The chunk is the whole mini-batch unless the column
// buffer would exceed kColumnCap floats. Backward reorders dY to [M, n Ho Wo], accumulates
// dW += dY col^T and db += row sums, and computes dcol = W^T dY followed by col2im for dX.
// When the batch fits in one chunk, backward reuses the columns computed by the preceding forward.
#include <algorithm>
#include <cstring>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/filler.hpp"
#include "runtime/layer.hpp"
#include "runtime/math.hpp"
#include "runtime/parallel.hpp"

namespace dsg {
namespace {

constexpr int64_t kColumnCap = int64_t(1) << 23;  // floats in the column buffer (32 MiB)
constexpr int64_t kGrainElems = 1 << 15;          // elements of work per parallel_for chunk

float row_sum(const float* x, int64_t n) {
  float acc[16] = {0};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; ++k) acc[k] += x[i + k];
  float s = 0;
  for (; i < n; ++i) s += x[i];
  for (int k = 0; k < 16; ++k) s += acc[k];
  return s;
}

// d[0, n) = s[0, n) and d[0, n) += s[0, n), in blocks of 8 so that the short rows of small
// feature maps compile to whole vector operations.
inline void copy_row(float* __restrict d, const float* __restrict s, int n) {
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int t = 0; t < 8; ++t) d[k + t] = s[k + t];
  for (; k < n; ++k) d[k] = s[k];
}

inline void add_row(float* __restrict d, const float* __restrict s, int n) {
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int t = 0; t < 8; ++t) d[k + t] += s[k + t];
  for (; k < n; ++k) d[k] += s[k];
}

inline void zero_row(float* d, int n) {
  for (int k = 0; k < n; ++k) d[k] = 0.0f;
}

}  // namespace

class ConvolutionLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Convolution"; }
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

    const int64_t spatial = int64_t(ho_) * wo_;
    const int64_t rows = int64_t(c_) * kh_ * kw_;
    chunk_ = static_cast<int>(std::clamp<int64_t>(kColumnCap / std::max<int64_t>(1, rows * spatial), 1,
                                                  std::max(1, n_)));
    col_.reshape({static_cast<int>(rows), static_cast<int>(chunk_ * spatial)});
    if (chunk_ > 1) buf_.reshape({m_, static_cast<int>(chunk_ * spatial)});
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const int64_t spatial = int64_t(ho_) * wo_;
    const int mg = m_ / group_;
    const int64_t kc = int64_t(c_ / group_) * kh_ * kw_;
    const float* w = blobs_[0]->data();
    const float* bias = bias_term_ ? blobs_[1]->data() : nullptr;
    col_holds_ = -1;
    for (size_t b = 0; b < bottom.size(); ++b) {
      const float* x = bottom[b]->data();
      float* y = top[b]->mutable_data();
      for (int n0 = 0; n0 < n_; n0 += chunk_) {
        const int nb = std::min(chunk_, n_ - n0);
        const int64_t len = nb * spatial;
        float* col = col_.mutable_data();
        // With one image the GEMM result [M, Ho Wo] already is the NCHW top plane.
        float* out = nb == 1 ? y + int64_t(n0) * m_ * spatial : buf_.mutable_data();
        im2col(x, n0, nb, col, len);
        for (int g = 0; g < group_; ++g)
          gemm(false, false, mg, int(len), int(kc), 1.0f, w + g * mg * kc, col + g * kc * len, 0.0f,
               out + g * mg * len);
        scatter_output(out, len, y, n0, nb, nb == 1, bias);
      }
      if (chunk_ >= n_) col_holds_ = static_cast<int>(b);
    }
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    const bool need_w = param_propagate_down(0);
    const bool need_b = bias_term_ && param_propagate_down(1);
    const int64_t spatial = int64_t(ho_) * wo_;
    const int mg = m_ / group_;
    const int64_t kc = int64_t(c_ / group_) * kh_ * kw_;
    const float* w = blobs_[0]->data();
    for (size_t b = 0; b < bottom.size(); ++b) {
      const bool need_x = propagate_down[b];
      if (!need_w && !need_b && !need_x) continue;
      const float* dy = top[b]->diff();
      for (int n0 = 0; n0 < n_; n0 += chunk_) {
        const int nb = std::min(chunk_, n_ - n0);
        const int64_t len = nb * spatial;
        const float* dyc = nb == 1 ? dy + int64_t(n0) * m_ * spatial : gather_diff(dy, n0, nb);
        if (need_b) {
          float* db = blobs_[1]->mutable_diff();
          parallel_for(m_, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, len)),
                       [&](int64_t begin, int64_t end) {
                         for (int64_t m = begin; m < end; ++m) db[m] += row_sum(dyc + m * len, len);
                       });
        }
        float* col = col_.mutable_data();
        if (need_w) {
          if (col_holds_ != int(b)) {
            im2col(bottom[b]->data(), n0, nb, col, len);
            col_holds_ = chunk_ >= n_ ? static_cast<int>(b) : -1;
          }
          float* dw = blobs_[0]->mutable_diff();
          for (int g = 0; g < group_; ++g)
            gemm(false, true, mg, int(kc), int(len), 1.0f, dyc + g * mg * len, col + g * kc * len, 1.0f,
                 dw + g * mg * kc);
        }
        if (need_x) {
          col_holds_ = -1;
          for (int g = 0; g < group_; ++g)
            gemm(true, false, int(kc), int(len), mg, 1.0f, w + g * mg * kc, dyc + g * mg * len, 0.0f,
                 col + g * kc * len);
          col2im(col, len, n0, nb, bottom[b]->mutable_diff());
        }
      }
    }
  }

 private:
  // Reads kernel/stride/pad/dilation in Caffe's forms: the repeated field with 1 or 2 entries
  // (h, w), or the _h/_w pair.
  void read_geometry(const ConvolutionParameter& p) {
    auto pick = [&](const char* name, const google::protobuf::RepeatedField<uint32_t>& v, int def, int& h,
                    int& w) {
      if (v.size() == 0) {
        h = w = def;
      } else if (v.size() == 1) {
        h = w = static_cast<int>(v.Get(0));
      } else if (v.size() == 2) {
        h = static_cast<int>(v.Get(0));
        w = static_cast<int>(v.Get(1));
      } else {
        throw Error(where() + strfmt("%s must be given once or twice (h, w) for 2-D convolution, got %d values",
                                     name, v.size()));
      }
    };
    if (p.has_kernel_h() || p.has_kernel_w()) {
      if (p.kernel_size_size() > 0)
        throw Error(where() + "give either kernel_size or kernel_h/kernel_w, not both");
      if (!p.has_kernel_h() || !p.has_kernel_w())
        throw Error(where() + "kernel_h and kernel_w must be given together");
      kh_ = static_cast<int>(p.kernel_h());
      kw_ = static_cast<int>(p.kernel_w());
    } else {
      if (p.kernel_size_size() == 0) throw Error(where() + "kernel_size (or kernel_h and kernel_w) is required");
      pick("kernel_size", p.kernel_size(), 0, kh_, kw_);
    }
    if (p.has_stride_h() || p.has_stride_w()) {
      if (p.stride_size() > 0) throw Error(where() + "give either stride or stride_h/stride_w, not both");
      if (!p.has_stride_h() || !p.has_stride_w())
        throw Error(where() + "stride_h and stride_w must be given together");
      sh_ = static_cast<int>(p.stride_h());
      sw_ = static_cast<int>(p.stride_w());
    } else {
      pick("stride", p.stride(), 1, sh_, sw_);
    }
    if (p.has_pad_h() || p.has_pad_w()) {
      if (p.pad_size() > 0) throw Error(where() + "give either pad or pad_h/pad_w, not both");
      ph_ = static_cast<int>(p.pad_h());
      pw_ = static_cast<int>(p.pad_w());
    } else {
      pick("pad", p.pad(), 0, ph_, pw_);
    }
    pick("dilation", p.dilation(), 1, dh_, dw_);
    if (kh_ <= 0 || kw_ <= 0 || sh_ <= 0 || sw_ <= 0 || dh_ <= 0 || dw_ <= 0 || ph_ < 0 || pw_ < 0)
      throw Error(where() + strfmt("kernel %dx%d, stride %dx%d and dilation %dx%d must be positive, pad %dx%d "
                                   "non-negative",
                                   kh_, kw_, sh_, sw_, dh_, dw_, ph_, pw_));
  }

  // Outputs [lo, hi) along one axis whose input o * stride + off lies inside [0, in).
  struct Span {
    int lo, hi, off;
  };
  static Span span(int off, int stride, int in, int out) {
    int lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int hi = in - 1 - off >= 0 ? (in - 1 - off) / stride + 1 : 0;
    lo = std::min(lo, out);
    return Span{lo, std::clamp(hi, lo, out), off};
  }

  // col[(c kh + i) kw + j][n Ho Wo + oh Wo + ow] = x[n0 + n, c, oh sh - ph + i dh, ow sw - pw + j dw]
  // (zero outside the input) for the nb images starting at n0; rows of col are ld floats apart.
  // Work item t = n C + c reads one input plane (kept in L1) and writes its kh kw column rows.
  void im2col(const float* x, int n0, int nb, float* col, int64_t ld) const {
    const int64_t spatial = int64_t(ho_) * wo_, plane = int64_t(h_) * w_;
    const int64_t grain = std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, spatial * kh_ * kw_));
    parallel_for(int64_t(nb) * c_, grain, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        const int n = int(t / c_), c = int(t % c_);
        const float* xp = x + (int64_t(n0) * c_ + t) * plane;
        for (int i = 0; i < kh_; ++i) {
          const Span rs = hspan_[i];
          for (int j = 0; j < kw_; ++j) {
            const Span cs = wspan_[j];
            float* dst = col + ((int64_t(c) * kh_ + i) * kw_ + j) * ld + n * spatial;
            zero_row(dst, rs.lo * wo_);
            for (int oh = rs.lo; oh < rs.hi; ++oh) {
              float* d = dst + int64_t(oh) * wo_;
              const float* s = xp + int64_t(oh * sh_ + rs.off) * w_;
              zero_row(d, cs.lo);
              if (sw_ == 1) {
                copy_row(d + cs.lo, s + cs.lo + cs.off, cs.hi - cs.lo);
              } else {
                for (int ow = cs.lo; ow < cs.hi; ++ow) d[ow] = s[ow * sw_ + cs.off];
              }
              zero_row(d + cs.hi, wo_ - cs.hi);
            }
            zero_row(dst + int64_t(rs.hi) * wo_, (ho_ - rs.hi) * wo_);
          }
        }
      }
    });
  }

  // dx[n0 + n, c] = sum of the column entries that im2col read from each input position.
  void col2im(const float* col, int64_t ld, int n0, int nb, float* dx) const {
    const int64_t spatial = int64_t(ho_) * wo_, plane = int64_t(h_) * w_;
    const int64_t grain = std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, spatial * kh_ * kw_));
    parallel_for(int64_t(nb) * c_, grain, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {  // channel-major: consecutive items read on along each row
        const int c = int(t / nb), n = int(t % nb);
        float* xp = dx + (int64_t(n0 + n) * c_ + c) * plane;
        zero_row(xp, int(plane));
        for (int i = 0; i < kh_; ++i) {
          const Span rs = hspan_[i];
          for (int j = 0; j < kw_; ++j) {
            const Span cs = wspan_[j];
            const float* src = col + ((int64_t(c) * kh_ + i) * kw_ + j) * ld + n * spatial;
            for (int oh = rs.lo; oh < rs.hi; ++oh) {
              const float* s = src + int64_t(oh) * wo_;
              float* d = xp + int64_t(oh * sh_ + rs.off) * w_;
              if (sw_ == 1) {
                add_row(d + cs.lo + cs.off, s + cs.lo, cs.hi - cs.lo);
              } else {
                for (int ow = cs.lo; ow < cs.hi; ++ow) d[ow * sw_ + cs.off] += s[ow];
              }
            }
          }
        }
      }
    });
  }

  // Writes the GEMM result (rows ld floats apart, one Ho Wo block per image) to y[n0 .. n0 + nb) in
  // NCHW, adding the bias. `in_place`: out already is that top slice and only the bias is added.
  void scatter_output(const float* out, int64_t ld, float* y, int n0, int nb, bool in_place,
                      const float* bias) const {
    if (in_place && !bias) return;
    const int64_t spatial = int64_t(ho_) * wo_;
    parallel_for(int64_t(nb) * m_, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, spatial)),
                 [&](int64_t begin, int64_t end) {
                   for (int64_t t = begin; t < end; ++t) {
                     const int n = int(t / m_), m = int(t % m_);
                     const float* __restrict s = out + m * ld + n * spatial;
                     float* __restrict d = y + (int64_t(n0 + n) * m_ + m) * spatial;
                     const float bm = bias ? bias[m] : 0.0f;
                     if (in_place) {
                       for (int64_t k = 0; k < spatial; ++k) d[k] += bm;
                     } else {
                       for (int64_t k = 0; k < spatial; ++k) d[k] = s[k] + bm;
                     }
                   }
                 });
  }

  // Copies dy[n0 .. n0 + nb) (NCHW) into buf_ as [M, nb Ho Wo] and returns it.
  const float* gather_diff(const float* dy, int n0, int nb) {
    const int64_t spatial = int64_t(ho_) * wo_, len = nb * spatial;
    float* out = buf_.mutable_data();
    parallel_for(int64_t(nb) * m_, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(1, spatial)),
                 [&](int64_t begin, int64_t end) {
                   for (int64_t t = begin; t < end; ++t) {
                     const int n = int(t / m_), m = int(t % m_);
                     std::memcpy(out + m * len + n * spatial, dy + (int64_t(n0 + n) * m_ + m) * spatial,
                                 sizeof(float) * spatial);
                   }
                 });
    return out;
  }

  int kh_ = 0, kw_ = 0, sh_ = 1, sw_ = 1, ph_ = 0, pw_ = 0, dh_ = 1, dw_ = 1;
  int m_ = 0, c_ = 0, group_ = 1;
  bool bias_term_ = true;
  int n_ = 0, h_ = 0, w_ = 0, ho_ = 0, wo_ = 0;
  int chunk_ = 1;        // images whose columns the buffer holds (the whole batch unless too large)
  Tensor col_;           // columns [C kh kw, chunk Ho Wo]; reused for dcol in backward
  Tensor buf_;           // GEMM output / reordered top diff [M, chunk Ho Wo] (chunk > 1)
  std::vector<Span> hspan_, wspan_;  // valid output rows / columns for each kernel row / column
  int col_holds_ = -1;   // bottom whose whole-batch columns col_ holds, or -1
};

DSG_REGISTER_LAYER("Convolution", ConvolutionLayer);

}  // namespace dsg
