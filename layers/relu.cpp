// ReLU (with Caffe's optional leaky negative_slope): y = x > 0 ? x : slope * x. In-place capable.
#include "runtime/layer.hpp"
#include "runtime/ops.hpp"

namespace dsg {

class ReLULayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "ReLU"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kElementwise;
    f.zero_preserving = true;
    f.rectifier = true;
    return f;
  }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool allows_in_place() const override { return true; }
  bool supports(DeviceType, LayerMode mode) const override {
    return mode == LayerMode::kDense;
  }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override { top[0]->reshape_like(*bottom[0]); }

  // One implementation for every device, through its ops (the CPU ops' loop is branch-free and
  // parallel, as this layer's own loop was).
  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    forward_on(bottom, top, ctx.device);
  }
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    forward_on(bottom, top, ctx.device);
  }
  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context& ctx) override {
    if (propagate_down[0]) backward_on(top, bottom, ctx.device);
  }
  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (propagate_down[0]) backward_on(top, bottom, ctx.device);
  }

 private:
  void forward_on(const TensorVec& bottom, const TensorVec& top, const Device& d) {
    ops_for(d).relu_forward(bottom[0]->count(), param_.relu_param().negative_slope(), bottom[0]->data(d),
                            top[0]->mutable_data(d));
  }
  // Uses the top value (equal in sign to the input when slope >= 0), so it also works in place.
  void backward_on(const TensorVec& top, const TensorVec& bottom, const Device& d) {
    ops_for(d).relu_backward(bottom[0]->count(), param_.relu_param().negative_slope(), top[0]->data(d),
                             top[0]->diff(d), bottom[0]->mutable_diff(d));
  }
};

DSG_REGISTER_LAYER("ReLU", ReLULayer);

}  // namespace dsg
