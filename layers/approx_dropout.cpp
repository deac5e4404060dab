// ApproxDropout: approximate random dropout (Song et al., DATE 2019) with row patterns. In TRAIN,
// each pass keeps the units {i : (i + offset) mod period == 0} of its input, the same units for
// every sample, scaled by 1/(1-p); the period is drawn from the distribution that
// row_pattern_distribution() searched for p = dropout_param.dropout_ratio (every unit dropped with
// probability p, dropped counts as close to Bernoulli(p) dropout as the patterns allow), the
// offset uniformly; both from the counter-based generator (seed, iteration, layer), so a run is
// reproducible. The Net lets the layer producing the input compute only the kept units and the
// next layer skip the dropped ones (layers/unit_drop.hpp). TEST: the identity.
#include <algorithm>
#include <vector>

#include "layers/unit_drop.hpp"
#include "runtime/rng.hpp"
#include "layers/ard_distribution.hpp"

namespace dsg {

class ApproxDropoutLayer : public UnitDropLayer {
 public:
  using UnitDropLayer::UnitDropLayer;
  const char* type() const override { return "ApproxDropout"; }
  ChannelFlow channel_flow() const override {
    ChannelFlow f;
    f.kind = ChannelFlow::kElementwise;
    f.zero_preserving = true;
    return f;
  }

 protected:
  void setup_units() override {
    const auto& ap = param_.approx_dropout_param();
    if (ap.max_period() < 1) throw Error(where() + "max_period must be >= 1");
    if (ap.pattern() != ApproxDropoutParameter::ROW)
      throw Error(where() + "pattern TILE and BERNOULLI drop synapses: give approx_dropout_param to the InnerProduct "
                            "layer itself (the ApproxDropout layer drops units with ROW patterns)");
    try {
      distribution_ = &row_pattern_distribution(ratio_, units_, ap.max_period(), ap.pair_weight());
    } catch (const Error& e) {
      throw Error(where() + e.what(), e.hint());
    }
  }

  void choose_kept(const Context& ctx, std::vector<int>& kept, float& scale) override {
    if (ratio_ == 0) return;
    const uint64_t stream = counter_stream(ctx.iteration, key());
    const int period = distribution_->sample_period(counter_uniform(ctx.seed, stream, 0));
    const int offset = std::min(period - 1, int(counter_uniform(ctx.seed, stream, 1) * float(period)));
    if (period > 1) kept = row_pattern_kept(units_, period, offset);
    scale = float(1.0 / (1.0 - ratio_));
  }

 private:
  const RowPatternDistribution* distribution_ = nullptr;
};

DSG_REGISTER_LAYER("ApproxDropout", ApproxDropoutLayer);

}  // namespace dsg
