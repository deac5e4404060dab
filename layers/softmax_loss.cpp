// SoftmaxWithLoss (Caffe's "SoftmaxWithLoss"): multinomial logistic loss of the softmax of the
// scores over softmax_param.axis (default 1).
//   bottom[0]: scores (outer, C, inner...), bottom[1]: labels with outer * inner elements holding
//   integer class ids as floats. top[0]: the loss, shape (1). Optional top[1]: the probabilities.
//   loss = -sum over non-ignored positions of log(p[label]) / normalizer,
// normalizer per loss_param.normalization: VALID (non-ignored count, default), FULL (all
// positions), BATCH_SIZE (outer), NONE (1); at least 1. The legacy `normalize` flag maps to
// VALID (true) or BATCH_SIZE (false). Backward: dx = (p - onehot(label)) * top[0].diff[0] / normalizer.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/layer.hpp"
#include "runtime/ops.hpp"
#include "runtime/parallel.hpp"

namespace dsg {

class SoftmaxWithLossLayer : public Layer {
 public:
  using Layer::Layer;
  const char* type() const override { return "SoftmaxWithLoss"; }
  int exact_num_bottoms() const override { return 2; }
  int min_num_tops() const override { return 1; }
  int max_num_tops() const override { return 2; }
  bool allow_backward_to(int bottom_index) const override { return bottom_index == 0; }
  float default_loss_weight(int top_index) const override { return top_index == 0 ? 1.0f : 0.0f; }
  std::optional<LabelScoring> label_scoring() const override {
    return LabelScoring{param_.softmax_param().axis(), param_.loss_param().has_ignore_label(),
                        param_.loss_param().ignore_label()};
  }
  bool supports(DeviceType, LayerMode mode) const override {
    return mode == LayerMode::kDense;
  }

 protected:
  void layer_setup(const TensorVec&, const TensorVec&, std::mt19937_64&) override {
    const auto& lp = param_.loss_param();
    has_ignore_ = lp.has_ignore_label();
    ignore_ = lp.ignore_label();
    mode_ = lp.normalization();
    if (!lp.has_normalization() && lp.has_normalize())
      mode_ = lp.normalize() ? LossParameter::VALID : LossParameter::BATCH_SIZE;
  }

  void reshape(const TensorVec& bottom, const TensorVec& top) override {
    const Tensor& x = *bottom[0];
    const int axis = param_.softmax_param().axis();
    if (axis < -x.num_axes() || axis >= x.num_axes())
      throw Error(where() + strfmt("axis %d out of range for scores ", axis) + x.shape_string());
    const int a = x.canonical_axis(axis);
    outer_ = x.count(0, a);
    channels_ = x.shape(a);
    inner_ = x.count(a + 1);
    if (channels_ < 1) throw Error(where() + "no classes in scores " + x.shape_string());
    if (bottom[1]->count() != outer_ * inner_)
      throw Error(where() + "number of labels must match number of predictions: scores " + x.shape_string() +
                  " (softmax over axis " + std::to_string(a) + ") need " + std::to_string(outer_ * inner_) +
                  " labels, got labels " + bottom[1]->shape_string());
    prob_.reshape_like(x);
    normalizer_buffer_.reshape({1});
    top[0]->reshape({1});
    if (top.size() > 1) top[1]->reshape_like(x);
  }

  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context&) override {
    const float* x = bottom[0]->data();
    const float* label = bottom[1]->data();
    float* p = prob_.mutable_data();
    const int64_t C = channels_, inner = inner_;
    // Validate labels first so that a bad label never yields a partial result.
    for (int64_t k = 0; k < outer_ * inner_; ++k) {
      if (ignored(label[k])) continue;
      if (!(label[k] >= 0.0f && label[k] < float(C)))
        throw Error(where() + strfmt("label %g at position %lld is outside [0, C) with C = %lld classes", label[k],
                                     static_cast<long long>(k), static_cast<long long>(C)));
    }
    cpu_ops().softmax(outer_, C, inner, x, p);
    double loss = 0;
    int64_t valid = 0;
    for (int64_t k = 0; k < outer_ * inner_; ++k) {
      if (ignored(label[k])) continue;
      const int64_t base = (k / inner) * C * inner + k % inner;
      loss -= std::log(std::max(p[base + int64_t(label[k]) * inner], FLT_MIN));
      ++valid;
    }
    normalizer_ = normalizer(valid);
    top[0]->mutable_data()[0] = float(loss / normalizer_);
    if (top.size() > 1) top[1]->copy_from(prob_);
  }

