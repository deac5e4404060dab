// Softmax (Caffe's "Softmax") over softmax_param.axis (default 1):
//   y[o, c, i] = exp(x[o, c, i] - max_c x) / sum_c exp(x[o, c, i] - max_c x).
// Backward: dx = y * (dy - sum_c dy * y).
#include <algorithm>
#include <cmath>

#include "layers/softmax_kernels.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class SoftmaxLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Softmax"; }
  bool reads_class_scores() const override { return true; }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    const int axis = param_.softmax_param().axis();
    if (axis < -x.num_axes() || axis >= x.num_axes())
      throw Error(where() + strfmt("axis %d out of range for bottom ", axis) + x.shape_string());
    axis_ = x.canonical_axis(axis);
    outer_ = x.count(0, axis_);
    channels_ = x.shape(axis_);
    if (channels_ < 1) throw Error(where() + "softmax axis is empty in bottom " + x.shape_string());
    inner_ = x.count(axis_ + 1);
    top[0]->reshape_like(x);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    cpu_ops().softmax(outer_, channels_, inner_, bottom[0]->data(), top[0]->mutable_data());
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (!propagate_down[0]) return;
    const float* y = top[0]->data();
    const float* dy = top[0]->diff();
    float* dx = bottom[0]->mutable_diff();
    const int64_t C = channels_, inner = inner_;
    for_positions([&](int64_t p) {
      const int64_t base = (p / inner) * C * inner + p % inner;
      float d = 0;
      for (int64_t c = 0; c < C; ++c) d += dy[base + c * inner] * y[base + c * inner];
      for (int64_t c = 0; c < C; ++c) dx[base + c * inner] = y[base + c * inner] * (dy[base + c * inner] - d);
    });
  }

  // The device code: the device's softmax op, and one backward body per softmax position.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    ops_for(d).softmax(outer_, channels_, inner_, bottom[0]->data(d), top[0]->mutable_data(d));
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (!propagate_down[0]) return;
    const Device& d = ctx.device;
    launch(d, outer_ * inner_,
           SoftmaxBackward{channels_, inner_, top[0]->data(d), top[0]->diff(d), bottom[0]->mutable_diff(d)});
  }

 private:
  // Runs fn(p) for each of the outer_ * inner_ softmax positions, in parallel for big bottoms.
  template <class Fn>
  void for_positions(Fn&& fn) const {
    const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, channels_));
    parallel_for(outer_ * inner_, grain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) fn(p);
    });
  }

  int axis_ = 1;
  int64_t outer_ = 1, channels_ = 1, inner_ = 1;
};

DSG_REGISTER_LAYER("Softmax", SoftmaxLayer);

}  // namespace dsg
