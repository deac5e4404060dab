// Dropout (Caffe's "Dropout"), inverted: in TRAIN, element i is kept iff u_i >= p, where u_i is
// lane i % 4 of counter_uniform4(ctx.seed, counter_stream(ctx.iteration, key()), i / 4)
// and kept values are scaled by 1/(1-p); in TEST it is the identity. The random pattern is a pure
// function of (seed, iteration, layer name, index), so it is reproducible and device-independent.
// In-place capable: backward only needs the stored per-element multiplier.
#include <algorithm>
#include <vector>

#include "layers/elementwise_kernels.hpp"
#include "runtime/device_array.hpp"
#include "runtime/error.hpp"
#include "runtime/ops.hpp"
#include "runtime/layer.hpp"
#include "runtime/parallel.hpp"
#include "runtime/rng.hpp"

namespace dsg {

class DropoutLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Dropout"; }
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
  void layer_setup(const TensorVec&, const TensorVec&, std::mt19937_64&) override {
    ratio_ = param_.dropout_param().dropout_ratio();
    if (!(ratio_ >= 0.0f && ratio_ < 1.0f))
      throw Error(where() + strfmt("dropout_ratio must be in [0, 1), got %g", ratio_));
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override { top[0]->reshape_like(*bottom[0]); }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const int64_t n = bottom[0]->count();
    const float* x = bottom[0]->data();
    float* y = top[0]->mutable_data();
    train_ = ctx.phase == TRAIN;
    if (!train_) {
      if (x != y) parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) { std::copy(x + b, x + e, y + b); });
      return;
    }
    multiplier_.resize(size_t(n));
    float* m = multiplier_.data();
    const float scale = 1.0f / (1.0f - ratio_), p = ratio_;
    const uint64_t seed = ctx.seed, stream = counter_stream(ctx.iteration, key());
    parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
      // Uniforms for whole Philox blocks first (a loop of independent blocks the compiler can
      // vectorise), then the mask.
      const int64_t first = begin >> 2, blocks = ((end + 3) >> 2) - first;
      std::vector<float> u(static_cast<size_t>(4 * blocks));
      for (int64_t b = 0; b < blocks; ++b) counter_uniform4(seed, stream, uint64_t(first + b), &u[size_t(4 * b)]);
      const float* ub = u.data() - 4 * first;
      for (int64_t i = begin; i < end; ++i) {
        m[i] = ub[i] >= p ? scale : 0.0f;
        y[i] = x[i] * m[i];
      }
    });
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (!propagate_down[0]) return;
    const int64_t n = bottom[0]->count();
    const float* dy = top[0]->diff();
    float* dx = bottom[0]->mutable_diff();
    if (!train_) {
      if (dx != dy) parallel_for(n, kParallelGrain, [&](int64_t b, int64_t e) { std::copy(dy + b, dy + e, dx + b); });
      return;
    }
    if (int64_t(multiplier_.size()) != n)
      throw Error(where() + "backward without a matching TRAIN forward for shape " + bottom[0]->shape_string());
    const float* m = multiplier_.data();
    parallel_for(n, kParallelGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) dx[i] = dy[i] * m[i];
    });
  }

  // The device code: the same mask formula (one body per Philox block of four elements), the
  // multiplier kept on the device.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    const int64_t n = bottom[0]->count();
    const float* x = bottom[0]->data(d);
    float* y = top[0]->mutable_data(d);
    train_ = ctx.phase == TRAIN;
    if (!train_) {
      if (x != y) ops_for(d).copy(n, x, y);
      return;
    }
    device_multiplier_.resize(size_t(n));
    launch(d, (n + 3) / 4,
           DropoutForward{n, ctx.seed, counter_stream(ctx.iteration, key()), ratio_, 1.0f / (1.0f - ratio_), x, y,
                          device_multiplier_.mutable_on(d)});
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (!propagate_down[0]) return;
    const Device& d = ctx.device;
    const int64_t n = bottom[0]->count();
    const float* dy = top[0]->diff(d);
    float* dx = bottom[0]->mutable_diff(d);
    if (!train_) {
      if (dx != dy) ops_for(d).copy(n, dy, dx);
      return;
    }
    if (int64_t(device_multiplier_.size()) != n)
      throw Error(where() + "backward without a matching TRAIN forward for shape " + bottom[0]->shape_string());
    launch(d, n, DropoutBackward{device_multiplier_.on(d), dy, dx});
  }

 private:
  float ratio_ = 0.5f;
  bool train_ = true;
  std::vector<float> multiplier_;  // per element: 0 (dropped) or 1/(1-p) (kept), from the last TRAIN forward
  DeviceArray<float> device_multiplier_;  // the same, of the device code
};

DSG_REGISTER_LAYER("Dropout", DropoutLayer);

}  // namespace dsg
