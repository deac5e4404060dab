// Embed (Caffe's "Embed"): a table lookup, the one-hot InnerProduct. The bottom holds integer
// indices stored as floats, any shape S; the top is S + [num_output] with
//   top[..., :] = W[index, :] + b          W [input_dim, num_output], b [num_output] (bias_term)
// An index that is not an integer in [0, input_dim) is an error. Backward accumulates dW rows
// (+= the top diff rows, so repeated indices add up) and db (+= the sum of the rows); the bottom
// (indices) gets no gradient.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "layers/embed_kernels.hpp"
#include "runtime/error.hpp"
#include "runtime/filler.hpp"
#include "runtime/layer.hpp"
#include "runtime/math.hpp"
#include "runtime/ops.hpp"

namespace dsg {

class EmbedLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "Embed"; }
  std::vector<int> weight_blobs() const override { return {0}; }
  int64_t input_symbols() const override { return int64_t(param_.embed_param().input_dim()); }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }
  bool allow_backward_to(int) const override { return false; }
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }

 protected:
  void layer_setup(const TensorVec&, const TensorVec&, std::mt19937_64& rng) override {
    const EmbedParameter& p = param_.embed_param();
    if (p.num_output() == 0) throw Error(where() + "embed_param.num_output must be set and positive");
    if (p.input_dim() == 0) throw Error(where() + "embed_param.input_dim must be set and positive");
    n_ = static_cast<int>(p.num_output());
    k_ = static_cast<int>(p.input_dim());
    bias_term_ = p.bias_term();
    const std::vector<int> wshape{k_, n_};
    if (!blobs_.empty()) {
      const size_t expected = bias_term_ ? 2 : 1;
      if (blobs_.size() != expected || blobs_[0]->shape() != wshape ||
          (bias_term_ && blobs_[1]->shape() != std::vector<int>{n_}))
        throw Error(where() + "preset parameter blobs do not match input_dim/num_output/bias_term");
      return;
    }
    blobs_.push_back(std::make_shared<Tensor>(wshape));
    fill(p.weight_filler(), *blobs_[0], rng);
    if (bias_term_) {
      blobs_.push_back(std::make_shared<Tensor>(std::vector<int>{n_}));
      fill(p.bias_filler(), *blobs_[1], rng);
    }
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    std::vector<int> shape = bottom[0]->shape();
    shape.push_back(n_);
    top[0]->reshape(shape);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const float* index = bottom[0]->data();
    const float* w = blobs_[0]->data();
    const float* b = bias_term_ ? blobs_[1]->data() : nullptr;
    float* y = top[0]->mutable_data();
    const int64_t m = bottom[0]->count();
    for (int64_t i = 0; i < m; ++i) {
      const float* src = w + int64_t(row_of(index[i], i)) * n_;
      float* dst = y + i * n_;
      if (b) {
        for (int j = 0; j < n_; ++j) dst[j] = src[j] + b[j];
      } else {
        std::memcpy(dst, src, sizeof(float) * size_t(n_));
      }
    }
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (propagate_down[0]) throw Error(where() + "cannot backpropagate to the index input");
    const float* index = bottom[0]->data();
    const float* dy = top[0]->diff();
    const int64_t m = bottom[0]->count();
    if (param_propagate_down(0)) {
      float* dw = blobs_[0]->mutable_diff();
      for (int64_t i = 0; i < m; ++i) axpy(n_, 1.0f, dy + i * n_, dw + int64_t(row_of(index[i], i)) * n_);
    }
    if (bias_term_ && param_propagate_down(1) && m > 0) {
      if (int64_t(ones_.size()) < m) ones_.assign(size_t(m), 1.0f);
      gemv(true, static_cast<int>(m), n_, 1.0f, dy, ones_.data(), 1.0f, blobs_[1]->mutable_diff());
    }
  }

  // The device code (layers/embed_kernels.hpp): a gather of table rows, and a weight gradient with
  // one body per table entry scanning the positions in order; the bias gradient is a column sum.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    launch(d, bottom[0]->count() * n_,
           EmbedForward{k_, n_, std::numeric_limits<float>::quiet_NaN(), bottom[0]->data(d), blobs_[0]->data(d),
                        bias_term_ ? blobs_[1]->data(d) : nullptr, top[0]->mutable_data(d)});
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (propagate_down[0]) throw Error(where() + "cannot backpropagate to the index input");
    const Device& d = ctx.device;
    const int64_t m = bottom[0]->count();
    const float* dy = top[0]->diff(d);
    if (param_propagate_down(0))
      launch(d, int64_t(k_) * n_, EmbedWeightGrad{m, k_, n_, bottom[0]->data(d), dy, blobs_[0]->mutable_diff(d)});
    if (bias_term_ && param_propagate_down(1) && m > 0)
      ops_for(d).column_sums(int(m), n_, dy, blobs_[1]->mutable_diff(d));
  }

 private:
  // The table row for the index value at bottom position `position`; throws if it is not one.
  int row_of(float value, int64_t position) const {
    if (!(value >= 0.0f && value < float(k_)) || std::floor(value) != value)
      throw Error(where() + strfmt("index %g at bottom position %lld is not an integer in [0, input_dim = %d)",
                                   double(value), static_cast<long long>(position), k_));
    return static_cast<int>(value);
  }

  int n_ = 0;  // num_output
  int k_ = 0;  // input_dim
  bool bias_term_ = true;
  std::vector<float> ones_;
};

DSG_REGISTER_LAYER("Embed", EmbedLayer);

}  // namespace dsg
