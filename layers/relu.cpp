// ReLU (with Caffe's optional leaky negative_slope): y = x > 0 ? x : slope * x. In-place capable.
#include <algorithm>

#include "runtime/layer.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class ReLULayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "ReLU"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kElementwise;
    f.zero_preserving = true;
    return f;
  }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool allows_in_place() const override { return true; }
  bool supports(DeviceType device, LayerMode mode) const override {
    return mode == LayerMode::kDense && (device == DeviceType::CPU || cuda_built());
  }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override { top[0]->reshape_like(*bottom[0]); }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const float* x = bottom[0]->data();
    float* y = top[0]->mutable_data();
    const float slope = param_.relu_param().negative_slope();
    // Branch-free so that it vectorises (signs are data-dependent and mispredict otherwise).
    parallel_for(bottom[0]->count(), 1 << 15, [x, y, slope](int64_t begin, int64_t end) {
#pragma GCC ivdep
      for (int64_t i = begin; i < end; ++i) {
        float v = x[i];
        y[i] = std::max(v, 0.0f) + slope * std::min(v, 0.0f);
      }
    });
  }

  // Uses the top value (equal in sign to the input when slope >= 0), so it also works in place.
  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (!propagate_down[0]) return;
    const float* y = top[0]->data();
    const float* dy = top[0]->diff();
    float* dx = bottom[0]->mutable_diff();
    const float slope = param_.relu_param().negative_slope();
    parallel_for(bottom[0]->count(), 1 << 15, [y, dy, dx, slope](int64_t begin, int64_t end) {
      // Element i reads and writes only index i, so in-place aliasing is safe to vectorise.
#pragma GCC ivdep
      for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * (slope + (1.0f - slope) * float(y[i] > 0.0f));
    });
  }

  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    ops_for(ctx.device).relu_forward(bottom[0]->count(), param_.relu_param().negative_slope(),
                                     bottom[0]->data(ctx.device), top[0]->mutable_data(ctx.device));
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (!propagate_down[0]) return;
    const Device& d = ctx.device;
    ops_for(d).relu_backward(bottom[0]->count(), param_.relu_param().negative_slope(), top[0]->data(d),
                             top[0]->diff(d), bottom[0]->mutable_diff(d));
  }
};

DSG_REGISTER_LAYER("ReLU", ReLULayer);

}  // namespace dsg
