// UnitDropLayer: the shared part of the layers that drop whole units of their input for a
// training pass, the same units for every sample of the mini-batch (ApproxDropout: row patterns;
// FeatureMapDropout: sensitivity-aware input channels). A unit is a feature of an [N, C] blob or a
// channel of an [N, C, H, W] blob. In TRAIN the kept units are scaled by `scale` and the dropped
// ones are zero, in forward and backward; in TEST the layer is the identity. Because the pattern
// is shared by the batch, the Net shrinks the GEMMs around it (Layer::sample_dynamic_structure).
// Subclasses choose the kept units per pass in choose_kept().
#pragma once
#include <algorithm>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"

namespace dsg {

class UnitDropLayer : public Layer {
 public:
  using Layer::Layer;
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool allows_in_place() const override { return true; }
  bool drops_units() const override { return true; }
  bool supports(DeviceType device, LayerMode mode) const override {
    return device == DeviceType::CPU && (mode == LayerMode::kDense || mode == LayerMode::kDynamicSelection);
  }

  bool sample_dynamic_structure(const Context& ctx) override {
    train_ = ctx.phase == TRAIN;
    std::vector<int> kept;
    scale_ = 1.0f;
    if (train_) choose_kept(ctx, kept, scale_);
    if (int(kept.size()) >= units_) kept.clear();
    if (kept == dynamic_kept_ && scale_ == multiplier_scale_) return false;
    dynamic_kept_ = std::move(kept);
    // Per-unit multiplier for forward and backward: scale on kept units, 0 on dropped ones.
    multiplier_.assign(static_cast<size_t>(units_), dynamic_kept_.empty() ? scale_ : 0.0f);
    for (int u : dynamic_kept_) multiplier_[size_t(u)] = scale_;
    multiplier_scale_ = scale_;
    return true;
  }

 protected:
  // Fills `kept` (ascending; empty or all = every unit) and the scale of the kept units for a TRAIN pass.
  virtual void choose_kept(const Context& ctx, std::vector<int>& kept, float& scale) = 0;

  void layer_setup(const TensorVec& bottom, const TensorVec&, std::mt19937_64&) override {
    ratio_ = param_.dropout_param().dropout_ratio();
    if (!(ratio_ >= 0.0f && ratio_ < 1.0f))
      throw Error(where() + strfmt("dropout_ratio must be in [0, 1), got %g", ratio_));
    if (bottom[0]->num_axes() < 2) throw Error(where() + "needs an input with a unit axis 1, got " + bottom[0]->shape_string());
    units_ = bottom[0]->shape(1);
    setup_units();
  }
  // Subclass setup once units_ and ratio_ are known.
  virtual void setup_units() {}

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    if (bottom[0]->num_axes() < 2 || bottom[0]->shape(1) != units_)
      throw Error(where() + strfmt("was set up for %d units on axis 1, got ", units_) + bottom[0]->shape_string());
    top[0]->reshape_like(*bottom[0]);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    if ((ctx.phase == TRAIN) != train_)
      throw Error(where() + "forward in a phase other than the one its pattern was sampled for");
    apply(bottom[0]->data(), top[0]->mutable_data(), *bottom[0]);
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (propagate_down[0]) apply(top[0]->diff(), bottom[0]->mutable_diff(), *bottom[0]);
  }

  // out = in * scale on the kept units, 0 on the dropped ones (TRAIN); a copy in TEST.
  void apply(const float* in, float* out, const Tensor& shape) const {
    const int64_t n = shape.count();
    if (!train_) {
      if (in != out) std::copy(in, in + n, out);
      return;
    }
    if (dynamic_kept_.empty()) {
      for (int64_t i = 0; i < n; ++i) out[i] = in[i] * scale_;
      return;
    }
    const int64_t samples = shape.shape(0), per_unit = shape.count(2), per_sample = int64_t(units_) * per_unit;
    const float* m = multiplier_.data();
    for (int64_t s = 0; s < samples; ++s) {
      const float* a = in + s * per_sample;
      float* b = out + s * per_sample;
      if (per_unit == 1) {
        for (int u = 0; u < units_; ++u) b[u] = a[u] * m[u];
        continue;
      }
      for (int u = 0; u < units_; ++u)
        for (int64_t j = 0; j < per_unit; ++j) b[u * per_unit + j] = a[u * per_unit + j] * m[u];
    }
  }

  float ratio_ = 0.5f, scale_ = 1.0f;
  int units_ = 0;
  bool train_ = true;

 private:
  std::vector<float> multiplier_;  // from the last sample_dynamic_structure
  float multiplier_scale_ = -1.0f;
};

}  // namespace dsg
