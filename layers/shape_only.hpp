// Base for layers that only change a tensor's shape (Flatten, Reshape): one bottom, one top of the
// same count; forward copies the values and backward copies the gradients back unchanged.
// Subclasses implement reshape() (and type()). The device code is the same copy through the
// device's ops.
#pragma once
#include <algorithm>

#include "runtime/layer.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class ShapeOnlyLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    copy(bottom[0]->data(), top[0]->mutable_data(), bottom[0]->count());
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (propagate_down[0]) copy(top[0]->diff(), bottom[0]->mutable_diff(), bottom[0]->count());
  }

  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    ops_for(d).copy(bottom[0]->count(), bottom[0]->data(d), top[0]->mutable_data(d));
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    const Device& d = ctx.device;
    if (propagate_down[0]) ops_for(d).copy(bottom[0]->count(), top[0]->diff(d), bottom[0]->mutable_diff(d));
  }

 private:
  static void copy(const float* from, float* to, int64_t n) {
    parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) { std::copy(from + b, from + e, to + b); });
  }
};

}  // namespace dsg