  void backward_cpu(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                    const Context&) override {
    if (propagate_down.size() > 1 && propagate_down[1])
      throw Error(where() + "cannot backpropagate to the label input");
    if (!propagate_down[0]) return;
    const float* p = prob_.data();
    const float* label = bottom[1]->data();
    float* dx = bottom[0]->mutable_diff();
    const int64_t C = channels_, inner = inner_;
    const float scale = float(top[0]->diff()[0] / normalizer_);
    const int64_t grain = std::max<int64_t>(1, kParallelGrain / C);
    parallel_for(outer_ * inner_, grain, [&](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) {
        const int64_t base = (k / inner) * C * inner + k % inner;
        if (ignored(label[k])) {
          for (int64_t c = 0; c < C; ++c) dx[base + c * inner] = 0.0f;
          continue;
        }
        const int64_t target = int64_t(label[k]);
        for (int64_t c = 0; c < C; ++c)
          dx[base + c * inner] = (p[base + c * inner] - (c == target ? 1.0f : 0.0f)) * scale;
      }
    });
  }

  // On a device labels are not checked (no copy to the host): a label outside [0, C) makes the
  // loss NaN, which the solver reports as divergence.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override {
    const Device& d = ctx.device;
    const DeviceOps& ops = ops_for(d);
    ops.softmax(outer_, channels_, inner_, bottom[0]->data(d), prob_.mutable_data(d));
    LossNormalizer norm;
    norm.by_valid = mode_ == LossParameter::VALID;
    norm.fixed = normalizer(0);
    ops.softmax_loss(outer_, channels_, inner_, prob_.data(d), bottom[1]->data(d), has_ignore_, ignore_, norm,
                     top[0]->mutable_data(d), normalizer_buffer_.mutable_data(d));
    if (top.size() > 1) ops.copy(prob_.count(), prob_.data(d), top[1]->mutable_data(d));
  }

  void backward_cuda(const TensorVec& top, const std::vector<bool>& propagate_down, const TensorVec& bottom,
                     const Context& ctx) override {
    if (propagate_down.size() > 1 && propagate_down[1])
      throw Error(where() + "cannot backpropagate to the label input");
    if (!propagate_down[0]) return;
    const Device& d = ctx.device;
    ops_for(d).softmax_loss_backward(outer_, channels_, inner_, prob_.data(d), bottom[1]->data(d), has_ignore_,
                                     ignore_, top[0]->diff(d), normalizer_buffer_.data(d),
                                     bottom[0]->mutable_diff(d));
  }

 private:
  bool ignored(float label) const { return has_ignore_ && label == float(ignore_); }

  double normalizer(int64_t valid) const {
    double n = 1;
    switch (mode_) {
      case LossParameter::FULL: n = double(outer_ * inner_); break;
      case LossParameter::VALID: n = double(valid); break;
      case LossParameter::BATCH_SIZE: n = double(outer_); break;
      case LossParameter::NONE: n = 1; break;
    }
    return std::max(1.0, n);
  }

  bool has_ignore_ = false;
  int ignore_ = -1;
  LossParameter::NormalizationMode mode_ = LossParameter::VALID;
  int64_t outer_ = 1, channels_ = 1, inner_ = 1;
  double normalizer_ = 1;
  Tensor prob_;
  Tensor normalizer_buffer_;  // device runs: the normalizer of the last forward, on the device
};

DSG_REGISTER_LAYER("SoftmaxWithLoss", SoftmaxWithLossLayer);

}  // namespace dsg
