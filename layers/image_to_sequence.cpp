// ImageToSequence: reads images row by row as sequences for a recurrent layer (LSTM).
//   bottom[0] images [N, C, H, W]
//   top[0]    x      [H, N, C W]   time step t = image row t; feature c W + w = pixel (c, t, w)
//   top[1]    cont   [H, N]        0 at t = 0, 1 after (one sequence per image)
// So Fashion-MNIST [N, 1, 28, 28] becomes 28 steps of 28 features: LSTM's x and cont bottoms.
// No parameters. Backward writes the transposed top 0 diff into the bottom diff (cont gets none).
#include <algorithm>
#include <cstring>

#include "layers/copy_kernels.hpp"
#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class ImageToSequenceLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "ImageToSequence"; }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 2; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    if (x.num_axes() != 4)
      throw Error(where() + "bottom must be images [N, C, H, W] (4 axes), got shape " + x.shape_string(),
                  "put it right after an image Data layer, or Reshape the bottom to [N, C, H, W]");
    n_ = x.shape(0);
    c_ = x.shape(1);
    h_ = x.shape(2);
    w_ = x.shape(3);
    top[0]->reshape({h_, n_, c_ * w_});
    top[1]->reshape({h_, n_});
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    transfer(bottom[0]->mutable_data(), top[0]->mutable_data(), true);
    float* cont = top[1]->mutable_data();
    for (int64_t i = 0; i < int64_t(h_) * n_; ++i) cont[i] = i < n_ ? 0.0f : 1.0f;
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (propagate_down[0]) transfer(bottom[0]->mutable_diff(), top[0]->mutable_diff(), false);
  }

  // The device code: one body per image element; cont is two fills.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    launch(d, bottom[0]->count(),
           ImageSequenceCopy{n_, c_, h_, w_, true, bottom[0]->data(d), top[0]->mutable_data(d)});
    float* cont = top[1]->mutable_data(d);
    const DeviceOps& ops = ops_for(d);
    ops.fill(int64_t(h_) * n_, 1.0f, cont);
    ops.fill(std::min<int64_t>(n_, int64_t(h_) * n_), 0.0f, cont);
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    const Device& d = ctx.device;
    if (propagate_down[0])
      launch(d, bottom[0]->count(),
             ImageSequenceCopy{n_, c_, h_, w_, false, top[0]->diff(d), bottom[0]->mutable_diff(d)});
  }

 private:
  // Copies the W-long runs between image [N, C, H, W] and sequence [H, N, C W]: image row
  // (n, c, t) <-> sequence run (t, n, c). forward: image -> sequence, else sequence -> image.
  void transfer(float* image, float* seq, bool forward) const {
    const int64_t runs = int64_t(n_) * c_ * h_, w = w_;
    const size_t bytes = sizeof(float) * size_t(w_);
    parallel_for(runs, std::max<int64_t>(1, (int64_t(1) << 14) / std::max<int64_t>(1, w)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {  // r = (n C + c) H + t, the image's row order
        const int64_t t = r % h_, nc = r / h_, c = nc % c_, n = nc / c_;
        float* s = seq + ((t * n_ + n) * c_ + c) * w;
        float* i = image + r * w;
        if (forward) std::memcpy(s, i, bytes);
        else std::memcpy(i, s, bytes);
      }
    });
  }

  int n_ = 0, c_ = 0, h_ = 0, w_ = 0;
};

DSG_REGISTER_LAYER("ImageToSequence", ImageToSequenceLayer);

}  // namespace dsg
