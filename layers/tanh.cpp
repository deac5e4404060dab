// TanH (Caffe's "TanH"): y = tanh(x). In-place capable: backward uses only the
// top values, dx = dy * (1 - y^2).
#include <cmath>

#include "layers/elementwise_kernels.hpp"
#include "runtime/layer.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class TanHLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "TanH"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kElementwise;
    f.zero_preserving = true;
    return f;
  }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool allows_in_place() const override { return true; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override { top[0]->reshape_like(*bottom[0]); }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const float* x = bottom[0]->data();
    float* y = top[0]->mutable_data();
    parallel_for(bottom[0]->count(), kParallelGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) y[i] = std::tanh(x[i]);
    });
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (!propagate_down[0]) return;
    const float* y = top[0]->data();
    const float* dy = top[0]->diff();
    float* dx = bottom[0]->mutable_diff();
    parallel_for(bottom[0]->count(), kParallelGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    });
  }

  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    launch(d, bottom[0]->count(), TanHForward{bottom[0]->data(d), top[0]->mutable_data(d)});
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (!propagate_down[0]) return;
    const Device& d = ctx.device;
    launch(d, bottom[0]->count(), TanHBackward{top[0]->data(d), top[0]->diff(d), bottom[0]->mutable_diff(d)});
  }
};

DSG_REGISTER_LAYER("TanH", TanHLayer);

}  // namespace dsg
