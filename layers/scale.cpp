// Scale (Caffe's "Scale", one-bottom form): y = x * scale (+ bias), with the learnable scale
// (and optional bias) broadcast over the bottom axes [axis, axis + num_axes) (num_axes -1: to the
// end). With the defaults (axis 1, num_axes 1) a (N, C, H, W) bottom gets per-channel [C] blobs.
// Blobs: [0] scale (filler default constant 1), [1] bias if bias_term (bias_filler default
// constant 0). The two-bottom form (scale given as a bottom) is not supported. In-place capable:
// when top and bottom share a buffer, forward keeps a copy of x for the scale gradient.
#include <algorithm>
#include <memory>
#include <vector>

#include "layers/elementwise_kernels.hpp"
#include "runtime/device_array.hpp"
#include "runtime/error.hpp"
#include "runtime/filler.hpp"
#include "runtime/layer.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class ScaleLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Scale"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kElementwise;
    f.zero_preserving = !param_.scale_param().bias_term();
    return f;
  }
  int min_num_bottoms() const override { return 1; }
  int max_num_bottoms() const override { return 2; }
  int exact_num_tops() const override { return 1; }
  bool allows_in_place() const override { return true; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec&, std::mt19937_64& rng) override {
    if (bottom.size() != 1)
      throw Error(where() + "the two-bottom form (scale from a second bottom) is not supported");
    const auto& sp = param_.scale_param();
    const Tensor& x = *bottom[0];
    const int num_axes = sp.num_axes();
    if (num_axes < -1) throw Error(where() + strfmt("num_axes must be >= -1, got %d", num_axes));
    // axis may equal num_axes() only for a scalar scale (num_axes 0), as in Caffe.
    const int axis = sp.axis() < 0 ? sp.axis() + x.num_axes() : sp.axis();
    if (axis < 0 || axis > x.num_axes() || (axis == x.num_axes() && num_axes > 0))
      throw Error(where() + strfmt("axis %d out of range for bottom ", sp.axis()) + x.shape_string());
    const int end = num_axes == -1 ? x.num_axes() : axis + num_axes;
    if (end > x.num_axes())
      throw Error(where() + strfmt("axis %d + num_axes %d exceed the axes of bottom ", axis, num_axes) +
                  x.shape_string());
    axis_ = axis;
    std::vector<int> shape(x.shape().begin() + axis, x.shape().begin() + end);
    blobs_.clear();
    blobs_.push_back(std::make_shared<Tensor>(shape));
    FillerParameter filler;
    filler.set_type("constant");
    filler.set_value(1.0f);
    fill(sp.has_filler() ? sp.filler() : filler, *blobs_[0], rng);
    if (sp.bias_term()) {
      blobs_.push_back(std::make_shared<Tensor>(shape));
      FillerParameter zero;
      zero.set_type("constant");
      zero.set_value(0.0f);
      fill(sp.has_bias_filler() ? sp.bias_filler() : zero, *blobs_[1], rng);
    }
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    const Tensor& s = *blobs_[0];
    bool ok = axis_ + s.num_axes() <= x.num_axes();
    for (int i = 0; ok && i < s.num_axes(); ++i) ok = x.shape()[axis_ + i] == s.shape()[i];
    if (!ok)
      throw Error(where() + "bottom " + x.shape_string() + " does not match scale " + s.shape_string() +
                  strfmt(" at axis %d", axis_));
    outer_ = x.count(0, axis_);
    dim_ = s.count();
    inner_ = x.count(axis_ + s.num_axes());
    top[0]->reshape_like(x);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const float* x = bottom[0]->data();
    float* y = top[0]->mutable_data();
    in_place_ = x == y;
    if (in_place_) saved_x_.assign(x, x + bottom[0]->count());
    const float* s = blobs_[0]->data();
    const float* b = blobs_.size() > 1 ? blobs_[1]->data() : nullptr;
    for_rows([&](int64_t r) {
      const int64_t d = r % dim_;
      const float sv = s[d], bv = b ? b[d] : 0.0f;
      const float* xr = x + r * inner_;
      float* yr = y + r * inner_;
      for (int64_t i = 0; i < inner_; ++i) yr[i] = xr[i] * sv + bv;
    });
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    const float* dy = top[0]->diff();
    const float* x = in_place_ ? saved_x_.data() : bottom[0]->data();
    const bool want_scale = param_propagate_down(0);
    const bool want_bias = blobs_.size() > 1 && param_propagate_down(1);
    // Parameter gradients first: in place, dx overwrites dy.
    if (want_scale || want_bias) {
      float* ds = blobs_[0]->mutable_diff();
      float* db = blobs_.size() > 1 ? blobs_[1]->mutable_diff() : nullptr;
      const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, outer_ * inner_));
      parallel_for(dim_, grain, [&](int64_t d_begin, int64_t d_end) {
        for (int64_t d = d_begin; d < d_end; ++d) {
          double gs = 0, gb = 0;
          for (int64_t o = 0; o < outer_; ++o) {
            const int64_t off = (o * dim_ + d) * inner_;
            for (int64_t i = 0; i < inner_; ++i) {
              gs += double(dy[off + i]) * x[off + i];
              gb += dy[off + i];
            }
          }
          if (want_scale) ds[d] += float(gs);
          if (want_bias) db[d] += float(gb);
        }
      });
    }
    if (!propagate_down[0]) return;
    const float* s = blobs_[0]->data();
    float* dx = bottom[0]->mutable_diff();
    for_rows([&](int64_t r) {
      const float sv = s[r % dim_];
      for (int64_t i = 0; i < inner_; ++i) dx[r * inner_ + i] = dy[r * inner_ + i] * sv;
    });
  }

  // The device code: the same arithmetic per element, and one body per scale entry summing its
  // gradient in double in the CPU path's order.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    const int64_t n = bottom[0]->count();
    const float* x = bottom[0]->data(d);
    float* y = top[0]->mutable_data(d);
    in_place_ = x == y;
    if (in_place_) {
      device_saved_x_.resize(size_t(n));
      ops_for(d).copy(n, x, device_saved_x_.mutable_on(d));
    }
    launch(d, n,
           ScaleForward{dim_, inner_, x, blobs_[0]->data(d), blobs_.size() > 1 ? blobs_[1]->data(d) : nullptr, y});
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    const Device& d = ctx.device;
    const float* dy = top[0]->diff(d);
    const bool want_scale = param_propagate_down(0);
    const bool want_bias = blobs_.size() > 1 && param_propagate_down(1);
    // Parameter gradients first: in place, dx overwrites dy.
    if (want_scale || want_bias) {
      const float* x = in_place_ ? device_saved_x_.on(d) : bottom[0]->data(d);
      launch(d, dim_,
             ScaleParamGrad{outer_, dim_, inner_, dy, x, want_scale ? blobs_[0]->mutable_diff(d) : nullptr,
                            want_bias ? blobs_[1]->mutable_diff(d) : nullptr});
    }
    if (!propagate_down[0]) return;
    launch(d, bottom[0]->count(), ScaleBackward{dim_, inner_, dy, blobs_[0]->data(d), bottom[0]->mutable_diff(d)});
  }

 private:
  // Runs fn(r) over the outer_ * dim_ rows of inner_ elements, in parallel for big bottoms.
  template <class Fn>
  void for_rows(Fn&& fn) const {
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 15) / std::max<int64_t>(1, inner_));
    parallel_for(outer_ * dim_, grain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) fn(r);
    });
  }

  int axis_ = 1;
  int64_t outer_ = 1, dim_ = 1, inner_ = 1;
  bool in_place_ = false;
  std::vector<float> saved_x_;  // copy of x when running in place
  DeviceArray<float> device_saved_x_;  // the same, of the device code
};

DSG_REGISTER_LAYER("Scale", ScaleLayer);

}  // namespace dsg
