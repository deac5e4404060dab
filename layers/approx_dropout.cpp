// ApproxDropout: approximate random dropout (Song et al., DATE 2019) with row patterns. In TRAIN,
// each forward pass keeps the units {i : (i + offset) mod period == 0} of its input (features of an
// [N, C] blob, channels of an [N, C, H, W] blob), the same units for every sample of the
// mini-batch, and scales them by 1/(1-p); the period is drawn from the distribution that
// row_pattern_distribution() searched for p = dropout_param.dropout_ratio (every unit dropped with
// probability p, dropped counts as close to Bernoulli(p) dropout as the patterns allow), the
// offset uniformly; both from the counter-based generator (seed, iteration, layer), so a run is
// reproducible. Because the pattern is shared by the batch, the Net lets the layer producing the
// input compute only the kept units and the next layer skip the dropped ones: the GEMMs shrink
// (runtime/layer.hpp, sparsity/structure.hpp). TEST: the identity.
#include <algorithm>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/rng.hpp"
#include "sparsity/ard_distribution.hpp"

namespace dsg {

class ApproxDropoutLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "ApproxDropout"; }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool allows_in_place() const override { return true; }
  bool drops_units() const override { return true; }

  bool sample_dynamic_structure(const Context& ctx) override {
    std::vector<int> kept;
    if (ctx.phase == TRAIN && ratio_ > 0) {
      const uint64_t stream = counter_stream(ctx.iteration, key());
      const int period = distribution_->sample_period(counter_uniform(ctx.seed, stream, 0));
      const int offset = std::min(period - 1, int(counter_uniform(ctx.seed, stream, 1) * float(period)));
      if (period > 1) kept = row_pattern_kept(units_, period, offset);
      scale_ = float(1.0 / (1.0 - ratio_));
    }
    train_ = ctx.phase == TRAIN;
    if (kept == dynamic_kept_) return false;
    dynamic_kept_ = std::move(kept);
    return true;
  }

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec&, std::mt19937_64&) override {
    ratio_ = param_.dropout_param().dropout_ratio();
    if (!(ratio_ >= 0.0f && ratio_ < 1.0f))
      throw Error(where() + strfmt("dropout_ratio must be in [0, 1), got %g", ratio_));
    if (bottom[0]->num_axes() < 2) throw Error(where() + "needs an input with a unit axis 1, got " + bottom[0]->shape_string());
    units_ = bottom[0]->shape(1);
    const auto& ap = param_.approx_dropout_param();
    if (ap.max_period() < 1) throw Error(where() + "max_period must be >= 1");
    try {
      distribution_ = &row_pattern_distribution(ratio_, units_, ap.max_period());
    } catch (const Error& e) {
      throw Error(where() + e.what(), e.hint());
    }
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    if (bottom[0]->num_axes() < 2 || bottom[0]->shape(1) != units_)
      throw Error(where() + strfmt("was set up for %d units on axis 1, got ", units_) + bottom[0]->shape_string());
    top[0]->reshape_like(*bottom[0]);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    if (ctx.phase != (train_ ? TRAIN : TEST))
      throw Error(where() + "forward in a phase other than the one its pattern was sampled for");
    apply(bottom[0]->data(), top[0]->mutable_data(), *bottom[0]);
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (propagate_down[0]) apply(top[0]->diff(), bottom[0]->mutable_diff(), *bottom[0]);
  }

 private:
  // out = in * 1/(1-p) on the kept units, 0 on the dropped ones (TRAIN); a copy in TEST or when
  // every unit is kept this pass (period 1).
  void apply(const float* in, float* out, const Tensor& shape) const {
    const int64_t n = shape.count();
    if (!train_ || ratio_ == 0) {
      if (in != out) std::copy(in, in + n, out);
      return;
    }
    const int64_t samples = shape.shape(0), per_unit = shape.count(2), per_sample = int64_t(units_) * per_unit;
    if (dynamic_kept_.empty()) {
      for (int64_t i = 0; i < n; ++i) out[i] = in[i] * scale_;
      return;
    }
    std::vector<float> multiplier(size_t(units_), 0.0f);
    for (int u : dynamic_kept_) multiplier[size_t(u)] = scale_;
    const float* m = multiplier.data();
    if (per_unit == 1) {
      for (int64_t s = 0; s < samples; ++s) {
        const float* a = in + s * per_sample;
        float* b = out + s * per_sample;
        for (int u = 0; u < units_; ++u) b[u] = a[u] * m[u];
      }
      return;
    }
    for (int64_t s = 0; s < samples; ++s)
      for (int u = 0; u < units_; ++u) {
        const float* a = in + s * per_sample + int64_t(u) * per_unit;
        float* b = out + s * per_sample + int64_t(u) * per_unit;
        for (int64_t j = 0; j < per_unit; ++j) b[j] = a[j] * m[u];
      }
  }

  float ratio_ = 0.5f, scale_ = 2.0f;
  int units_ = 0;
  bool train_ = true;
  const RowPatternDistribution* distribution_ = nullptr;
};

DSG_REGISTER_LAYER("ApproxDropout", ApproxDropoutLayer);

}  // namespace dsg
