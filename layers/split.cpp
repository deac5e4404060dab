// Split (Caffe's "Split"): hands one bottom to several consumers. Every top shares the bottom's
// data buffer (no copy) but has its own diff; backward sums the top diffs into the bottom diff.
// The Net inserts it automatically when a blob feeds several layers.
#include <algorithm>

#include "runtime/layer.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class SplitLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Split"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kElementwise;
    f.zero_preserving = true;
    return f;
  }
  int exact_num_bottoms() const override { return 1; }
  int min_num_tops() const override { return 1; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    for (Tensor* t : top) {
      // A top viewing the bottom's old (smaller) buffer cannot grow in place: start it afresh.
      if (t->count() < bottom[0]->count()) *t = Tensor();
      t->reshape_like(*bottom[0]);
      t->share_data(*bottom[0]);
    }
  }

  void forward_cpu(const TensorVec&, const TensorVec&, const Context&) override {}

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (!propagate_down[0]) return;
    float* dx = bottom[0]->mutable_diff();
    std::vector<const float*> dy;
    for (Tensor* t : top) dy.push_back(t->diff());
    parallel_for(bottom[0]->count(), kParallelGrain, [&](int64_t begin, int64_t end) {
      std::copy(dy[0] + begin, dy[0] + end, dx + begin);
      for (size_t k = 1; k < dy.size(); ++k)
        for (int64_t i = begin; i < end; ++i) dx[i] += dy[k][i];
    });
  }

  // The device code: the tops already share the bottom's data; backward adds the top diffs in the
  // CPU path's order (dx = dy0, then dx += dy_k).
  void forward_cuda(const TensorVec&, const TensorVec&, const Context&) override {}

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (!propagate_down[0]) return;
    const Device& d = ctx.device;
    const DeviceOps& ops = ops_for(d);
    const int64_t n = bottom[0]->count();
    float* dx = bottom[0]->mutable_diff(d);
    ops.copy(n, top[0]->diff(d), dx);
    for (size_t k = 1; k < top.size(); ++k) ops.axpy(n, 1.0f, top[k]->diff(d), dx);
  }
};

DSG_REGISTER_LAYER("Split", SplitLayer);

}  // namespace dsg
