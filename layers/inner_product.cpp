// InnerProduct (Caffe's fully connected layer). The bottom is viewed as a matrix X [M, K] with
// M = count(0, axis) and K = count(axis); the top is [shape[0..axis), num_output].
//   Y = X W^T + b        weight W [num_output, K]   (transpose: W is [K, num_output], Y = X W)
// Parameter diffs accumulate (+=); the bottom diff is overwritten.
#include <algorithm>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/filler.hpp"
#include "runtime/layer.hpp"
#include "runtime/math.hpp"

namespace dsg {

class InnerProductLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "InnerProduct"; }
  int exact_num_bottoms() const override { return 1; }
  int exact_num_tops() const override { return 1; }

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec&, std::mt19937_64& rng) override {
    const InnerProductParameter& p = param_.inner_product_param();
    if (!p.has_num_output() || p.num_output() == 0)
      throw Error(where() + "inner_product_param.num_output must be set and positive");
    n_ = static_cast<int>(p.num_output());
    bias_term_ = p.bias_term();
    transpose_ = p.transpose();
    const Tensor& x = *bottom[0];
    if (p.axis() < -x.num_axes() || p.axis() >= x.num_axes())
      throw Error(where() + strfmt("axis %d out of range for bottom shape %s", p.axis(), x.shape_string().c_str()));
    axis_ = x.canonical_axis(p.axis());
    k_ = static_cast<int>(x.count(axis_));

    std::vector<int> wshape = transpose_ ? std::vector<int>{k_, n_} : std::vector<int>{n_, k_};
    if (!blobs_.empty()) {
      size_t expected = bias_term_ ? 2 : 1;
      if (blobs_.size() != expected || blobs_[0]->shape() != wshape ||
          (bias_term_ && blobs_[1]->shape() != std::vector<int>{n_}))
        throw Error(where() + "preset parameter blobs do not match num_output/bias_term/input size");
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
    const Tensor& x = *bottom[0];
    if (axis_ >= x.num_axes())
      throw Error(where() + strfmt("axis %d out of range for bottom shape %s", axis_, x.shape_string().c_str()));
    if (x.count(axis_) != k_)
      throw Error(where() + strfmt("input size %lld (bottom %s from axis %d) does not match the weights' %d",
                                   static_cast<long long>(x.count(axis_)), x.shape_string().c_str(), axis_, k_));
    m_ = static_cast<int>(x.count(0, axis_));
    std::vector<int> shape(x.shape().begin(), x.shape().begin() + axis_);
    shape.push_back(n_);
    top[0]->reshape(shape);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const float* x = bottom[0]->data();
    const float* w = blobs_[0]->data();
    float* y = top[0]->mutable_data();
    float beta = 0.0f;
    if (bias_term_) {
      const float* b = blobs_[1]->data();
      for (int i = 0; i < m_; ++i) std::copy(b, b + n_, y + int64_t(i) * n_);
      beta = 1.0f;
    }
    gemm(false, !transpose_, m_, n_, k_, 1.0f, x, w, beta, y);
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    const float* dy = top[0]->diff();
    const float* x = bottom[0]->data();
    if (param_propagate_down(0)) {
      float* dw = blobs_[0]->mutable_diff();
      if (transpose_)
        gemm(true, false, k_, n_, m_, 1.0f, x, dy, 1.0f, dw);  // dW [K,N] += X^T dY
      else
        gemm(true, false, n_, k_, m_, 1.0f, dy, x, 1.0f, dw);  // dW [N,K] += dY^T X
    }
    if (bias_term_ && param_propagate_down(1)) {
      if (int(ones_.size()) < m_) ones_.assign(m_, 1.0f);
      gemv(true, m_, n_, 1.0f, dy, ones_.data(), 1.0f, blobs_[1]->mutable_diff());
    }
    if (propagate_down[0]) {
      // dX [M,K] = dY [M,N] W [N,K]  (transpose: dY W^T with W [K,N])
      gemm(false, transpose_, m_, k_, n_, 1.0f, dy, blobs_[0]->data(), 0.0f, bottom[0]->mutable_diff());
    }
  }

 private:
  int axis_ = 1;
  int m_ = 0, n_ = 0, k_ = 0;
  bool bias_term_ = true;
  bool transpose_ = false;
  std::vector<float> ones_;
};

DSG_REGISTER_LAYER("InnerProduct", InnerProductLayer);

}  // namespace dsg
