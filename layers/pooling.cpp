// Pooling (Caffe's PoolingParameter) over the H, W axes of a 4-axis NCHW bottom: MAX or AVE,
// kernel/stride/pad (or their _h/_w forms) or global_pooling, round_mode CEIL (default) or FLOOR.
// Output size: round((H + 2 pad - kernel) / stride) + 1, reduced by one when the last
// window would start in the padding or past the input (Caffe checks this only when padded). AVE divides by the window clipped to the padded input (Caffe).
// MAX may have a second top receiving the argmax (flat index within the H x W plane) as floats.
// STOCHASTIC is not supported. Device code: layers/pooling_kernels.hpp (the CPU's arithmetic, so
// the results agree to the bit).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "runtime/device_array.hpp"
#include "runtime/error.hpp"
#include "runtime/launch.hpp"
#include "runtime/layer.hpp"
#include "runtime/parallel.hpp"
#include "layers/pooling_kernels.hpp"

namespace dsg {

class PoolingLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Pooling"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kPool;
    return f;
  }
  int exact_num_bottoms() const override { return 1; }
  int min_num_tops() const override { return 1; }
  int max_num_tops() const override { return param_.pooling_param().pool() == PoolingParameter::MAX ? 2 : 1; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void layer_setup(const TensorVec&, const TensorVec&, std::mt19937_64&) override {
    const PoolingParameter& p = param_.pooling_param();
    method_ = p.pool();
    if (method_ == PoolingParameter::STOCHASTIC)
      throw Error(where() + "STOCHASTIC pooling is not supported (use MAX or AVE)");
    global_ = p.global_pooling();
    if (global_) {
      if (p.has_kernel_size() || p.has_kernel_h() || p.has_kernel_w())
        throw Error(where() + "global_pooling takes its kernel from the input; do not give kernel_size/kernel_h/kernel_w");
    } else if (p.has_kernel_size()) {
      if (p.has_kernel_h() || p.has_kernel_w())
        throw Error(where() + "give either kernel_size or kernel_h/kernel_w, not both");
      kh_ = kw_ = static_cast<int>(p.kernel_size());
    } else {
      if (!p.has_kernel_h() || !p.has_kernel_w())
        throw Error(where() + "kernel_size (or both kernel_h and kernel_w) is required");
      kh_ = static_cast<int>(p.kernel_h());
      kw_ = static_cast<int>(p.kernel_w());
    }
    if (p.has_pad_h() || p.has_pad_w()) {
      if (p.has_pad() || !p.has_pad_h() || !p.has_pad_w())
        throw Error(where() + "give either pad or both pad_h and pad_w");
      ph_ = static_cast<int>(p.pad_h());
      pw_ = static_cast<int>(p.pad_w());
    } else {
      ph_ = pw_ = static_cast<int>(p.pad());
    }
    if (p.has_stride_h() || p.has_stride_w()) {
      if (p.has_stride() || !p.has_stride_h() || !p.has_stride_w())
        throw Error(where() + "give either stride or both stride_h and stride_w");
      sh_ = static_cast<int>(p.stride_h());
      sw_ = static_cast<int>(p.stride_w());
    } else {
      sh_ = sw_ = static_cast<int>(p.stride());
    }
    if (sh_ <= 0 || sw_ <= 0) throw Error(where() + strfmt("stride must be positive, got %dx%d", sh_, sw_));
    if (global_) {
      if (ph_ != 0 || pw_ != 0 || sh_ != 1 || sw_ != 1)
        throw Error(where() + strfmt("global_pooling needs pad 0 and stride 1, got pad %dx%d stride %dx%d", ph_,
                                     pw_, sh_, sw_));
    } else {
      if (kh_ <= 0 || kw_ <= 0) throw Error(where() + strfmt("kernel must be positive, got %dx%d", kh_, kw_));
      if (ph_ >= kh_ || pw_ >= kw_)
        throw Error(where() + strfmt("pad %dx%d must be smaller than the kernel %dx%d", ph_, pw_, kh_, kw_));
    }
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    if (x.num_axes() != 4)
      throw Error(where() + "expects a 4-axis NCHW bottom, got shape " + x.shape_string());
    n_ = x.shape(0);
    c_ = x.shape(1);
    h_ = x.shape(2);
    w_ = x.shape(3);
    if (global_) {
      kh_ = h_;
      kw_ = w_;
    }
    if (h_ + 2 * ph_ < kh_ || w_ + 2 * pw_ < kw_)
      throw Error(where() + strfmt("kernel %dx%d is larger than the padded input %dx%d (input %dx%d, pad %dx%d)",
                                   kh_, kw_, h_ + 2 * ph_, w_ + 2 * pw_, h_, w_, ph_, pw_));
    auto out_size = [&](int in, int k, int p, int s) {
      double q = double(in + 2 * p - k) / s;
      int o = static_cast<int>(param_.pooling_param().round_mode() == PoolingParameter::FLOOR ? std::floor(q)
                                                                                            : std::ceil(q)) + 1;
      // The last window must start inside the (padded) input; with or without padding, a window
      // past it would read nothing (or, with a huge stride, overflow the offsets).
      if (int64_t(o - 1) * s >= in + p) --o;
      return o;
    };
    ho_ = out_size(h_, kh_, ph_, sh_);
    wo_ = out_size(w_, kw_, pw_, sw_);
    top[0]->reshape({n_, c_, ho_, wo_});
    if (top.size() > 1) top[1]->reshape({n_, c_, ho_, wo_});
    hwin_ = windows(ho_, sh_, ph_, kh_, h_);
    wwin_ = windows(wo_, sw_, pw_, kw_, w_);
    // Output columns whose window [ow sw - pw, ow sw - pw + kw) lies inside [0, W).
    full_lo_ = std::min(wo_, (pw_ + sw_ - 1) / sw_);
    full_hi_ = std::max(full_lo_, std::min(wo_, w_ - kw_ + pw_ >= 0 ? (w_ - kw_ + pw_) / sw_ + 1 : 0));
    if (method_ == PoolingParameter::MAX) argmax_.resize(static_cast<size_t>(top[0]->count()));
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const float* x = bottom[0]->data();
    float* y = top[0]->mutable_data();
    float* mask_top = top.size() > 1 ? top[1]->mutable_data() : nullptr;
    const int64_t plane = int64_t(h_) * w_, oplane = int64_t(ho_) * wo_;
    const bool max = method_ == PoolingParameter::MAX;
    parallel_for(int64_t(n_) * c_, grain(), [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        if (max) {
          int* mp = argmax_.data() + t * oplane;
          max_plane(x + t * plane, y + t * oplane, mp);
          if (mask_top)
            for (int64_t k = 0; k < oplane; ++k) mask_top[t * oplane + k] = static_cast<float>(mp[k]);
        } else {
          average_plane(x + t * plane, y + t * oplane);
        }
      }
    });
  }

  // Device code (layers/pooling_kernels.hpp): one thread per top entry forward, one per bottom
  // entry backward (gathering from the windows that cover it, in output order: no atomics).
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    const int64_t count = top[0]->count();
    if (method_ == PoolingParameter::MAX) {
      dargmax_.resize(size_t(count));
      launch(d, count,
             pool_kernels::MaxForward{shape(), bottom[0]->data(d), top[0]->mutable_data(d), dargmax_.mutable_on(d),
                                      top.size() > 1 ? top[1]->mutable_data(d) : nullptr});
    } else {
      launch(d, count, pool_kernels::AveForward{shape(), bottom[0]->data(d), top[0]->mutable_data(d)});
    }
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (!propagate_down[0]) return;
    const Device& d = ctx.device;
    const bool max = method_ == PoolingParameter::MAX;
    launch(d, bottom[0]->count(),
           pool_kernels::Backward{shape(), max, top[0]->diff(d), max ? dargmax_.on(d) : nullptr,
                                  bottom[0]->mutable_diff(d)});
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (!propagate_down[0]) return;
    const float* dy = top[0]->diff();
    float* dx = bottom[0]->mutable_diff();
    const int64_t plane = int64_t(h_) * w_, oplane = int64_t(ho_) * wo_;
    parallel_for(int64_t(n_) * c_, grain(), [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) {
        float* dxp = dx + t * plane;
        const float* dyp = dy + t * oplane;
        std::fill(dxp, dxp + plane, 0.0f);
        if (method_ == PoolingParameter::MAX) {
          const int* mp = argmax_.data() + t * oplane;
          for (int64_t k = 0; k < oplane; ++k)
            if (mp[k] >= 0) dxp[mp[k]] += dyp[k];
        } else {
          for (int oh = 0; oh < ho_; ++oh) {
            const Window hw = hwin_[oh];
            for (int ow = 0; ow < wo_; ++ow) {
              const Window ww = wwin_[ow];
              const float g = dyp[oh * wo_ + ow] / float(hw.size * ww.size);
              for (int ih = hw.lo; ih < hw.hi; ++ih)
                for (int iw = ww.lo; iw < ww.hi; ++iw) dxp[ih * w_ + iw] += g;
            }
          }
        }
      }
    });
  }

 private:
  // Input range [lo, hi) of an output position along one axis, clipped to the input; size is the
  // window clipped to the padded input (AVE's divisor).
  struct Window {
    int lo, hi, size;
  };
  static std::vector<Window> windows(int out, int stride, int pad, int kernel, int in) {
    std::vector<Window> v;
    for (int o = 0; o < out; ++o) {
      // 64-bit offsets: o * stride overflows an int for strides near 2^31.
      const int64_t start = int64_t(o) * stride - pad, end = std::min<int64_t>(start + kernel, int64_t(in) + pad);
      v.push_back(Window{int(std::max<int64_t>(start, 0)), int(std::min<int64_t>(end, in)), int(end - start)});
    }
    return v;
  }

  // Outputs whose window lies wholly inside the input (rows full_h, columns [full_lo_, full_hi_))
  // take a loop of fixed trip counts, which the compiler vectorises across ow; the border goes
  // through the clipped windows. Taps are visited row-major, so the first maximum wins (Caffe).
  void max_plane(const float* __restrict x, float* __restrict y, int* __restrict arg) const {
    auto clipped = [&](int oh, int ow) {
      const Window hw = hwin_[oh], ww = wwin_[ow];
      float best = -FLT_MAX;
      int at = -1;
      for (int ih = hw.lo; ih < hw.hi; ++ih)
        for (int iw = ww.lo; iw < ww.hi; ++iw) {
          const float v = x[ih * w_ + iw];
          const bool gt = v > best;
          best = gt ? v : best;
          at = gt ? ih * w_ + iw : at;
        }
      y[oh * wo_ + ow] = best;
      arg[oh * wo_ + ow] = at;
    };
    const int kh = kh_, kw = kw_, sw = sw_, w = w_, wo = wo_;
    for (int oh = 0; oh < ho_; ++oh) {
      const bool full_h = hwin_[oh].hi - hwin_[oh].lo == kh;
      const int lo = full_h ? full_lo_ : wo, hi = full_h ? full_hi_ : wo;
      for (int ow = 0; ow < lo; ++ow) clipped(oh, ow);
      const int base = hwin_[oh].lo * w - pw_;
      if (kh == 2 && kw == 2)
        max_full<2>(x, w, kh, kw, sw, base, lo, hi, y + oh * wo, arg + oh * wo);
      else if (kh == 3 && kw == 3)
        max_full<3>(x, w, kh, kw, sw, base, lo, hi, y + oh * wo, arg + oh * wo);
      else
        max_full<0>(x, w, kh, kw, sw, base, lo, hi, y + oh * wo, arg + oh * wo);
      for (int ow = hi; ow < wo; ++ow) clipped(oh, ow);
    }
  }

  // Unclipped windows starting at x + base + ow sw, for ow in [lo, hi); K: kernel size known at
  // compile time (0: kh x kw).
  template <int K>
  static void max_full(const float* __restrict x, int w, int kh_rt, int kw_rt, int sw, int base, int lo, int hi,
                       float* __restrict y, int* __restrict arg) {
    const int kh = K ? K : kh_rt, kw = K ? K : kw_rt;
    for (int ow = lo; ow < hi; ++ow) {
      const int i0 = base + ow * sw;
      float best = -FLT_MAX;
      int at = -1;
      for (int i = 0; i < kh; ++i)
        for (int j = 0; j < kw; ++j) {
          const int idx = i0 + i * w + j;
          const float v = x[idx];
          const bool gt = v > best;
          best = gt ? v : best;
          at = gt ? idx : at;
        }
      y[ow] = best;
      arg[ow] = at;
    }
  }

  template <int K>
  static void average_full(const float* __restrict x, int w, int kh_rt, int kw_rt, int sw, int base, int lo,
                           int hi, float* __restrict y) {
    const int kh = K ? K : kh_rt, kw = K ? K : kw_rt;
    const float scale = 1.0f / float(kh * kw);
    for (int ow = lo; ow < hi; ++ow) {
      const int i0 = base + ow * sw;
      float sum = 0;
      for (int i = 0; i < kh; ++i)
        for (int j = 0; j < kw; ++j) sum += x[i0 + i * w + j];
      y[ow] = sum * scale;
    }
  }

  void average_plane(const float* __restrict x, float* __restrict y) const {
    auto clipped = [&](int oh, int ow) {
      const Window hw = hwin_[oh], ww = wwin_[ow];
      float sum = 0;
      for (int ih = hw.lo; ih < hw.hi; ++ih)
        for (int iw = ww.lo; iw < ww.hi; ++iw) sum += x[ih * w_ + iw];
      y[oh * wo_ + ow] = sum / float(hw.size * ww.size);
    };
    const int kh = kh_, kw = kw_, sw = sw_, w = w_, wo = wo_;
    for (int oh = 0; oh < ho_; ++oh) {
      const bool full_h = hwin_[oh].hi - hwin_[oh].lo == kh;
      const int lo = full_h ? full_lo_ : wo, hi = full_h ? full_hi_ : wo;
      for (int ow = 0; ow < lo; ++ow) clipped(oh, ow);
      const int base = hwin_[oh].lo * w - pw_;
      if (kh == 2 && kw == 2)
        average_full<2>(x, w, kh, kw, sw, base, lo, hi, y + oh * wo);
      else if (kh == 3 && kw == 3)
        average_full<3>(x, w, kh, kw, sw, base, lo, hi, y + oh * wo);
      else
        average_full<0>(x, w, kh, kw, sw, base, lo, hi, y + oh * wo);
      for (int ow = hi; ow < wo; ++ow) clipped(oh, ow);
    }
  }

  pool_kernels::PoolShape shape() const {
    return pool_kernels::PoolShape{int64_t(n_) * c_, h_, w_, ho_, wo_, kh_, kw_, sh_, sw_, ph_, pw_};
  }

  int64_t grain() const { return std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(1, int64_t(h_) * w_)); }

  PoolingParameter::PoolMethod method_ = PoolingParameter::MAX;
  bool global_ = false;
  int kh_ = 0, kw_ = 0, sh_ = 1, sw_ = 1, ph_ = 0, pw_ = 0;
  int n_ = 0, c_ = 0, h_ = 0, w_ = 0, ho_ = 0, wo_ = 0;
  std::vector<Window> hwin_, wwin_;  // input windows of each output row / column
  int full_lo_ = 0, full_hi_ = 0;     // output columns whose window is not clipped
  std::vector<int> argmax_;          // MAX: flat H x W index of each output's maximum
  DeviceArray<int> dargmax_;         // the same, for the device code
};

DSG_REGISTER_LAYER("Pooling", PoolingLayer);

}  // namespace dsg
