// FeatureMapDropout: sensitivity-aware input-feature-map dropout (Song et al. 2022, CNN part). In
// TRAIN each pass drops k = round(p * C) whole channels of its input (p = dropout_ratio), the same
// for every sample, and scales the rest by C / (C - k). Which channels: with TAYLOR sensitivity,
// k channels drawn without replacement with weights proportional to 1 / s_c (Gumbel top-k over
// counter-based uniforms, so a run is reproducible), where s_c is a running mean of
// |sum over batch and positions of x_c * dL/dx_c|, updated from the kept channels in backward;
// UNIFORM draws them uniformly. The consumer (a Convolution, or an InnerProduct after Flatten)
// then im2cols / reads only the kept channels: its GEMM K shrinks in forward and backward
// (layers/unit_drop.hpp). TEST: the identity.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "layers/unit_drop.hpp"
#include "runtime/rng.hpp"

namespace dsg {

class FeatureMapDropoutLayer : public UnitDropLayer {
 public:
  using UnitDropLayer::UnitDropLayer;
  const char* type() const override { return "FeatureMapDropout"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kElementwise;
    f.zero_preserving = true;
    return f;
  }

 protected:
  void setup_units() override {
    const auto& fp = param_.feature_map_dropout_param();
    if (!(fp.momentum() >= 0 && fp.momentum() < 1))
      throw Error(where() + strfmt("momentum must be in [0, 1), got %g", fp.momentum()));
    drop_ = int(std::lround(double(ratio_) * units_));
    if (drop_ >= units_) drop_ = units_ - 1;
    sensitivity_.assign(size_t(units_), 0.0);
  }

  void choose_kept(const Context& ctx, std::vector<int>& kept, float& scale) override {
    if (drop_ == 0) return;
    const uint64_t stream = counter_stream(ctx.iteration, key());
    const bool taylor = param_.feature_map_dropout_param().sensitivity() == FeatureMapDropoutParameter::TAYLOR;
    // Mean sensitivity floors the weights, so an unseen channel (s = 0) is not certain to go.
    double mean = 0;
    for (double s : sensitivity_) mean += s / units_;
    std::vector<std::pair<double, int>> keys(static_cast<size_t>(units_));
    for (int c = 0; c < units_; ++c) {
      const double u = std::max(1e-12, double(counter_uniform(ctx.seed, stream, uint64_t(c))));
      const double gumbel = -std::log(-std::log(u));
      const double weight = taylor && mean > 0 ? 1.0 / (sensitivity_[size_t(c)] + 0.1 * mean) : 1.0;
      keys[size_t(c)] = {std::log(weight) + gumbel, c};
    }
    // The k largest keys are dropped.
    std::nth_element(keys.begin(), keys.begin() + drop_, keys.end(), std::greater<>());
    for (int i = drop_; i < units_; ++i) kept.push_back(keys[size_t(i)].second);
    std::sort(kept.begin(), kept.end());
    scale = float(units_) / float(units_ - drop_);
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context& ctx) override {
    if (train_ && !dynamic_kept_.empty()) update_sensitivity(*bottom[0], *top[0]);
    UnitDropLayer::backward_cpu(top, propagate_down, bottom, ctx);
  }

 private:
  // s_c <- m s_c + (1 - m) |sum x_c dL/dy_c| for the kept channels (dropped ones saw no gradient).
  // Runs before the in-place backward overwrites the diff; x is the layer's input (its top holds
  // x * scale for kept channels when in place, so the scale is divided out).
  void update_sensitivity(const Tensor& bottom, const Tensor& top) {
    const float m = param_.feature_map_dropout_param().momentum();
    const int64_t samples = bottom.shape(0), per_unit = bottom.count(2), per_sample = int64_t(units_) * per_unit;
    const bool in_place = bottom.data() == top.data();
    const float* x = bottom.data();
    const float* g = top.diff();
    for (int c : dynamic_kept_) {
      double s = 0;
      for (int64_t n = 0; n < samples; ++n) {
        const float* xc = x + n * per_sample + int64_t(c) * per_unit;
        const float* gc = g + n * per_sample + int64_t(c) * per_unit;
        for (int64_t j = 0; j < per_unit; ++j) s += double(xc[j]) * gc[j];
      }
      if (in_place) s /= scale_;
      sensitivity_[size_t(c)] = m * sensitivity_[size_t(c)] + (1 - m) * std::fabs(s);
    }
  }

  int drop_ = 0;
  std::vector<double> sensitivity_;
};

DSG_REGISTER_LAYER("FeatureMapDropout", FeatureMapDropoutLayer);

}  // namespace dsg
